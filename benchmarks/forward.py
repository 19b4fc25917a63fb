"""Images/s of the multi-task network: inference and training step, one task per batch
(as the seed trains) vs mixed-task batches, NCHW vs channels_last, fp32 vs bf16 autocast.

Variants run round-robin (one repeat of each in turn, so drifting machine load hits all
alike) and the table reports medians. Peak memory is the peak RSS of the process during
the variant (Linux: /proc/self/clear_refs + VmHWM) on CPU, max_memory_allocated on GPU.

    python benchmarks/forward.py                       # efficientnet_b4, batch 8, 256 px
    python benchmarks/forward.py --quick --encoder resnet18
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import random
import statistics
import time
from dataclasses import dataclass

import torch

from fmuia.model import ModelConfig, autocast, build_model, cpu_has_fast_bf16, resolve_precision
from fmuia.tasks import Kind, fmuia2026


@dataclass(frozen=True)
class Variant:
    mode: str  # infer | train
    batching: str  # single | mixed
    layout: str  # nchw | cl
    precision: str  # fp32 | bf16

    @property
    def label(self) -> str:
        return f"{self.mode:<5} {self.batching:<6} {self.layout:<4} {self.precision}"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak-RSS counter (VmHWM)


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batches_for(batching: str, registry, batch: int, n_batches: int, seed: int) -> list[list[str]]:
    """Task ids of each batch. single: one task per batch, cycling over one task of each
    kind; mixed: tasks drawn uniformly from all tasks."""
    rng = random.Random(seed)
    if batching == "single":
        reps = [registry.of_kind(k)[0].task_id for k in Kind if registry.of_kind(k)]
        return [[reps[i % len(reps)]] * batch for i in range(n_batches)]
    ids = registry.task_ids
    return [[rng.choice(ids) for _ in range(batch)] for _ in range(n_batches)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="efficientnet_b4")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per variant (median reported)")
    ap.add_argument("--batches", type=int, default=4, help="batches per repeat (one per kind for 'single')")
    ap.add_argument("--quick", action="store_true", help="2 repeats, 2 batches, inference only")
    ap.add_argument("--modes", default="infer,train", help="comma list of infer, train")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.batches = 2, 2
    device = torch.device(args.device)
    torch.manual_seed(0)
    registry = fmuia2026()
    base = ModelConfig(encoder=args.encoder, pretrained="none", image_size=args.image_size, channels_last=False)
    models = {"nchw": build_model(base, registry).to(device)}
    models["cl"] = build_model(base.replace(channels_last=True), registry).to(device)
    models["cl"].load_state_dict(models["nchw"].state_dict())
    models["cl"].to(memory_format=torch.channels_last)
    train_models = {k: copy.deepcopy(m) for k, m in models.items()}
    optimisers = {k: torch.optim.SGD(m.parameters(), lr=1e-6, momentum=0.9) for k, m in train_models.items()}
    for m in models.values():
        m.eval()
    for m in train_models.values():
        m.train()

    modes = ["infer"] if args.quick else [m for m in ("infer", "train") if m in args.modes.split(",")]
    variants = [Variant(mo, b, lay, p) for mo in modes for b in ("single", "mixed") for lay in ("nchw", "cl") for p in ("fp32", "bf16")]
    size = args.image_size
    images = torch.randn(args.batch, 3, size, size, device=device)
    plans = {b: batches_for(b, registry, args.batch, args.batches, seed=1) for b in ("single", "mixed")}

    def run(v: Variant) -> None:
        ctx = autocast(v.precision, device)
        if v.mode == "infer":
            with torch.inference_mode(), ctx:
                for task_ids in plans[v.batching]:
                    model_out = models[v.layout](images, task_ids)
        else:
            model, opt = train_models[v.layout], optimisers[v.layout]
            for task_ids in plans[v.batching]:
                with ctx:
                    model_out = model(images, task_ids)
                    loss = sum(o.float().square().mean() for o in model_out.values())
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for v in variants:  # warm-up (oneDNN/cuDNN kernel selection, allocator)
        run(v)
    times: dict[Variant, list[float]] = {v: [] for v in variants}
    peaks: dict[Variant, float] = {v: 0.0 for v in variants}
    for _ in range(args.repeats):
        for v in variants:
            reset_peak(device)
            start = time.perf_counter()
            run(v)
            times[v].append(time.perf_counter() - start)
            peaks[v] = max(peaks[v], peak_mib(device))

    n_images = args.batch * args.batches
    auto = resolve_precision("auto", device)
    print(f"encoder {args.encoder}, batch {args.batch}, {size}x{size}, {len(registry)} tasks, device {device}, "
          f"threads {torch.get_num_threads()}, cpu fast bf16: {cpu_has_fast_bf16()}, precision auto -> {auto}")
    print(f"{args.repeats} round-robin repeats of {args.batches} batches per variant; medians")
    print(f"{'mode  batch  lay  prec':<26} {'img/s':>8} {'min..max':>15} {'vs fp32 nchw':>13} {'peak MiB':>9}")
    for v in variants:
        ips = sorted(n_images / t for t in times[v])
        ref = statistics.median(n_images / t for t in times[Variant(v.mode, v.batching, "nchw", "fp32")])
        med = statistics.median(ips)
        print(f"{v.label:<26} {med:>8.2f} {ips[0]:>7.2f}..{ips[-1]:<7.2f} {med / ref:>12.2f}x {peaks[v]:>9.0f}")

    # fp32 vs bf16 output difference on one mixed batch (inference, channels_last)
    kinds = [k for k in Kind if registry.of_kind(k)]
    task_ids = [registry.of_kind(kinds[i % len(kinds)])[0].task_id for i in range(max(args.batch, len(kinds)))]
    images = images[:1].expand(len(task_ids), -1, -1, -1).contiguous()
    with torch.inference_mode():
        ref_out = models["cl"](images, task_ids)
        with autocast("bf16", device):
            bf_out = models["cl"](images, task_ids)
    print("fp32 vs bf16 autocast outputs (raw logits / values), channels_last, one batch holding every kind:")
    for kind in Kind:
        ids = [t for t in ref_out if registry[t].kind is kind]
        if not ids:
            continue
        diff = max((ref_out[t] - bf_out[t]).abs().max().item() for t in ids)
        mean_diff = statistics.mean((ref_out[t] - bf_out[t]).abs().mean().item() for t in ids)
        scale = statistics.mean(ref_out[t].abs().mean().item() for t in ids)
        print(f"  {kind.value:<15} max |diff| {diff:.4f}  mean |diff| {mean_diff:.4f}  mean |fp32| {scale:.4f}  "
              f"relative {mean_diff / max(scale, 1e-12):.3%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
