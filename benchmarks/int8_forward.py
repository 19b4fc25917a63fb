"""Forward pass only, side by side: torch eager fp32, onnxruntime fp32, onnxruntime static
int8, OpenVINO fp32 and OpenVINO int8 (NNCF) on the routed graph of one random-weight model
of all 27 tasks.

The question it answers: does onnxruntime's static int8 (``onnxruntime.quantization``,
QDQ, per-channel weights, only Conv/MatMul/Gemm quantised: with its default operator set,
Resize and Add quantised too, the int8 graph fails to run, a QLinearAdd broadcast error in
the FPN) pay on this graph? Every batch holds segmentation rows (the FPN route, the dearest
one). Calibration is a few random batches: enough for speed, not for accuracy. Repeats run
round-robin; figures are medians; ratios are against torch eager fp32.

    python benchmarks/int8_forward.py --encoder tf_efficientnet_b4 --size 256
    python benchmarks/int8_forward.py --encoder tf_efficientnet_lite0 --size 128
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

from fmuia.model import ModelConfig, build_model
from fmuia.predict import graph_inputs, onnx_graph
from fmuia.predict.openvino_graph import compile_model
from fmuia.tasks import fmuia2026


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="tf_efficientnet_lite0", help="timm encoder (random weights)")
    ap.add_argument("--size", type=int, default=128, help="input side in pixels (default 128)")
    ap.add_argument("--batch", type=int, default=8, help="images per forward pass (default 8)")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per runtime, round-robin (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="threads of every runtime (default 1)")
    args = ap.parse_args(argv)

    import nncf
    import onnxruntime as ort
    import openvino as ov
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder=args.encoder, pretrained="none", image_size=args.size), fmuia2026()).eval()
    all_tasks = list(model.registry.task_ids)
    segmentation = [t.task_id for t in model.registry if t.kind == "segmentation"]
    rng = np.random.default_rng(0)

    def feed(k: int) -> dict[str, np.ndarray]:
        ids = [segmentation[(k * args.batch + i) % len(segmentation)] for i in range(args.batch)]
        values = graph_inputs.routing_feeds(ids, model.routes, all_tasks)
        values[graph_inputs.IMAGES] = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
        return values

    calibration = [feed(k) for k in range(8)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(calibration)

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="fmuia-int8-") as scratch:
        fp32_path, int8_path = os.path.join(scratch, "fp32.onnx"), os.path.join(scratch, "int8.onnx")
        onnx_graph.export_onnx(model, fp32_path)
        quantize_static(fp32_path, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        sessions = {name: ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                    for name, path in (("onnxruntime fp32", fp32_path), ("onnxruntime int8", int8_path))}
        ir = ov.convert_model(fp32_path)
    with warnings.catch_warnings():
        # The heads of the other kinds get no rows here: NNCF averages their empty statistics
        # (harmless for speed; fmuia's own calibration gives every head rows in every pass).
        warnings.simplefilter("ignore", RuntimeWarning)
        quantised = nncf.quantize(ir, nncf.Dataset(calibration), subset_size=len(calibration))
    requests = {"openvino fp32": compile_model(ir, args.threads).create_infer_request(),
                "openvino int8": compile_model(quantised, args.threads).create_infer_request()}
    x = feed(3)
    task_ids = [segmentation[(3 * args.batch + i) % len(segmentation)] for i in range(args.batch)]
    images = torch.from_numpy(x[graph_inputs.IMAGES])

    def torch_forward() -> None:
        with torch.inference_mode():
            model(images, task_ids)

    # The compiled OpenVINO models take uint8 (B, S, S, 3) and normalise inside
    # (``compile_model``); the same-shaped work on pixels of that form.
    x_pixels = {**x, graph_inputs.IMAGES: rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)}
    runs = {"torch fp32": torch_forward,
            **{name: (lambda s=s: s.run(None, x)) for name, s in sessions.items()},
            **{name: (lambda r=r: r.infer(x_pixels)) for name, r in requests.items()}}
    for run in runs.values():
        run()  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    reference = statistics.median(seconds["torch fp32"])
    print(f"{args.encoder} at {args.size} px, batch {args.batch}, {args.threads} thread(s), medians of {args.repeats}")
    print("| runtime | images/s | x torch fp32 |\n|---|---:|---:|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {args.batch / median:.1f} | {reference / median:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
