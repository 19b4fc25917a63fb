import json
import os
import socket
import subprocess
import sys

import torch

import fmuia
from fmuia.train.distributed import Dist
from train_helpers import tiny_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(train_root, tmp_path, config):
    """``ddp_worker.py`` on two gloo processes; what rank 0 and rank 1 wrote."""
    worker = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
    # the fmuia under test, wherever this process imported it from
    path = os.pathsep.join([os.path.dirname(__file__), os.path.dirname(os.path.dirname(fmuia.__file__))])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), worker, train_root, str(tmp_path), json.dumps(config)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (torch.load(tmp_path / "rank0.pt", weights_only=True), torch.load(tmp_path / "rank1.pt", weights_only=True))


def test_two_cpu_processes_with_gloo_agree_and_learn(train_root, tmp_path):
    config = tiny_config(epochs=3)
    config["sampler"] = {"batches_per_epoch": 8}
    config["optim"] = {"lr": 2e-3}
    r0, r1 = run_two_ranks(train_root, tmp_path, config)
    assert r0["world"] == r1["world"] == 2 and r0["batches"] == 4  # 8 global batches shared by 2 ranks
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    assert r0["losses"] == r1["losses"]  # the all-reduced mean loss
    assert r0["losses"][-1] < r0["losses"][0]
    # only rank 0 wrote the run
    assert os.path.exists(tmp_path / "run" / "last" / "model.safetensors")
    assert len(open(tmp_path / "run" / "metrics.csv").read().splitlines()) == 4


def test_learned_loss_weights_stay_the_same_on_every_rank(train_root, tmp_path):
    """Each rank trains other tasks; the balance's gradients are averaged over the ranks,
    so both end with the same log-variances, and every task's has moved."""
    config = tiny_config(epochs=1)
    config["sampler"] = {"batches_per_epoch": 8}
    config["loss"] = {"balance": "uncertainty"}
    r0, r1 = run_two_ranks(train_root, tmp_path, config)
    assert sorted(r0["balance"]) == sorted(r1["balance"]) and len(r0["balance"]) == 4
    for task in r0["balance"]:
        assert torch.equal(r0["balance"][task], r1["balance"][task]), task
        assert float(r0["balance"][task]) != 0.0, task
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k


def _average_on_two_ranks(rank: int, port: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        both, only_rank0, neither = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
        both.grad = torch.tensor([1.0, 2.0]) * (rank + 1)  # rank 0: [1, 2], rank 1: [2, 4]
        if rank == 0:
            only_rank0.grad = torch.tensor([4.0, -2.0])
        Dist(rank=rank, world_size=2).average_gradients([both, only_rank0, neither])
        torch.save({"both": both.grad, "only_rank0": only_rank0.grad, "neither": neither.grad}, f"{out}/grads{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_average_gradients_of_parameters_outside_ddp(tmp_path):
    """As DDP averages a model's gradients: sum over ranks / world size, a rank without a
    gradient adding zero, and no gradient where no rank had one."""
    torch.multiprocessing.spawn(_average_on_two_ranks, args=(free_port(), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        grads = torch.load(tmp_path / f"grads{rank}.pt", weights_only=True)
        assert torch.equal(grads["both"], torch.tensor([1.5, 3.0]))
        assert torch.equal(grads["only_rank0"], torch.tensor([2.0, -1.0]))
        assert grads["neither"] is None
    single = torch.nn.Parameter(torch.zeros(1))
    single.grad = torch.ones(1)
    Dist().average_gradients([single])  # one process: nothing to average
    assert torch.equal(single.grad, torch.ones(1))
