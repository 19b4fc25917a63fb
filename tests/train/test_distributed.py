import json
import os
import socket
import subprocess
import sys

import torch

from train_helpers import tiny_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_with_gloo_agree_and_learn(train_root, tmp_path):
    config = tiny_config(epochs=3)
    config["sampler"] = {"batches_per_epoch": 8}
    config["optim"] = {"lr": 2e-3}
    worker = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.path.dirname(__file__)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), worker, train_root, str(tmp_path), json.dumps(config)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2 and r0["batches"] == 4  # 8 global batches shared by 2 ranks
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    assert r0["losses"] == r1["losses"]  # the all-reduced mean loss
    assert r0["losses"][-1] < r0["losses"][0]
    # only rank 0 wrote the run
    assert os.path.exists(tmp_path / "run" / "last" / "model.safetensors")
    assert len(open(tmp_path / "run" / "metrics.csv").read().splitlines()) == 4
