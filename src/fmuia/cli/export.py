"""``fmuia export submission|onnx``: package a checkpoint for the challenge or for onnxruntime."""
from __future__ import annotations

import argparse
import sys

COMMAND = "export"
HELP = "export a checkpoint: a challenge submission folder, or an ONNX graph"
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
    o = sub.add_parser("onnx", help="one ONNX graph for all tasks (task routing as inputs), for --backend onnx",
                       description="Export the model as one ONNX graph whose inputs are the images and each task's rows.")
    o.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint folder or .safetensors file")
    o.add_argument("out_path", metavar="OUT.onnx", help="ONNX file to write")


def run(args) -> int:
    from fmuia.predict.submission import export_onnx_file, export_submission

    if args.export_kind == "submission":
        path = export_submission(args.checkpoint, args.out_dir, tta=args.tta, box_voting=args.box_voting, device=args.device,
                                 workers=args.workers, force=args.force)
        print(f"wrote {path}: build with 'docker build -t fmuia-submission {path}'", file=sys.stderr)
    else:
        path = export_onnx_file(args.checkpoint, args.out_path)
        print(f"wrote {path}", file=sys.stderr)
    return 0
