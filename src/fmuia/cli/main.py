"""The ``fmuia`` command line.

Each sub-command is a module of this package that defines ``COMMAND`` (its name),
``HELP`` (one line), ``ORDER`` (its place in ``--help``), ``add_arguments(parser)``
and ``run(args) -> int``. Modules are discovered, so adding a command is adding a file.

Building the parser imports every command module, so a command module holds only its
argparse code at module level and imports its implementation inside ``run``: ``fmuia
--help`` and ``--version`` then start in a fraction of a second, and the commands that
run no network (``validate``, ``evaluate``, ``report``, ``synth``) never import torch
(``tests/test_import_graph.py`` checks both).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from fmuia._version import __version__
from fmuia.errors import FmuiaError


def _command_modules():
    import fmuia.cli as package

    mods = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in ("main", "common"):
            continue
        mod = importlib.import_module(f"fmuia.cli.{info.name}")
        if hasattr(mod, "COMMAND"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.COMMAND))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmuia",
        description="Multi-task ultrasound image analysis (FM_UIA 2026): validate data, "
        "generate synthetic data, train, predict, evaluate, report, export.",
    )
    parser.add_argument("--version", action="version", version=f"fmuia {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.COMMAND, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _asks_for_version(argv: list[str]) -> bool:
    """``--version`` among the options before the command (where argparse takes it)."""
    for arg in argv:
        if arg == "--version":
            return True
        if not arg.startswith("-"):
            return False
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _asks_for_version(argv):  # answered before any command module is imported
        print(f"fmuia {__version__}")
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.verbose else "%(message)s",
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except FmuiaError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
