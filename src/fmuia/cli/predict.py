"""``fmuia predict``: write a challenge submission for a data root."""
from __future__ import annotations

import argparse
import sys

from fmuia.cli.backend_options import add_backend_arguments, backend_options
from fmuia.cli._image_options import add_exif_orientation_argument

COMMAND = "predict"
HELP = "predict every row of a data root into a challenge submission folder (masks + JSON)"
ORDER = 40
DESCRIPTION = (
    "Predict every CSV row of DATA_ROOT and write the FM_UIA submission into OUT_DIR: a PNG "
    "per segmentation row at its mask_path (leading '../' removed, original size, class ids), "
    "and classification_predictions.json, detection_predictions.json, regression_predictions.json "
    "(all three always written; [] for a kind without rows). Label columns may be empty. "
    "OUT_DIR must lie outside the data (not the data root, its CSV folder or an image or mask "
    "folder, nor inside or around one) and be new or empty unless --overwrite."
)


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="checkpoint folder or .safetensors file, an .onnx file from 'fmuia export onnx', or a "
                        "model.xml from 'fmuia export openvino'")
    p.add_argument("--data", required=True, metavar="DATA_ROOT", help="data root with csv_files/ (test CSVs may have empty labels)")
    p.add_argument("--out", required=True, metavar="OUT_DIR",
                   help="submission folder to write (created if missing; must be new or empty unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="accept a non-empty OUT_DIR: first remove the prediction files of an earlier run from it "
                        "(the three *_predictions.json files and the PNG files under Segmentation/), never anything else")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="images per forward pass (default: the checkpoint's predict.batch_size, 8 unless its config "
                        "set another; batches may mix tasks)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="image-reading processes (default min(2, CPU cores); 0 reads in the main process)")
    add_backend_arguments(p)
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average with a horizontally flipped view (never for orientation-sensitive tasks); "
                        "default: the checkpoint's predict.tta")
    p.add_argument("--box-voting", action=argparse.BooleanOptionalAction, default=None,
                   help="detection with a centre-map head: the box is the score-weighted mean of the boxes around "
                        "the peak, not the peak cell's alone; default: the checkpoint's predict.box_voting")
    add_exif_orientation_argument(p, "predicted boxes and points are then in pixels of the upright image; use "
                                     "the choice the model was trained with")
    p.add_argument("--openvino-cache", default=None, metavar="DIR",
                   help="--backend openvino: keep the compiled model in DIR, so that later runs of the same model "
                        "on this machine load it instead of compiling (about half the model's load time); off by default")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from fmuia.io.images import set_exif_orientation
    from fmuia.io.outputs import check_writable
    from fmuia.predict.api import load

    set_exif_orientation(args.exif_orientation)
    check_writable(args.out)  # before the model and the data are read (checked again, locked, before writing)
    predictor = load(args.checkpoint, device=args.device, tta=args.tta, box_voting=args.box_voting,
                     openvino_cache=args.openvino_cache, **backend_options(args))
    summary = predictor.predict_dataset(
        args.data, args.out, batch_size=args.batch_size, workers=args.workers,
        progress=not args.no_progress and sys.stderr.isatty(), overwrite=args.overwrite,
    )
    print(summary.format_table())
    print(f"wrote {summary.out_dir}: {summary.masks} mask(s), "
          + ", ".join(p.rsplit('/', 1)[-1] for p in summary.json_files.values()), file=sys.stderr)
    return 0
