"""``fmuia train --config FILE [--config FILE ...] --data DATA_ROOT --out RUN_DIR``: train the
multi-task model."""
from __future__ import annotations

COMMAND = "train"
HELP = "train the multi-task model on a data root (validation, checkpoints, resume, torchrun)"
ORDER = 30
DESCRIPTION = (
    "Train one network for every task of a data root. The resolved config is saved as "
    "RUN_DIR/config.yaml (several --config files are merged in order, each later one "
    "overriding the earlier ones key by key: a recipe, then a budget); checkpoints go to "
    "RUN_DIR/best (highest validation score under train.select) and RUN_DIR/last; metrics.csv and "
    "curves.png describe the run. Several processes: torchrun --nproc_per_node N -m fmuia train ..."
)


def add_arguments(p) -> None:
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML recipe (e.g. configs/fmuia2026_baseline.yaml); defaults otherwise. Repeatable: "
                        "later files override earlier ones key by key (--config RECIPE --config BUDGET)")
    p.add_argument("--data", metavar="DATA_ROOT", help="training data root (FM_UIA layout)")
    p.add_argument("--val", metavar="DATA_ROOT", help="validation data root (default: a stratified split of --data)")
    p.add_argument("--out", metavar="RUN_DIR", help="output folder of the run")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, value parsed as YAML (repeatable): --set train.epochs=2")


def run(args) -> int:
    from fmuia.cli._run_summary import run_summary
    from fmuia.errors import ConfigError
    from fmuia.train import train

    if args.resume and args.out and args.out != args.resume:
        raise ConfigError("--resume continues in its own folder; leave out --out or give the same folder")
    if not args.resume and not (args.data and args.out):
        raise ConfigError("--data and --out are required (or --resume RUN_DIR)")
    result = train(args.config or None, args.data, args.out or args.resume, val_root=args.val,
                   overrides=args.overrides, resume=args.resume)
    print(run_summary(result))
    return 0
