"""``fmuia validate DATA_ROOT``: check a dataset and describe its tasks."""
from __future__ import annotations

import json
import sys
from fmuia.cli._image_options import add_exif_orientation_argument

COMMAND = "validate"
HELP = "check every row and file of a data root; print a per-task table or every problem"
ORDER = 10


def add_arguments(p) -> None:
    p.add_argument("data_root", help="folder with csv_files/ and the image folders (FM_UIA layout)")
    p.add_argument("--json", metavar="FILE", help="also write the table and problems as JSON ('-' for stdout)")
    p.add_argument("--require-labels", action="store_true", help="unlabelled rows are problems (training data)")
    p.add_argument("--quick", action="store_true",
                   help="read file headers only (sizes, modes) and check every row against them, without decoding "
                        "pixels: what 'fmuia train' checks by default (data.check: header)")
    p.add_argument("--unknown-tasks", choices=("warn", "error"), default="warn",
                   help="a task id outside the task registry: warn (name the closest known id; its rows form a new "
                        "task) or error (a problem, as 'data.unknown_tasks: error' makes it for training); default warn")
    add_exif_orientation_argument(p, "boxes and points are checked against the upright image")
    p.add_argument("--tasks-file", metavar="YAML", help="a task registry file to use instead of the FM_UIA 2026 tasks")


def run(args) -> int:
    from fmuia.data.validate import validate
    from fmuia.io.atomic import write_json
    from fmuia.io.images import set_exif_orientation
    from fmuia.io.outputs import check_writable
    from fmuia.tasks import TaskRegistry

    set_exif_orientation(args.exif_orientation)
    registry = TaskRegistry.from_file(args.tasks_file) if args.tasks_file else None
    if args.json and args.json != "-":
        check_writable(args.json, "the JSON report", folder=False)  # before reading every image
    report = validate(args.data_root, registry=registry, require_labels=args.require_labels,
                      level="header" if args.quick else "full", unknown_tasks=args.unknown_tasks)
    if args.json == "-":
        json.dump(report.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(report.format_table())
        if args.json:
            write_json(args.json, report.to_dict())
    if report.ok:
        print(f"OK: {args.data_root} is valid", file=sys.stderr)
        return 0
    print(f"\n{len(report.problems)} problem(s) in {args.data_root}:", file=sys.stderr)
    for p in report.problems:
        print(f"  {p}", file=sys.stderr)
    return 1
