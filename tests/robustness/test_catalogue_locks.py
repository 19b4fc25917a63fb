"""Two ``fmuia train`` runs started into the same ``--out`` at the same instant: exactly
one trains, the other is refused with an ``error:`` line naming the first one's
process id, and the winner's run folder is complete."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from catalogue_helpers import TINY_TRAIN

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
