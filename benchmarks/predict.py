"""Images/s of ``fmuia predict`` end to end (reading images to writing files) against
the bare forward pass of the same network on the same batches, for PyTorch and
onnxruntime at several batch sizes, with peak memory.

The end-to-end run is ``Predictor.predict_dataset`` on a synthetic test split
(``fmuia.synthetic``); the bare forward runs the backend alone on the same
batches, already read, resized and in memory. ``e2e/forward`` close to 1 means image
reading, post-processing and writing are overlapped with the network and never the
bottleneck (target: <= 1.5). Variants run round-robin and the table reports medians.
Peak memory: peak RSS during the variant (Linux VmHWM, reset through
/proc/self/clear_refs) on CPU; max_memory_allocated on GPU.

    python benchmarks/predict.py                                # efficientnet_b4, 256 px
    python benchmarks/predict.py --encoder resnet18 --image-size 64 --per-task 2 --repeats 1
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

import fmuia
from fmuia.data.layout import read_layout
from fmuia.synthetic import generate
from fmuia.model import ModelConfig, build_model, save_checkpoint
from fmuia.predict.pipeline import _collate, _Images
from fmuia.predict.onnx_graph import export_onnx
from fmuia.predict.predictor import normalise
from fmuia.tasks import fmuia2026


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def preload(root: str, image_size: int, batch_size: int):
    entries = read_layout(root).entries
    data = _Images(entries, image_size)
    items = [data[i] for i in range(len(data))]
    batches = []
    for start in range(0, len(items), batch_size):
        images, indices, _, errors = _collate(items[start:start + batch_size])
        assert not errors, errors
        batches.append((images, [entries[i].task_id for i in indices]))
    return batches, len(entries)


def forward_rate(predictor, batches, n: int) -> float:
    device = predictor.device
    start = time.perf_counter()
    for images, task_ids in batches:
        predictor.backend.raw(normalise(images, device), task_ids)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="efficientnet_b4")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--per-task", type=int, default=4, help="test images per task (27 tasks)")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--backends", default="torch,onnx")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32", help="torch backend precision (onnx is fp32)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="fmuia-bench-predict-")
    generate(work, seed=0, splits={"test": args.per_task}, unlabelled_test=True)
    root = os.path.join(work, "test")
    torch.manual_seed(0)
    config = ModelConfig(encoder=args.encoder, pretrained="none", image_size=args.image_size)
    model = build_model(config, fmuia2026()).eval()
    ckpt = os.path.join(work, "ckpt")
    save_checkpoint(model, ckpt)
    onnx_path = os.path.join(work, "model.onnx")
    backends = args.backends.split(",")
    if "onnx" in backends:
        export_onnx(model, onnx_path)
    del model

    predictors = {}
    for name in backends:
        path = onnx_path if name == "onnx" else ckpt
        predictors[name] = fmuia.load(path, device=args.device, backend=name, precision=args.precision)
    device = next(iter(predictors.values())).device
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    preloaded = {b: preload(root, args.image_size, b) for b in sizes}
    n = preloaded[sizes[0]][1]
    print(f"{args.encoder} at {args.image_size}px, {n} test images, device {device}, "
          f"torch precision {args.precision}, {torch.get_num_threads()} threads, workers {args.workers}")

    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    for rep in range(args.repeats):
        for name, predictor in predictors.items():
            for b in sizes:
                rec = results.setdefault((name, b), {"e2e": [], "fwd": [], "peak": []})
                batches, _ = preloaded[b]
                if rep == 0:
                    forward_rate(predictor, batches[:2], n)  # warm-up (allocations, kernels)
                reset_peak(device)
                summary = predictor.predict_dataset(root, os.path.join(work, f"out-{name}-{b}"), batch_size=b,
                                                    workers=args.workers, progress=False)
                rec["e2e"].append(summary.total / summary.seconds)
                rec["peak"].append(peak_mib(device))
                rec["fwd"].append(forward_rate(predictor, batches, n))

    print(f"{'backend':<8} {'batch':>5} {'e2e img/s':>10} {'forward img/s':>14} {'e2e/forward':>12} {'peak MiB':>9}")
    for (name, b), rec in results.items():
        e2e, fwd = statistics.median(rec["e2e"]), statistics.median(rec["fwd"])
        print(f"{name:<8} {b:>5} {e2e:>10.1f} {fwd:>14.1f} {fwd / e2e:>12.2f} {max(rec['peak']):>9.0f}")


if __name__ == "__main__":
    main()
