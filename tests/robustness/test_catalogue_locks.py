"""One writer per output, from the command line: two ``fmuia train`` runs started into
the same ``--out`` at the same instant (exactly one trains, the other is refused with
an ``error:`` line naming the first one's process id); every command refused while
another process holds its output's lock; a lock left by a dead process taken over."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from catalogue_helpers import COMMANDS, TINY_TRAIN, fingerprint, run_cli

SRC = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "src")

# Imports everything first, then waits for the barrier file: both runs reach the lock together.
_RUN_CLI = textwrap.dedent("""
    import os, sys, time
    import torch
    from fmuia.cli.main import main
    import fmuia.train.engine
    barrier = sys.argv[1]
    open(barrier + "." + str(os.getpid()), "w").close()
    while not os.path.exists(barrier):
        time.sleep(0.001)
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.slow
def test_two_trains_started_together_one_runs_the_other_is_refused(tmp_path, train_root):
    out = tmp_path / "run"
    barrier = tmp_path / "go"
    argv = ["train", "--data", train_root, "--out", str(out), *TINY_TRAIN, "--set", "train.epochs=1",
            "--set", "train.max_steps=1", "--set", "data.check=none"]
    env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _RUN_CLI, str(barrier), *argv], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    deadline = time.monotonic() + 120
    while sum(p.name.startswith("go.") for p in tmp_path.iterdir()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    barrier.touch()
    results = [(p.pid, *p.communicate(timeout=300), p.returncode) for p in procs]
    codes = sorted(code for *_, code in results)
    assert codes == [0, 2], results
    winner = next(pid for pid, _out, _err, code in results if code == 0)
    loser_err = next(err for _pid, _out, err, code in results if code == 2)
    errors = [line for line in loser_err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{out}: another fmuia process is writing it (process {winner} on " in errors[0]
    assert "Traceback" not in loser_err
    assert json.loads((out / "run.json").read_text())["data_root"] == os.path.abspath(train_root)
    assert (out / "last").is_dir() and (out / "config.yaml").is_file() and (out / "metrics.csv").is_file()
    assert not os.path.exists(tmp_path / ".run.lock")


# Holds the lock of every output named in its arguments until its stdin closes.
_HOLDER = textwrap.dedent("""
    import sys
    from fmuia.io.lock import OutputLock
    held = [OutputLock(path, "test").__enter__() for path in sys.argv[1:]]
    print("held", flush=True)
    sys.stdin.read()
""")
LOCKED = [command for command in COMMANDS if command != "validate --json"]  # one file, written atomically


@pytest.fixture(scope="module")
def held_outputs(tmp_path_factory):
    """(holder's pid, command -> an output path whose lock another process holds)."""
    base = tmp_path_factory.mktemp("held")
    outputs = {command: str(base / command.replace(" ", "-") / COMMANDS[command][1]) for command in LOCKED}
    env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, *outputs.values()], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline() == "held\n"
    yield holder.pid, outputs
    holder.stdin.close()
    holder.wait(timeout=60)


@pytest.mark.parametrize("command", LOCKED)
def test_an_output_another_process_writes_is_refused(command, held_outputs, command_inputs, capsys):
    pid, outputs = held_outputs
    out = outputs[command]
    before = fingerprint(os.path.dirname(out))
    code, _out, err = run_cli(COMMANDS[command][0](command_inputs, out), capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert f"{out}: another fmuia process is writing it (process {pid} on " in errors[0] and "Traceback" not in err
    assert fingerprint(os.path.dirname(out)) == before and not os.path.exists(out)


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, command_inputs, capsys, caplog):
    out = tmp_path / "synthetic"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".synthetic.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with caplog.at_level("WARNING"):
        code, _out, err = run_cli(COMMANDS["synth"][0](command_inputs, str(out)), capsys)
    assert code == 0, err
    assert f"taking over the lock left by process {dead.pid} on {socket.gethostname()}" in caplog.text
    assert (out / "train" / "csv_files" / "breast_2cls.csv").is_file()
    assert sorted(os.listdir(tmp_path)) == ["synthetic"]  # the lock file went with the run
