"""``fmuia pretrain`` under torchrun: two gloo processes share each epoch's batches and
every rank's views are negatives; only rank 0 writes the run."""
import os
import socket
import subprocess
import sys

import pytest
from safetensors.torch import load_file

import fmuia
from pretrain_helpers import TINY_PRETRAIN, write_grey_images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_pretrain_together(tmp_path):
    images = write_grey_images(str(tmp_path / "images"), count=8)
    run = str(tmp_path / "run")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.path.dirname(os.path.dirname(fmuia.__file__))}
    sets = [arg for item in TINY_PRETRAIN + ["train.batch_size=2"] for arg in ("--set", item)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "fmuia", "pretrain", "--images", images, "--out", run, *sets]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 8 images, batches of 2 on each of 2 processes: 2 steps per epoch
    rows = open(os.path.join(run, "metrics.csv")).read().splitlines()
    assert rows[0].startswith("epoch,step") and [r.split(",")[:2] for r in rows[1:]] == [["1", "2"], ["2", "4"]]
    assert load_file(os.path.join(run, "encoder.safetensors"))
