"""One writer at a time for each output folder (or file) a command writes as a unit.

The lock is an ``fcntl.flock`` on a small file beside the output, ``.<name>.lock``,
holding the holder's process id, host, command and start time. Beside, not inside:
the output folder stays exactly what the command writes (a prediction folder must be
empty, an exported folder is replaced by a rename), and the lock also guards an
output that does not exist yet. Only where the parent folder takes no new files does
the lock go inside an existing output folder (``INNER_LOCK_NAME``).

Why ``flock`` and not a file created with ``O_CREAT | O_EXCL``: the kernel releases a
``flock`` when its holder ends in any way (a crash, ``kill -9``), so a lock left by a
killed process is recognised without trusting process ids, which are reused; and
taking it over is the kernel's single atomic ``flock`` call, so of two processes
racing for a stale lock exactly one wins. (Taking over an ``O_EXCL`` file means
removing it and creating it again, and two processes that both judged it stale can
both succeed.) The file records who holds the lock, for the refusal message.

Release removes the file while still holding it; a process that opened the file just
before is left holding a removed file, so every acquirer checks, once it has the
lock, that its file is still the one at the path, and tries again otherwise.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import socket
import time
from typing import Iterator

from fmuia.errors import FolderInUseError
from fmuia.io.outputs import check_writable, writing

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

__all__ = ["INNER_LOCK_NAME", "OutputLock", "claim_output", "lock_path"]

# File systems without flock support (some network mounts) answer with one of these.
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)
# A folder that takes no new files.
_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)
# The lock inside an output folder whose parent takes no new files (see OutputLock._open).
INNER_LOCK_NAME = ".fmuia.lock"


def lock_path(target: "str | os.PathLike[str]") -> str:
    """The lock file of ``target``: ``.<name>.lock`` in the same folder (a hashed name
    when the plain one would be longer than file names may be)."""
    target = os.path.abspath(os.fspath(target))
    parent, name = os.path.split(target)
    lock_name = f".{name}.lock"
    if len(os.fsencode(lock_name)) > 255:
        lock_name = f".{name[:80]}.{hashlib.sha1(os.fsencode(name)).hexdigest()}.lock"
    return os.path.join(parent, lock_name)


def _missing_folders(folder: str) -> list[str]:
    """The folders of ``folder``'s path that do not exist yet, outermost first."""
    missing = []
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing[::-1]


def _may_be_running(holder: dict) -> bool:
    """False when ``holder`` names a process of this host that has ended."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, owned by another user
    return True


def _read_holder(fd: int, wait_s: float = 0.0) -> dict:
    """The holder record in the lock file. A holder that has just taken the lock writes
    its record a moment later, over an empty file or the record of a killed holder
    before it, so this waits up to ``wait_s`` for a record of a live process."""
    deadline = time.monotonic() + wait_s
    holder: dict = {}
    while True:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        except (OSError, ValueError):
            holder = {}
        if (holder and _may_be_running(holder)) or time.monotonic() >= deadline:
            return holder
        time.sleep(0.02)


def _describe(holder: dict) -> str:
    if not holder:
        return "process id not recorded yet"
    text = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if holder.get("command"):
        text += f", fmuia {holder['command']}"
    if holder.get("started"):
        text += f", started {holder['started']}"
    return text


class OutputLock:
    """``with OutputLock(target, "train"):`` holds ``target``'s lock for the block; a
    second holder is refused with ``FolderInUseError`` naming the first one."""

    def __init__(self, target: "str | os.PathLike[str]", command: str) -> None:
        self.target = os.fspath(target)
        self.command = command
        self.path = lock_path(target)
        self._fd: int | None = None
        self._owner_pid: int | None = None
        self._created: list[str] = []

    def acquire(self) -> None:
        if fcntl is None:  # pragma: no cover
            log.warning("%s: this system has no file locks; nothing stops a second writer", self.target)
            return
        parent = os.path.dirname(self.path)
        with writing(self.target, "lock the output"):
            self._created = _missing_folders(parent)
            os.makedirs(parent, exist_ok=True)
            while True:
                fd = self._open()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = _read_holder(fd, wait_s=1.0)
                    os.close(fd)
                    raise FolderInUseError(
                        f"{self.target}: another fmuia process is writing it ({_describe(holder)}; lock file "
                        f"{self.path}); wait for it to finish or choose another output") from None
                except OSError as exc:
                    os.close(fd)
                    if exc.errno not in _NO_LOCKS:
                        raise
                    log.warning("%s: the file system does not support locks (%s); nothing stops a second writer",
                                self.target, exc.strerror)
                    return
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:
                    current = None
                if current is not None and os.path.samestat(os.fstat(fd), current):
                    break
                os.close(fd)  # locked a file its holder removed on release: take the new one
            previous = _read_holder(fd)
            if previous:
                log.warning("%s: taking over the lock left by %s, which ended without releasing it",
                            self.target, _describe(previous))
            record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                      "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
            self._fd, self._owner_pid = fd, os.getpid()
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
            except OSError:
                self.release()
                raise

    def _open(self) -> int:
        """The lock file, opened (created when missing). Where the output's parent
        refuses new files but the output folder exists and takes them (a container's
        ``/output`` under a read-only ``/``), the lock lives inside the folder, as
        ``INNER_LOCK_NAME``, which the folder checks ignore."""
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            inner = os.path.join(self.target, INNER_LOCK_NAME)
            if exc.errno not in _REFUSED or not os.path.isdir(self.target) or self.path == inner:
                raise
            self.path = inner
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)

    def release(self) -> None:
        """Remove the lock file and let go; a forked child (data loader worker) that
        inherited the lock leaves it to its parent."""
        fd, self._fd = self._fd, None
        if fd is None or os.getpid() != self._owner_pid:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        finally:
            os.close(fd)
        # Folders made only to hold the lock go again when nothing was written into them.
        for folder in reversed(self._created):
            try:
                os.rmdir(folder)
            except OSError:
                break

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


@contextlib.contextmanager
def claim_output(target: "str | os.PathLike[str]", command: str, what: str = "the output folder",
                 folder: bool = True, lock: bool = True) -> Iterator[None]:
    """``check_writable(target)``, then ``target``'s lock held for the block (``lock``
    false, for the processes of a distributed run other than the first: the check only)."""
    check_writable(target, what, folder=folder)
    if not lock:
        yield
        return
    with OutputLock(target, command):
        yield
