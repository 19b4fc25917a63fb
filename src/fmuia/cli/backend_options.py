"""The inference backend switches shared by ``fmuia predict`` and ``fmuia export submission``."""
from __future__ import annotations

BACKEND_CHOICES = ("torch", "onnxruntime", "openvino", "onnx")
PRECISION_CHOICES = ("fp32", "int8", "bf16", "fp16", "auto")


def add_backend_arguments(p, calibration: bool = True) -> None:
    p.add_argument("--backend", default=None, choices=BACKEND_CHOICES,
                   help="torch, onnxruntime (onnx is the same) or openvino (CPU); default: the file's own "
                        "(.onnx: onnxruntime, .xml: openvino); for a checkpoint its predict.backend (torch unless its "
                        "config said otherwise). docs/speed.md says which to choose when")
    p.add_argument("--precision", default=None, choices=PRECISION_CHOICES,
                   help="fp32 (every backend); int8 (openvino: NNCF post-training quantisation, needs --calibration "
                        "from a checkpoint); bf16/fp16/auto (torch: bf16 is faster on CPUs with AVX512-BF16 or AMX, "
                        "auto picks it there). Default: a checkpoint's predict.precision when not fp32, else fp32 on "
                        "CPU and the checkpoint's training precision for torch on GPU; an OpenVINO file's own")
    if calibration:
        p.add_argument("--calibration", default=None, metavar="DATA_ROOT",
                       help="int8 from a checkpoint: training data root whose images calibrate the quantisation "
                            "(spread evenly over every task)")
        p.add_argument("--calibration-images", type=int, default=None, metavar="N",
                       help="calibration images for int8 (default 300)")


def backend_options(args) -> dict:
    """``fmuia.load``'s backend keywords from parsed arguments."""
    return dict(backend=args.backend, precision=args.precision, calibration=getattr(args, "calibration", None),
                calibration_images=getattr(args, "calibration_images", None))
