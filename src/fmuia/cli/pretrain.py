"""``fmuia pretrain --images DIR_OR_ROOT... --out RUN``: self-supervised pretraining of the
shared encoder on unlabelled images."""
from __future__ import annotations

COMMAND = "pretrain"
HELP = "pretrain the encoder on unlabelled images (SimCLR); writes RUN/encoder.safetensors"
ORDER = 28
DESCRIPTION = (
    "Self-supervised pretraining of the shared encoder (SimCLR: two ultrasound-style views "
    "of each image, NT-Xent loss) on unlabelled images: folders of PNG/JPEG/BMP/TIFF/DICOM "
    "files (searched recursively), fmuia data roots (their images; labels are ignored) or "
    "single files. Writes RUN/encoder.safetensors (use it with model.pretrained: "
    "RUN/encoder.safetensors, or fmuia finetune --from), RUN/config.yaml, RUN/last (the "
    "checkpoint to resume from), metrics.csv and curves.png. Several processes: torchrun "
    "--nproc_per_node N -m fmuia pretrain ..."
)


def add_arguments(p) -> None:
    p.add_argument("--images", nargs="+", metavar="DIR_OR_ROOT",
                   help="folders, fmuia data roots or image files to pretrain on")
    p.add_argument("--out", metavar="RUN_DIR", help="output folder of the run")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML pretraining config (e.g. configs/pretrain_simclr.yaml); repeatable, later files "
                        "override earlier ones key by key")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, value parsed as YAML (repeatable): --set train.epochs=2")


def run(args) -> int:
    from fmuia.errors import ConfigError
    from fmuia.pretrain import pretrain

    if args.resume and args.out and args.out != args.resume:
        raise ConfigError("--resume continues in its own folder; leave out --out or give the same folder")
    if not args.resume and not (args.images and args.out):
        raise ConfigError("--images and --out are required (or --resume RUN_DIR)")
    result = pretrain(args.config or None, args.images, args.out or args.resume, overrides=args.overrides,
                      resume=args.resume)
    last = result.history[-1]["train_loss"] if result.history else float("nan")
    print(f"run: {result.run_dir}\nimages: {result.images}, epochs: {result.epochs}, steps: {result.steps}, "
          f"last loss: {last:.4f}\nencoder: {result.encoder_file} (model.pretrained: {result.encoder_file})")
    return 0
