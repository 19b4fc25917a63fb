"""``fmuia synth OUT_DIR``: write a synthetic dataset (train/val/test data roots) in the
challenge layout, and/or a gallery image of one labelled sample per task."""
from __future__ import annotations

import json
import sys

from fmuia.errors import ConfigError

COMMAND = "synth"
HELP = "generate synthetic ultrasound data for every task in the challenge layout (and a gallery)"
ORDER = 5


def add_arguments(p) -> None:
    p.add_argument("out_dir", nargs="?", help="output folder; receives train/, val/ and test/ data roots")
    p.add_argument("--per-task", type=int, default=20, metavar="N", help="training samples per task (default 20)")
    p.add_argument("--val", type=int, default=None, metavar="N", help="validation samples per task (default: per-task // 4, at least 1; 0 = none)")
    p.add_argument("--test", type=int, default=None, metavar="N", help="test samples per task (default: per-task // 4, at least 1; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same bytes (default 0)")
    p.add_argument("--tasks", metavar="IDS", help="comma-separated task ids to generate (default: all 27)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="processes drawing samples (default: up to 2)")
    p.add_argument("--unlabelled-test", action="store_true",
                   help="write test/ with empty label columns and no masks, and its labelled copy to test_labelled/")
    p.add_argument("--overwrite", action="store_true", help="write into data roots that already hold CSVs")
    p.add_argument("--gallery", metavar="FILE.png", help="also draw one labelled sample per task into this PNG")
    p.add_argument("--json", action="store_true", help="print the generation summary as JSON")


def _counts(args) -> dict[str, int]:
    for name in ("per_task", "val", "test"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    from fmuia.synthetic import default_splits

    return default_splits(args.per_task, args.val, args.test)


def run(args) -> int:
    from fmuia.synthetic import generate, render_gallery

    if not args.out_dir and not args.gallery:
        raise ConfigError("give an output folder (OUT_DIR), --gallery FILE.png, or both")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    if args.out_dir:
        summary = generate(
            args.out_dir, seed=args.seed, splits=_counts(args), tasks=tasks, workers=args.workers,
            unlabelled_test=args.unlabelled_test, overwrite=args.overwrite,
        )
        if args.json:
            json.dump(summary.to_dict(), sys.stdout, indent=2)
            print()
        else:
            sizes = ", ".join(f"{split} {sum(c.values())}" for split, c in summary.counts.items())
            print(f"wrote {summary.images} samples of {len(summary.tasks)} tasks ({sizes}) to {summary.out_dir} "
                  f"in {summary.seconds:.1f} s with {summary.workers} worker(s)")
            for split, root in summary.roots.items():
                print(f"  {split}: {root}")
    if args.gallery:
        path = render_gallery(args.gallery, seed=args.seed, tasks=tasks)
        print(f"gallery: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
