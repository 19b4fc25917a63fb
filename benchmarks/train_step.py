"""Training-step throughput: one-task batches (the reference recipe) vs mixed-task batches,
fp32 vs bf16, NCHW vs channels_last, eager vs ``torch.compile`` (``--compile``), and the
CPU thread settings (``--threads``: intra-op x inter-op threads, each in its own process,
since inter-op threads can be set only before the first parallel work); peak memory; and
where a step's time goes.

Variants run interleaved (A B C ... A B C ...) so that load changes on the machine hit
all of them alike; each figure is the median over repeats. Images/s counts the images of
the timed steps (forward, loss, backward, optimiser step) with data already in memory.
The breakdown adds what loading a batch from disk costs (decode, resize, augment), with
and without the preprocessing cache.

    python benchmarks/train_step.py                       # CPU defaults: lite0, 128 px, batch 16
    python benchmarks/train_step.py --encoder efficientnet_b4 --image-size 256 --batch 8 --device cuda
    python benchmarks/train_step.py --data DATA_ROOT      # also time data loading from these files
    python benchmarks/train_step.py --quick --compile --threads 1x1,2x1,2x2 --no-memory
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forward import peak_mib, reset_peak  # noqa: E402  (one peak-memory method for all benchmarks)

from fmuia.model import build_model
from fmuia.model.routing import group_indices
from fmuia.tasks import Kind, fmuia2026
from fmuia.train.losses import TaskLoss
from fmuia.config import OptimConfig
from fmuia.train.optim import build_optimizer

# One task of each kind: a "cycle" of steps visits each once (one-task batches) or mixes
# all four in every batch (mixed), so both variants see the same work.
TASKS = ["fetal_abdomen_multi", "fetal_plane_cls", "thyroid_nodule_det", "IUGC"]


def fake_target(task, size: int, rng: np.random.Generator) -> torch.Tensor:
    if task.kind is Kind.SEGMENTATION:
        return torch.from_numpy(rng.integers(0, task.n, (size, size)))
    if task.kind is Kind.CLASSIFICATION:
        return torch.tensor(int(rng.integers(0, task.n)))
    if task.kind is Kind.DETECTION:
        x1, y1 = rng.uniform(0, 0.5, 2)
        return torch.tensor([x1, y1, x1 + 0.3, y1 + 0.3], dtype=torch.float32)
    return torch.from_numpy(rng.uniform(0, 1, (task.n, 2)).astype(np.float32))


def make_batches(registry, batching: str, batch: int, size: int, seed: int = 0):
    """One cycle of batches: per kind a one-task batch, or as many mixed batches."""
    rng = np.random.default_rng(seed)
    batches = []
    for k in range(len(TASKS)):
        ids = [TASKS[k]] * batch if batching == "single" else [TASKS[(k + j) % len(TASKS)] for j in range(batch)]
        images = torch.from_numpy(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
        targets = [fake_target(registry[t], size, rng) for t in ids]
        batches.append((images, ids, targets))
    return batches


class Setup:
    def __init__(self, args, precision: str, layout: str, mode: str = "eager"):
        self.device = torch.device(args.device)
        self.registry = fmuia2026()
        model_cfg = {**_config_model(args), "encoder": args.encoder, "pretrained": "none",
                     "image_size": args.image_size, "channels_last": layout == "channels_last"}
        torch.manual_seed(0)
        self.model = build_model(model_cfg, self.registry).to(self.device).train()
        # The training engine compiles the same way (train.compile): the whole forward.
        self.forward = torch.compile(self.model) if mode == "compiled" else self.model
        self.loss = TaskLoss(self.registry, self.model.head_types)
        self.opt = build_optimizer(self.model, OptimConfig.from_dict({
            "lr": 1e-4, "weight_decay": 0.01, "lr_multipliers": {"encoder": 1.0, "decoder": 10.0, "heads": 10.0}}))
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast(self):
        if self.dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.dtype)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def step(self, images, ids, targets, timings: dict | None = None):
        t0 = time.perf_counter()
        images = images.to(self.device)
        groups = group_indices(ids)
        stacked = {t: torch.stack([targets[i] for i in rows]).to(self.device) for t, rows in groups.items()}
        with self.autocast():
            out = self.forward(images, ids)
        loss, _ = self.loss(out, stacked)
        self.sync()
        t1 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sync()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sync()
        t3 = time.perf_counter()
        if timings is not None:
            timings.setdefault("forward", []).append(t1 - t0)
            timings.setdefault("backward", []).append(t2 - t1)
            timings.setdefault("optimizer", []).append(t3 - t2)
        return float(loss.detach())


# Without --config: the network and augmentation these figures have always been measured
# with (the schema's defaults before they became the baseline recipe): each kind's first
# head type, the plain keypoint regression among them, and brightness/contrast at p=0.5.
MEASURED_HEADS = {"keypoints": "regression"}
MEASURED_AUGMENT = {"default": {"brightness_contrast": 0.5, "noise": 0.0}}


def _config_model(args) -> dict:
    if not args.config:
        return {"heads": MEASURED_HEADS}
    from fmuia.config import load_config

    return load_config(args.config).model.to_dict()


def variants(args):
    """(batches, precision, layout, mode) of every variant to time."""
    precisions = ["fp32", "bf16"] if args.device == "cpu" or torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    out = [v + ("eager",) for v in itertools.product(["single", "mixed"], precisions, ["nchw", "channels_last"])]
    if args.compile:
        out += [("single", "fp32", "nchw", "compiled"), ("single", "fp32", "channels_last", "compiled")]
    return out


# The default recipe's variant (model.channels_last is on by default; CPU trains in fp32).
DEFAULT_VARIANT = ("single", "fp32", "channels_last", "eager")


def thread_rates(args) -> dict[str, float]:
    """Images/s of the default variant per thread setting (``INTRAxINTEROP``), each a
    fresh process; rounds interleave the settings and the figure is the median round."""
    settings = [t.strip() for t in args.threads.split(",") if t.strip()]
    base = (["--config", args.config] if args.config else []) + [
        "--encoder", args.encoder, "--image-size", str(args.image_size), "--batch", str(args.batch),
        "--device", args.device, "--repeats", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")])}
    rates: dict[str, list[float]] = {t: [] for t in settings}
    for _ in range(args.thread_rounds):
        for t in settings:
            res = subprocess.run([sys.executable, os.path.abspath(__file__), *base, "--child-threads", t],
                                 capture_output=True, text=True, env=env, timeout=3600)
            if res.returncode != 0:
                raise RuntimeError(res.stderr[-2000:])
            rates[t].append(float(res.stdout.strip().splitlines()[-1]))
    return {t: statistics.median(r) for t, r in rates.items()}


def child_threads(args) -> float:
    """One thread setting's median images/s of the default variant, in this fresh process."""
    intra, interop = (int(x) for x in args.child_threads.split("x"))
    torch.set_num_interop_threads(interop)  # before any parallel work, or torch refuses
    torch.set_num_threads(intra)
    setup = Setup(args, DEFAULT_VARIANT[1], DEFAULT_VARIANT[2])
    batches = make_batches(setup.registry, DEFAULT_VARIANT[0], args.batch, args.image_size)
    for b in batches:  # warm-up
        setup.step(*b)
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for b in batches:
            setup.step(*b)
        rates.append(len(batches) * args.batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def peak_memory_child(args, variant) -> float:
    """Peak memory in MiB of a fresh process running the variant (CPU: peak RSS
    during the steps; CUDA: max allocated)."""
    code = (
        "import sys, json, resource, torch; sys.argv=['x']+json.loads(sys.argv[1]); "
        "import benchmarks.train_step as b; print(json.dumps(b.child_memory()))"
    )
    argv = (["--config", args.config] if args.config else []) + ["--encoder", args.encoder, "--image-size", str(args.image_size), "--batch", str(args.batch),
            "--device", args.device, "--child", ",".join(variant)]
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    res = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, env=env, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return float(json.loads(res.stdout.strip().splitlines()[-1]))


def child_memory() -> float:
    args = parse_args()
    batching, precision, layout, mode = args.child.split(",")
    setup = Setup(args, precision, layout, mode)
    batches = make_batches(setup.registry, batching, args.batch, args.image_size)
    # Peak of the training steps alone: the counter is reset after the model is built
    # (loading pretrained weights can peak higher than a step).
    reset_peak(setup.device)
    for b in batches * 2:
        setup.step(*b)
    return peak_mib(setup.device)


def time_loading(args) -> dict[str, float]:
    """ms per image to load a training sample from disk (decode, resize, augment, to
    tensor), without and with the preprocessing cache (second pass)."""
    from fmuia.config import load_config
    from fmuia.data.cache import SampleCache
    from fmuia.data.torch_datasets import TrainSet
    from fmuia.data.dataset import FMUIADataset
    from fmuia.data.transforms import build_train_transform, policy_for

    cfg = load_config({"augment": MEASURED_AUGMENT})
    ds = FMUIADataset(args.data)
    n = min(len(ds), args.load_samples)
    ds = ds.subset(list(np.linspace(0, len(ds) - 1, n).astype(int)))
    tf = {t.task_id: build_train_transform(args.image_size, t, policy_for(t, cfg.augment)) for t in ds.registry}
    out = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for name, cache in (("load_from_files", None), ("load_cache_build", SampleCache(cache_dir, args.image_size)),
                            ("load_from_cache", SampleCache(cache_dir, args.image_size))):
            ts = TrainSet(ds, tf, cache)
            t0 = time.perf_counter()
            for i in range(n):
                ts[(i, i)]
            out[name] = (time.perf_counter() - t0) / n * 1000
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="take the model section (decoder widths, heads) from this training config")
    p.add_argument("--encoder", default="tf_efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds; figures are medians over them")
    p.add_argument("--data", help="a data root: also time loading samples from its files")
    p.add_argument("--load-samples", type=int, default=64)
    p.add_argument("--no-memory", action="store_true", help="skip the per-variant peak-memory processes")
    p.add_argument("--quick", action="store_true", help="2 rounds, the 4 variants that matter for the default")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile of the fp32 single-task variants (compile time not counted)")
    p.add_argument("--threads", metavar="LIST",
                   help="also time the default variant per thread setting, e.g. 1x1,2x1,2x2 (intra-op x inter-op)")
    p.add_argument("--thread-rounds", type=int, default=3, help="interleaved processes per thread setting (default 3)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-threads", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_threads:
        print(child_threads(args))
        return 0
    chosen = variants(args)
    if args.quick:
        args.repeats = 2
        low = "bf16" if ("single", "bf16", "nchw", "eager") in chosen else "fp16"
        chosen = [v for v in chosen if v[3] == "compiled" or v in {
            ("single", "fp32", "nchw", "eager"), ("mixed", "fp32", "nchw", "eager"), DEFAULT_VARIANT,
            ("single", low, "channels_last", "eager")}]
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, encoder {args.encoder}, "
          f"{args.image_size} px, batch {args.batch}, tasks per cycle {TASKS}")
    setups = {v: Setup(args, v[1], v[2], v[3]) for v in chosen}
    batches = {v: make_batches(setups[v].registry, v[0], args.batch, args.image_size) for v in chosen}
    for v in chosen:  # warm-up: first-call allocations and kernel selection
        for b in batches[v]:
            setups[v].step(*b)
    rates: dict = {v: [] for v in chosen}
    parts: dict = {v: {} for v in chosen}
    for _ in range(args.repeats):
        for v in chosen:
            setups[v].sync()
            t0 = time.perf_counter()
            for b in batches[v]:
                setups[v].step(*b, timings=parts[v])
            rates[v].append(len(batches[v]) * args.batch / (time.perf_counter() - t0))
    seed_style = ("single", "fp32", "nchw", "eager")
    ref = statistics.median(rates[seed_style]) if seed_style in rates else None
    rows = []
    print(f"\n{'batches':<8} {'precision':<9} {'layout':<14} {'mode':<9} {'img/s':>8} {'x seed':>7} {'fwd ms':>8} {'bwd ms':>8} {'opt ms':>8}")
    for v in chosen:
        med = statistics.median(rates[v])
        f, b, o = (statistics.median(parts[v][k]) * 1000 for k in ("forward", "backward", "optimizer"))
        ratio = med / ref if ref else float("nan")
        rows.append({"batches": v[0], "precision": v[1], "layout": v[2], "mode": v[3], "images_per_s": med,
                     "ratio_to_seed": ratio, "forward_ms": f, "backward_ms": b, "optimizer_ms": o, "peak_mib": None})
        print(f"{v[0]:<8} {v[1]:<9} {v[2]:<14} {v[3]:<9} {med:8.1f} {ratio:7.2f} {f:8.1f} {b:8.1f} {o:8.1f}", flush=True)
    if not args.no_memory:
        setups.clear(), batches.clear()  # free the models before the fresh processes run
        print(f"\npeak memory of a fresh process per variant ({'max allocated' if args.device == 'cuda' else 'peak RSS during the steps'}):")
        for row, v in zip(rows, chosen):
            row["peak_mib"] = peak_memory_child(args, v)
            print(f"{v[0]:<8} {v[1]:<9} {v[2]:<14} {v[3]:<9} {row['peak_mib']:8.0f} MiB", flush=True)
    threads = {}
    if args.threads:
        setups.clear(), batches.clear()  # free the models before the fresh processes run
        threads = thread_rates(args)
        first = next(iter(threads.values()))
        print(f"\nthreads (intra-op x inter-op), {DEFAULT_VARIANT}, median of {args.thread_rounds} processes:")
        for t, rate in threads.items():
            print(f"{t:<8} {rate:8.1f} img/s {rate / first:6.2f}x", flush=True)
    loading = time_loading(args) if args.data else {}
    if loading:
        step_ms = (sum(statistics.median(parts[seed_style][k]) for k in ("forward", "backward", "optimizer")) * 1000
                   if seed_style in parts else float("nan"))
        print(f"\ndata loading per image (one process): from files {loading['load_from_files']:.1f} ms, "
              f"first pass building the cache {loading['load_cache_build']:.1f} ms, from the cache {loading['load_from_cache']:.1f} ms")
        print(f"per batch of {args.batch}: {loading['load_from_files'] * args.batch:.0f} ms from files vs "
              f"{loading['load_from_cache'] * args.batch:.0f} ms cached; a seed-style training step (forward, backward, update) takes {step_ms:.0f} ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "variants": rows, "threads_images_per_s": threads,
                       "loading_ms_per_image": loading}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
