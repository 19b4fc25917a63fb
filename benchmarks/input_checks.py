"""What fmuia's input checks cost, side by side with the work they guard, on a
synthetic test split (``fmuia.synthetic``, 27 tasks):

- ``header check``: what ``fmuia predict`` does before it writes anything, reading
  every input image's header (``fmuia.data.validate.image_header_problems``);
- ``decode``: reading every image's pixels once (``read_image``), the least any
  prediction does with them;
- ``decode, stderr open``: the same with file descriptor 2 left where it is, to price
  the silencing of libpng/libjpeg messages around each native decode;
- ``predict``: ``Predictor.predict_dataset`` end to end (a small random network), the
  header check included.

Variants run round-robin, files warm in the page cache after the first round; the
table reports medians and each variant's ratio to ``decode``.

    python benchmarks/input_checks.py                       # 8 test images per task
    python benchmarks/input_checks.py --per-task 20 --repeats 7
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time

import torch

import fmuia
import fmuia.io.images as images
from fmuia.data.layout import read_layout
from fmuia.data.validate import image_header_problems
from fmuia.model import ModelConfig, build_model, save_checkpoint
from fmuia.synthetic import generate
from fmuia.tasks import fmuia2026


def _decode_all(entries) -> None:
    for entry in entries:
        images.read_image(entry.image_file)


def _decode_all_stderr_open(entries) -> None:
    silenced = images._native_stderr_silenced
    images._native_stderr_silenced = contextlib.nullcontext
    try:
        _decode_all(entries)
    finally:
        images._native_stderr_silenced = silenced


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-task", type=int, default=8, help="test images per task (27 tasks)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--encoder", default="resnet18", help="the network of the predict variant")
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="fmuia-bench-input-checks-")
    generate(work, seed=0, splits={"test": args.per_task}, unlabelled_test=True)
    root = os.path.join(work, "test")
    entries = read_layout(root).entries
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder=args.encoder, pretrained="none", image_size=args.image_size), fmuia2026())
    save_checkpoint(model.eval(), os.path.join(work, "ckpt"))
    predictor = fmuia.load(os.path.join(work, "ckpt"), device="cpu")
    out = os.path.join(work, "pred")

    def predict() -> None:
        shutil.rmtree(out, ignore_errors=True)
        predictor.predict_dataset(root, out, progress=False)

    variants = {
        "header check": lambda: image_header_problems(entries),
        "decode": lambda: _decode_all(entries),
        "decode, stderr open": lambda: _decode_all_stderr_open(entries),
        "predict": predict,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(args.repeats + 1):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            if rep:  # the first round warms the page cache and the network
                times[name].append(time.perf_counter() - start)

    print(f"{len(entries)} synthetic test images ({args.per_task} per task), {os.cpu_count()} CPU(s), "
          f"predict with {args.encoder} at {args.image_size}px; medians of {args.repeats}")
    base = statistics.median(times["decode"])
    print(f"{'variant':<22} {'ms':>9} {'x decode':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<22} {1000 * median:>9.1f} {median / base:>9.3f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
