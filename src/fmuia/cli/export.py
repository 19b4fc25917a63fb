"""``fmuia export submission|onnx|openvino``: package a checkpoint for the challenge, onnxruntime or OpenVINO."""
from __future__ import annotations

import argparse
import sys

from fmuia.cli.backend_options import add_backend_arguments, backend_options

COMMAND = "export"
HELP = "export a checkpoint: a challenge submission folder, an ONNX graph or an OpenVINO model (fp32 or int8)"
ORDER = 70


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="export_kind", metavar="WHAT", required=True)
    s = sub.add_parser("submission", help="a folder with model.py, Dockerfile, requirements.txt, checkpoint/ and the fmuia modules prediction needs",
                       description="Assemble a challenge submission folder (runs as 'python model.py': /input/ -> /output/). "
                                   "It holds the fmuia modules model.py reaches and a requirements.txt generated from "
                                   "their imports, pinned to this environment's versions.")
    s.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint folder or .safetensors file")
    s.add_argument("out_dir", metavar="DIR", help="folder to create")
    s.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="horizontal-flip test-time augmentation in the submission (default: the checkpoint's predict.tta)")
    s.add_argument("--box-voting", action=argparse.BooleanOptionalAction, default=None,
                   help="box voting of a centre-map detection head in the submission (default: the checkpoint's "
                        "predict.box_voting)")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device the submission uses (default auto)")
    s.add_argument("--workers", type=int, default=None, help="image-reading processes in the submission (default min(2, cores))")
    s.add_argument("--force", action="store_true", help="replace DIR if it exists")
    add_backend_arguments(s)
    o = sub.add_parser("onnx", help="one ONNX graph for all tasks (task routing as inputs), for --backend onnx",
                       description="Export the model as one ONNX graph whose inputs are the images and each task's rows.")
    o.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint folder or .safetensors file")
    o.add_argument("out_path", metavar="OUT.onnx", help="ONNX file to write")
    v = sub.add_parser("openvino", help="an OpenVINO model (model.xml + model.bin), fp32 or int8, for --backend openvino",
                       description="Convert the model's routed ONNX graph to OpenVINO IR; with --int8, quantise it by "
                                   "NNCF post-training quantisation calibrated on images of DATA_ROOT.")
    v.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint folder or .safetensors file")
    v.add_argument("out_path", metavar="OUT.xml", help="model file to write (the weights go to OUT.bin beside it)")
    v.add_argument("--int8", action="store_true", help="quantise to int8 (needs --calibration)")
    v.add_argument("--calibration", default=None, metavar="DATA_ROOT",
                   help="training data root whose images calibrate the int8 quantisation (spread evenly over every task)")
    v.add_argument("--calibration-images", type=int, default=None, metavar="N", help="calibration images (default 300)")


def run(args) -> int:
    from fmuia.predict.submission import export_onnx_file, export_openvino_file, export_submission

    if args.export_kind == "submission":
        path = export_submission(args.checkpoint, args.out_dir, tta=args.tta, box_voting=args.box_voting, device=args.device,
                                 workers=args.workers, force=args.force, **backend_options(args))
        print(f"wrote {path}: build with 'docker build -t fmuia-submission {path}'", file=sys.stderr)
    elif args.export_kind == "openvino":
        path, meta = export_openvino_file(args.checkpoint, args.out_path, int8=args.int8, calibration=args.calibration,
                                          calibration_images=args.calibration_images)
        done = meta.get("calibration")
        how = f" (int8, calibrated on {done['images']} images of {done['tasks']} tasks in {done['seconds']} s)" if done else " (fp32)"
        print(f"wrote {path} and {path.with_suffix('.bin').name}{how}", file=sys.stderr)
    else:
        path = export_onnx_file(args.checkpoint, args.out_path)
        print(f"wrote {path}", file=sys.stderr)
    return 0
