"""Speed of every stage and every inference backend, side by side in one run.

One machine, one synthetic data set, one random-weight checkpoint per network and
recipe, shared by every row. Stages:

- predict: ``fmuia predict`` as a process (reading images to writing the submission,
  start-up and model loading included): images/s of the process's wall time, the
  pipeline's own images/s (its summary line, without start-up), and the process's peak
  RSS (the largest of it and its reader processes);
- network: the predictor's ``decoded`` on batches already read and resized (forward
  pass, flipped rows included where the flip is on, and output decoding): images/s;
- evaluate: ``fmuia evaluate`` as a process on the torch fp32 predictions: images/s;
- train: optimiser steps of the improved recipe's model (data in memory): steps/s,
  images/s and peak RSS.

Rows: the improved recipe (``configs/fmuia_plus.yaml``'s model section) with and
without its test-time flip on torch fp32, onnxruntime fp32, OpenVINO fp32 and OpenVINO
int8 (NNCF, calibrated on the synthetic training split; with the flip also with a warm
compiled-model cache, ``--openvino-cache``), and the baseline recipe
(``configs/fmuia2026_baseline.yaml``) on torch fp32; for EfficientNet-B4 at 256 px (the
challenge network) and EfficientNet-Lite0 at 128 px (the quality benchmark's). Repeats
run round-robin (one of each row in turn, so that load changes hit all rows alike);
figures are medians; ratios are against the improved recipe on torch eager fp32 with
the same flip setting, measured in the same run.

    python benchmarks/speed.py                          # both networks, CPU, 3 repeats (hours on 2 cores:
                                                        # Lite0 takes 12 min, B4 at 540 images most of it)
    python benchmarks/speed.py --networks b4 --per-task 8 --only "improved openvino int8 flip"
                                                        # B4's int8 row and its reference (10-15 min)
    python benchmarks/speed.py --networks lite0 --threads 1
    python benchmarks/speed.py --device cuda            # torch rows on the GPU (graph backends stay on CPU)
    python benchmarks/speed.py --quick                  # smoke test: tiny network, one repeat
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forward import peak_mib, reset_peak  # noqa: E402  (one peak-memory method for all benchmarks)

from fmuia.config.loading import load_config
from fmuia.data.layout import read_layout
from fmuia.model import ModelConfig, build_model, save_checkpoint
from fmuia.predict.api import load
from fmuia.predict.onnx_graph import export_onnx
from fmuia.predict.openvino_graph import export_openvino
from fmuia.predict.pipeline import _collate, _Images, size_runs
from fmuia.synthetic import generate
from fmuia.tasks import fmuia2026

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")
# name -> (encoder, image size)
NETWORKS = {"b4": ("efficientnet_b4", 256), "lite0": ("tf_efficientnet_lite0", 128), "tiny": ("resnet18", 64)}
RECIPES = {"improved": "fmuia_plus.yaml", "baseline": "fmuia2026_baseline.yaml"}


@dataclass(frozen=True)
class Row:
    recipe: str
    backend: str
    precision: str
    flip: bool
    cached: bool = False  # OpenVINO's compiled-model cache (``fmuia predict --openvino-cache``), warm

    @property
    def label(self) -> str:
        return (f"{self.recipe} {self.backend} {self.precision} {'flip' if self.flip else 'no flip'}"
                + (" cached" if self.cached else ""))

    @property
    def reference(self) -> "Row":
        return Row("improved", "torch", "fp32", self.flip)


ROWS = [Row("improved", b, p, flip) for flip in (True, False)
        for b, p in (("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8"))]
ROWS.insert(4, Row("improved", "openvino", "int8", True, cached=True))
ROWS.append(Row("baseline", "torch", "fp32", False))


def selected_rows(only: list[str] | None) -> list[Row]:
    """The rows to measure, in ``ROWS`` order: those named in ``only`` (every row
    without it) and the torch fp32 rows their ratios are against."""
    wanted = [r for r in ROWS if not only or r.label in only]
    wanted += [r.reference for r in wanted]
    return [r for r in ROWS if r in wanted]


def model_config(recipe: str, encoder: str, size: int) -> ModelConfig:
    recipe_config = load_config(os.path.join(CONFIGS, RECIPES[recipe]))  # extends and changes resolved
    return replace(recipe_config.model, encoder=encoder, image_size=size, pretrained="none")


def prepare(work: str, network: str, args) -> dict[tuple[str, str, str], str]:
    """Checkpoints and exported models of ``network``: (recipe, backend, precision) -> path."""
    encoder, size = NETWORKS[network]
    files, seconds = {}, {}
    for recipe in RECIPES:
        torch.manual_seed(0)
        model = build_model(model_config(recipe, encoder, size), fmuia2026()).eval()
        folder = os.path.join(work, network, recipe)
        save_checkpoint(model, os.path.join(folder, "ckpt"))
        files[recipe, "torch", "fp32"] = os.path.join(folder, "ckpt")
        if recipe != "improved":
            continue
        start = time.perf_counter()
        export_onnx(model, os.path.join(folder, "model.onnx"))
        files[recipe, "onnxruntime", "fp32"] = os.path.join(folder, "model.onnx")
        seconds["onnx"] = time.perf_counter() - start
        start = time.perf_counter()
        export_openvino(model, os.path.join(folder, "fp32", "model.xml"))
        files[recipe, "openvino", "fp32"] = os.path.join(folder, "fp32", "model.xml")
        seconds["openvino fp32"] = time.perf_counter() - start
        start = time.perf_counter()
        calibrated = export_openvino(model, os.path.join(folder, "int8", "model.xml"), calibration=args.train_root,
                                     calibration_images=args.calibration_images)["calibration"]
        files[recipe, "openvino", "int8"] = os.path.join(folder, "int8", "model.xml")
        seconds["openvino int8 (with calibration)"] = time.perf_counter() - start
    print(f"{network}: export " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
          + f" (int8 calibrated on {calibrated['images']} images of {calibrated['tasks']} tasks)", flush=True)
    return files


def child_env(args) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.path.join(ROOT, "src"), os.environ.get("PYTHONPATH")) if p))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def peak_rss_mib(pid: int) -> float:
    """The largest VmHWM (peak resident memory since exec) of ``pid`` and its children
    (the prediction's image readers), in MiB; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            own = next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), 0) / 1024
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            children = [int(c) for c in fh.read().split()]
    except (OSError, ValueError):
        return 0.0
    return max([own, *(peak_rss_mib(c) for c in children)])


def run_process(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB: the process's or its largest reader's, sampled every
    50 ms; the kernel's rusage of a child starts from this process's own size at the
    fork) and stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    with ThreadPoolExecutor(max_workers=1) as pool:
        finished = pool.submit(proc.communicate)
        while not finished.done():
            peak = max(peak, peak_rss_mib(proc.pid))
            time.sleep(0.05)
        out, err = finished.result()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"error: {' '.join(command)} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak, out


def openvino_cache(work: str, network: str, row: Row) -> str | None:
    return os.path.join(work, network, "openvino-cache") if row.cached else None


def predict_command(path: str, row: Row, out: str, args, cache: str | None) -> list[str]:
    return [sys.executable, "-m", "fmuia", "predict", "--checkpoint", path, "--data", args.test_root, "--out", out,
            "--overwrite", "--no-progress", "--device", args.device if row.backend == "torch" else "cpu",
            "--backend", row.backend, "--precision", row.precision, "--tta" if row.flip else "--no-tta",
            "--batch-size", str(args.batch_size), *(["--openvino-cache", cache] if cache else [])]


def preload(predictor, root: str, batch_size: int):
    """Batches of uint8 images already read and resized, as the pipeline forms them."""
    entries = read_layout(root, base=predictor.registry).entries
    reader = _Images(entries, predictor.input_sizes)
    batches = []
    for rows in size_runs(entries, predictor.input_sizes, batch_size):
        images, indices, _, errors = _collate([reader[i] for i in rows])
        assert not errors, errors
        batches.append((images, [entries[i].task_id for i in indices]))
    return batches


def network_seconds(predictor, batches) -> float:
    start = time.perf_counter()
    for images, task_ids in batches:
        predictor.decoded(images, task_ids)
    if str(predictor.device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def train_rates(network: str, args) -> dict[str, float]:
    """Steps/s and images/s of the improved recipe's training step, and peak RSS."""
    from train_step import Setup, make_batches

    encoder, size = NETWORKS[network]
    setup_args = types.SimpleNamespace(device=args.device, encoder=encoder, image_size=size,
                                       config=os.path.join(CONFIGS, RECIPES["improved"]))
    setup = Setup(setup_args, "fp32", "channels_last")
    batches = make_batches(setup.registry, "mixed", args.train_batch, size)
    setup.step(*batches[0])  # warm-up
    steps = []
    reset_peak(setup.device)
    for _ in range(args.repeats):
        start = time.perf_counter()
        for batch in batches[: args.train_steps]:
            setup.step(*batch)
        steps.append((time.perf_counter() - start) / min(args.train_steps, len(batches)))
    per_step = statistics.median(steps)
    return {"steps/s": 1 / per_step, "images/s": args.train_batch / per_step, "peak MiB": peak_mib(setup.device)}


def bench_network(network: str, work: str, args) -> dict:
    files = prepare(work, network, args)
    env = child_env(args)
    n = len(read_layout(args.test_root).entries)
    rows = [r for r in selected_rows(args.only) if (r.recipe, r.backend, r.precision) in files]
    if args.threads:
        torch.set_num_threads(args.threads)
    record: dict[Row, dict[str, list[float]]] = {r: {"process": [], "pipeline": [], "rss": [], "network": []} for r in rows}
    # Loading the cached rows' predictors here fills their cache: the timed processes find it warm.
    predictors = {r: load(files[r.recipe, r.backend, r.precision], device=args.device if r.backend == "torch" else "cpu",
                          backend=r.backend, precision=r.precision, tta=r.flip, threads=args.threads,
                          openvino_cache=openvino_cache(work, network, r)) for r in rows}
    batches = {r: preload(p, args.test_root, args.batch_size) for r, p in predictors.items()}
    for r, p in predictors.items():
        network_seconds(p, batches[r][:2])  # warm-up: kernel selection, allocations
    evaluate = []
    for repeat in range(args.repeats):
        for r in rows:
            out = os.path.join(work, network, "pred", r.label.replace(" ", "-"))
            command = predict_command(files[r.recipe, r.backend, r.precision], r, out, args, openvino_cache(work, network, r))
            wall, rss, stdout = run_process(command, env)
            rate = re.search(r"\(([\d.]+) s, ([\d.]+) images/s\)", stdout)
            record[r]["process"].append(n / wall)
            record[r]["pipeline"].append(float(rate.group(2)) if rate else float("nan"))
            record[r]["rss"].append(rss)
            record[r]["network"].append(n / network_seconds(predictors[r], batches[r]))
        reference_out = os.path.join(work, network, "pred", Row("improved", "torch", "fp32", True).label.replace(" ", "-"))
        scored = os.path.join(work, network, "eval")
        shutil.rmtree(scored, ignore_errors=True)
        wall, _, _ = run_process([sys.executable, "-m", "fmuia", "evaluate", "--data", args.test_root, "--pred",
                                  reference_out, "--out", scored], env)
        evaluate.append(n / wall)
        print(f"{network}: repeat {repeat + 1}/{args.repeats} done", flush=True)
    result = {"network": network, "encoder": NETWORKS[network][0], "image_size": NETWORKS[network][1], "images": n,
              "rows": [], "evaluate images/s": statistics.median(evaluate),
              "train": train_rates(network, args)}
    for r in rows:
        med = {k: statistics.median(v) for k, v in record[r].items()}
        ref = {k: statistics.median(v) for k, v in record[r.reference].items()}
        result["rows"].append({**asdict(r), "label": r.label, "process images/s": med["process"],
                               "pipeline images/s": med["pipeline"], "network images/s": med["network"],
                               "peak RSS MiB": max(record[r]["rss"]),
                               "process x": med["process"] / ref["process"], "pipeline x": med["pipeline"] / ref["pipeline"],
                               "network x": med["network"] / ref["network"]})
    return result


def format_result(result: dict) -> str:
    lines = [f"### {result['encoder']} at {result['image_size']} px ({result['images']} test images)", "",
             "| row | predict process img/s | x | pipeline img/s | x | network img/s | x | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['label']} | {r['process images/s']:.2f} | {r['process x']:.2f} | {r['pipeline images/s']:.2f} | "
                     f"{r['pipeline x']:.2f} | {r['network images/s']:.2f} | {r['network x']:.2f} | {r['peak RSS MiB']:.0f} |")
    t = result["train"]
    lines += ["", f"evaluate (process): {result['evaluate images/s']:.1f} images/s; train step (improved, torch fp32, "
              f"channels_last): {t['steps/s']:.3f} steps/s, {t['images/s']:.2f} images/s, peak RSS {t['peak MiB']:.0f} MiB"]
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default="b4,lite0", help="comma list of b4 (256 px), lite0 (128 px), tiny (64 px)")
    ap.add_argument("--per-task", type=int, default=20,
                    help="synthetic test images per task (27 tasks; default 20: 540 images, the size of the quality "
                         "benchmark's test split)")
    ap.add_argument("--train-per-task", type=int, default=12,
                    help="synthetic training images per task, the int8 calibration pool (default 12)")
    ap.add_argument("--calibration-images", type=int, default=300, help="int8 calibration images (default 300)")
    ap.add_argument("--batch-size", type=int, default=8, help="prediction batch size (default 8, fmuia predict's)")
    ap.add_argument("--train-batch", type=int, default=8, help="training batch size (default 8)")
    ap.add_argument("--train-steps", type=int, default=4, help="timed training steps per repeat (at most 4)")
    ap.add_argument("--repeats", type=int, default=3, help="round-robin repeats; medians are reported (default 3)")
    ap.add_argument("--threads", type=int, default=None, help="threads of every process and backend (default: torch's)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="device of the torch rows and training (the graph backends run on the CPU)")
    ap.add_argument("--out", default=None, help="folder for the JSON results and the work files (default: a temporary one)")
    ap.add_argument("--only", type=lambda text: [n.strip() for n in text.split(",") if n.strip()], default=None,
                    metavar="ROW[,ROW...]",
                    help="only these rows (labels as printed, e.g. 'improved openvino int8 flip'), and the torch fp32 "
                         "rows their ratios are against")
    ap.add_argument("--quick", action="store_true", help="smoke test: the tiny network, 1 image per task, 1 repeat")
    args = ap.parse_args(argv)
    if args.quick:
        args.networks, args.per_task, args.train_per_task, args.calibration_images = "tiny", 1, 1, 27
        args.repeats, args.train_steps, args.train_batch = 1, 1, 2
    unknown_rows = [n for n in args.only or () if n not in {r.label for r in ROWS}]
    if unknown_rows:
        ap.error(f"--only: unknown row(s) {', '.join(map(repr, unknown_rows))} (rows: {', '.join(r.label for r in ROWS)})")
    unknown = [n for n in args.networks.split(",") if n not in NETWORKS]
    if unknown:
        ap.error(f"--networks: unknown {', '.join(unknown)} (known: {', '.join(NETWORKS)})")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device here")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.out or tempfile.mkdtemp(prefix="fmuia-speed-")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    roots = generate(data, seed=1, splits={"train": args.train_per_task, "test": args.per_task}, workers=1).roots
    args.train_root, args.test_root = roots["train"], roots["test"]
    device = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    header = (f"{device}, {os.cpu_count()} cores, threads {args.threads or torch.get_num_threads()}, batch {args.batch_size}, "
              f"{args.repeats} round-robin repeats (medians); x = against improved torch fp32 with the same flip setting")
    print(header, flush=True)
    results = {"machine": header, "networks": []}
    for network in args.networks.split(","):
        result = bench_network(network, work, args)
        results["networks"].append(result)
        print(format_result(result), flush=True)
        with open(os.path.join(work, "speed.json"), "w") as fh:
            json.dump(results, fh, indent=1)
    print(f"wrote {os.path.join(work, 'speed.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
