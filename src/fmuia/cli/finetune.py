"""``fmuia finetune --from CKPT_OR_ENCODER --data NEW_ROOT --out RUN``: train on a new data
root starting from trained weights."""
from __future__ import annotations

COMMAND = "finetune"
HELP = "train on a new data root starting from an fmuia checkpoint or an encoder file"
ORDER = 32
DESCRIPTION = (
    "Fine-tune: fmuia train on NEW_ROOT, starting from trained weights. --from an fmuia "
    "checkpoint (a run's best/ or last/ folder, or a .safetensors file with its .json "
    "sidecar) keeps its encoder and FPN weights (and the heads of tasks NEW_ROOT shares "
    "with it); every other task of NEW_ROOT gets a new head. --from an encoder file "
    "(fmuia pretrain's encoder.safetensors, or any .safetensors/.pth/.pt state dict) "
    "starts the encoder from it (model.pretrained). --freeze encoder with frozen BatchNorm "
    "statistics is linear probing; --freeze stages:N freezes the first N encoder stages; "
    "--layer-decay F gives encoder stage k of L the rate times F**(L-1-k). The run is an "
    "ordinary training run: resume it with fmuia train --resume RUN, predict, evaluate "
    "and export it as any other."
)


def add_arguments(p) -> None:
    p.add_argument("--from", dest="source", metavar="CKPT_OR_ENCODER",
                   help="fmuia checkpoint (folder or .safetensors with its .json) or encoder weights file")
    p.add_argument("--data", metavar="DATA_ROOT", help="the new training data root (FM_UIA layout)")
    p.add_argument("--val", metavar="DATA_ROOT", help="validation data root (default: a stratified split of --data)")
    p.add_argument("--out", metavar="RUN_DIR", help="output folder of the run")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML recipe(s), as for fmuia train; the checkpoint's architecture goes over them")
    p.add_argument("--freeze", metavar="WHAT", help="none (default), encoder (linear probing) or stages:N")
    p.add_argument("--layer-decay", type=float, metavar="F", help="layer-wise learning-rate decay in (0, 1]")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, value parsed as YAML (repeatable): --set train.epochs=2")


def run(args) -> int:
    from fmuia.cli._run_summary import run_summary
    from fmuia.errors import ConfigError
    from fmuia.train.finetune import finetune

    if not (args.source and args.data and args.out):
        raise ConfigError("--from, --data and --out are required (resume a fine-tuning run with fmuia train --resume RUN)")
    result = finetune(args.source, args.data, args.out, config=args.config, val_root=args.val,
                      overrides=args.overrides, freeze_spec=args.freeze, layer_decay=args.layer_decay)
    print(run_summary(result, source=args.source))
    return 0
