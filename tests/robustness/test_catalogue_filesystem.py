"""Every command that writes, against every way the file system refuses: an output
under a regular file (ENOTDIR), a 300-character name, a missing parent that cannot be
created, a read-only folder, a full disk. Each ends in exit 2 and exactly one
``error:`` line naming the output, no traceback, and every file that was there before
(inputs, earlier outputs) byte for byte as it was.

The failures are real where the system can give them (a file as a parent, a long
name, a folder under ``/proc``, ``chattr +i`` as root or ``chmod`` otherwise); the
full disk is the OS error raised where the atomic writer creates its file."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid

import pytest
from catalogue_helpers import COMMANDS, FILE_OUTPUTS, fingerprint, run_cli


def _read_only_folder(folder) -> "callable | None":
    """Make ``folder`` refuse new files (chattr +i as root, chmod otherwise); returns the
    undo, or None where this system cannot."""
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            return None
        undo = lambda: subprocess.run(["chattr", "-i", str(folder)], check=False)  # noqa: E731
    else:
        folder.chmod(0o555)
        undo = lambda: folder.chmod(0o755)  # noqa: E731
    try:
        probe = folder / ".probe"
        probe.touch()
        probe.unlink()
    except OSError:
        return undo
    undo()
    return None


def _assert_refused(code, err, path, because) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1 and str(path) in errors[0] and because in errors[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("failure", ["parent is a file", "name too long", "missing parent", "read-only", "disk full"])
def test_an_output_the_file_system_refuses(command, failure, command_inputs, tmp_path, capsys, failing_writes):
    argv_for, name, accept_existing = COMMANDS[command]
    suffix = os.path.splitext(name)[1]
    extra: tuple = ()
    undo = None
    if failure == "parent is a file":
        (tmp_path / "notes").write_text("mine")
        out, because = tmp_path / "notes" / name, f"{tmp_path / 'notes'} is a file, not a folder"
    elif failure == "name too long":
        out, because = tmp_path / ("x" * 300 + suffix), "File name too long"
    elif failure == "missing parent":
        if not os.path.isdir("/proc/self"):
            pytest.skip("needs /proc, where no folder can be created")
        out, because = f"/proc/fmuia-missing-{uuid.uuid4().hex}/{name}", "No such file or directory"
    elif failure == "read-only":
        folder = tmp_path / "locked"
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        undo = _read_only_folder(folder)
        if undo is None:
            pytest.skip("this system cannot make a folder refuse writes here")
        out, because = folder / name, ("Operation not permitted" if os.geteuid() == 0 else "Permission denied")
    else:  # a disk that fills at the first file written, over an earlier output that must survive
        out, because = tmp_path / name, os.strerror(errno.ENOSPC)
        if name in FILE_OUTPUTS:
            out.write_bytes(b"an earlier output")
        else:
            out.mkdir()
            (out / "notes.txt").write_text("mine")
        extra = accept_existing
        failing_writes(errno.ENOSPC)
    before = fingerprint(tmp_path)
    try:
        code, _out, err = run_cli([*argv_for(command_inputs, str(out)), *extra], capsys)
        _assert_refused(code, err, out, because)
        assert fingerprint(tmp_path) == before
    finally:
        if undo:
            undo()
