"""The output checks: what they refuse, in which words, and that they leave nothing behind."""
from __future__ import annotations

import errno
import os

import pytest

from fmuia.errors import OutputError
from fmuia.io.atomic import write_text
from fmuia.io.outputs import check_writable, output_error, writing


def test_the_probe_creates_nothing(tmp_path):
    (tmp_path / "kept").mkdir()
    check_writable(tmp_path / "kept")  # an existing folder: probed inside
    check_writable(tmp_path / "new" / "deeper")  # a missing one: probed where it would be created
    check_writable(tmp_path / "report.json", folder=False)
    assert sorted(os.listdir(tmp_path)) == ["kept"] and os.listdir(tmp_path / "kept") == []


@pytest.mark.parametrize("where, folder, message", [
    ("notes/out", True, "{tmp}/notes is a file, not a folder"),
    ("notes", True, "it exists and is not a folder"),
    ("kept", False, "it exists and is a folder"),
    ("x" * 300 + "/out", True, "File name too long: a name of 300 bytes, at most 255 here"),
])
def test_refusals_name_the_path_and_the_reason(tmp_path, where, folder, message):
    (tmp_path / "notes").write_text("mine")
    (tmp_path / "kept").mkdir()
    target = tmp_path / where
    with pytest.raises(OutputError) as err:
        check_writable(target, folder=folder)
    assert str(err.value).startswith(f"{target}: cannot write ") and message.format(tmp=tmp_path) in str(err.value)
    assert (tmp_path / "notes").read_text() == "mine"


def test_os_errors_become_output_errors_with_their_errno(tmp_path):
    with pytest.raises(OutputError, match=r"out\.csv: cannot write the table \(No space left on device\)") as err:
        with writing(tmp_path / "out.csv", "write the table"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert err.value.errno == errno.ENOSPC
    assert str(output_error("a/b", "write", OSError(errno.EROFS, os.strerror(errno.EROFS)))) == \
        "a/b: cannot write (Read-only file system)"


def test_an_atomic_write_under_a_file_names_the_target_and_keeps_the_file(tmp_path):
    (tmp_path / "notes").write_text("mine")
    with pytest.raises(OutputError, match=f"notes/a.txt: cannot write .{tmp_path}/notes is a file, not a folder"):
        write_text(tmp_path / "notes" / "a.txt", "x")
    assert (tmp_path / "notes").read_text() == "mine"
