"""The output lock: one writer at a time, decided by the kernel, across real processes;
a lock left by a killed process is taken over, by exactly one of two racers."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from fmuia.errors import FolderInUseError
from fmuia.io.lock import INNER_LOCK_NAME, OutputLock, claim_output, lock_path

SRC = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "src")

# Waits for the barrier file, then tries the lock; a winner holds it until every
# contender has tried (each leaves a "tried.<pid>" file), however the OS schedules them.
_CONTENDER = textwrap.dedent("""
    import os, sys, time
    from fmuia.errors import FolderInUseError
    from fmuia.io.lock import OutputLock
    target, barrier, contenders = sys.argv[1], sys.argv[2], int(sys.argv[3])
    folder = os.path.dirname(barrier)
    tried = lambda: sum(name.startswith("tried.") for name in os.listdir(folder))
    open(barrier + "." + str(os.getpid()), "w").close()
    while not os.path.exists(barrier):
        time.sleep(0.001)
    try:
        with OutputLock(target, "test"):
            print("won", flush=True)
            open(os.path.join(folder, "tried." + str(os.getpid())), "w").close()
            deadline = time.monotonic() + 120
            while tried() < contenders and time.monotonic() < deadline:
                time.sleep(0.005)
    except FolderInUseError as exc:
        print("refused:", exc, flush=True)
        open(os.path.join(folder, "tried." + str(os.getpid())), "w").close()
""")


def _start(target, barrier, contenders: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC)}
    return subprocess.Popen([sys.executable, "-c", _CONTENDER, str(target), str(barrier), str(contenders)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _race(tmp_path, target) -> list[tuple[int, str, str]]:
    """Two processes, released together by one barrier file: (pid, stdout, stderr) each."""
    barrier = tmp_path / "go"
    procs = [_start(target, barrier, 2) for _ in range(2)]
    deadline = time.monotonic() + 60
    while sum(1 for p in tmp_path.iterdir() if p.name.startswith("go.")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    barrier.touch()
    return [(p.pid, *p.communicate(timeout=180)) for p in procs]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _assert_one_winner(results) -> None:
    winners = [pid for pid, out, _err in results if out.startswith("won")]
    refused = [out for _pid, out, _err in results if out.startswith("refused:")]
    assert len(winners) == 1 and len(refused) == 1, results
    assert f"process {winners[0]} on " in refused[0] and "another fmuia process is writing it" in refused[0]


def test_two_processes_started_together_one_wins_the_other_names_it(tmp_path):
    target = tmp_path / "runs" / "run1"
    results = _race(tmp_path, target)
    _assert_one_winner(results)
    assert not os.path.exists(lock_path(target))  # released on exit
    assert not (tmp_path / "runs").exists()  # the folder made for the lock alone is gone again


def test_two_processes_racing_for_a_stale_lock_one_wins(tmp_path, caplog):
    target = tmp_path / "out"
    dead = _dead_pid()
    with open(lock_path(target), "w") as fh:
        json.dump({"pid": dead, "host": socket.gethostname(), "command": "train"}, fh)
    results = _race(tmp_path, target)
    _assert_one_winner(results)  # the one refused names the new holder, never the dead one
    winner_err = next(err for _pid, out, err in results if out.startswith("won"))
    assert f"taking over the lock left by process {dead} on {socket.gethostname()}" in winner_err


def test_a_killed_holder_leaves_a_lock_that_is_taken_over(tmp_path, caplog):
    target = tmp_path / "out"
    barrier = tmp_path / "go"
    barrier.touch()
    holder = _start(target, barrier, 2)  # holds until killed: no second contender comes
    assert holder.stdout.readline().startswith("won")
    with pytest.raises(FolderInUseError, match=f"process {holder.pid} on .*fmuia test"):
        OutputLock(target, "train").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    assert json.loads(open(lock_path(target)).read())["pid"] == holder.pid  # left behind
    with caplog.at_level("WARNING"), OutputLock(target, "train"):
        assert json.loads(open(lock_path(target)).read())["pid"] == os.getpid()
    assert f"taking over the lock left by process {holder.pid}" in caplog.text
    assert not os.path.exists(lock_path(target))


def test_the_lock_is_released_when_the_block_fails(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with claim_output(target, "test"):
            raise RuntimeError("boom")
    with claim_output(target, "test"):
        with pytest.raises(FolderInUseError):  # the same process asking twice is refused too
            OutputLock(target, "test").acquire()
    assert os.listdir(tmp_path) == []


def test_a_long_name_gets_a_hashed_lock_name(tmp_path):
    path = lock_path(tmp_path / ("x" * 250))
    assert os.path.dirname(path) == str(tmp_path) and len(os.path.basename(path)) < 255


def test_under_a_parent_that_takes_no_files_the_lock_goes_inside(tmp_path):
    """A container's /output under a read-only /: the lock is kept in the folder itself."""
    import shutil

    parent, target = tmp_path / "ro", tmp_path / "ro" / "out"
    target.mkdir(parents=True)
    if os.geteuid() != 0 or not shutil.which("chattr") or \
            subprocess.run(["chattr", "+i", str(parent)], capture_output=True).returncode:
        pytest.skip("needs chattr as root")
    try:
        with OutputLock(target, "predict") as lock:
            assert lock.path == str(target / INNER_LOCK_NAME)
            with pytest.raises(FolderInUseError, match=f"process {os.getpid()} on "):
                OutputLock(target, "predict").acquire()
        assert os.listdir(target) == []
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=False)
