"""Building blocks of the robustness catalogue: tiny data roots with one planted fault,
the CLI run as a user runs it, and fingerprints of folders to prove nothing changed."""
from __future__ import annotations

import csv
import hashlib
import io
import os

from dataset_builders import COLUMNS, materialise, valid_rows
from pretrain_helpers import TINY_PRETRAIN

from fmuia.cli.main import main

CSV = "csv_files/data.csv"
# valid_rows(): lines 2-4 breast_lesion masks, 5-6 cardiac_multi (n=4), 7-10 breast_2cls,
# 11-12 thyroid_nodule_det, 13-14 FUGC points; every image 32x32.


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``fmuia ARGV`` in this process, as the console script runs it: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


TINY_TRAIN = ["--set", "device=cpu", "--set", "model.encoder=resnet18", "--set", "model.pretrained=none",
              "--set", "model.image_size=64", "--set", "model.decoder_channels=32", "--set", "model.decoder_out_channels=32",
              "--set", "model.channels_last=false", "--set", "data.num_workers=0", "--set", "train.progress=false",
              "--set", "train.plot=false", "--set", "train.batch_size=4"]


# The writing commands, run as a user runs them on the inputs of conftest's command_inputs.
FAST_TRAIN = [*TINY_TRAIN, "--set", "train.epochs=1", "--set", "data.check=none"]


# command: (argv for an output path, the output's own name, argv to accept a non-empty output)
COMMANDS = {
    "train": (lambda i, o: ["train", "--data", i["data"], "--out", o, *FAST_TRAIN], "run", ()),
    "finetune": (lambda i, o: ["finetune", "--from", i["ckpt"], "--data", i["data"], "--out", o, *FAST_TRAIN], "run", ()),
    "pretrain": (lambda i, o: ["pretrain", "--images", i["images"], "--out", o,
                               *[a for kv in TINY_PRETRAIN for a in ("--set", kv)]], "run", ()),
    "predict": (lambda i, o: ["predict", "--checkpoint", i["ckpt"], "--data", i["data"], "--out", o, "--workers", "0",
                              "--no-progress", "--device", "cpu"], "pred", ("--overwrite",)),
    "evaluate": (lambda i, o: ["evaluate", "--data", i["data"], "--pred", i["pred"], "--out", o, "--workers", "1"],
                 "eval", ()),
    "report": (lambda i, o: ["report", "--data", i["data"], "--pred", i["pred"], "--out", o, "--workers", "1",
                             "--per-task", "1"], "report", ()),
    "export submission": (lambda i, o: ["export", "submission", "--checkpoint", i["ckpt"], o], "submission",
                          ("--force",)),
    "export onnx": (lambda i, o: ["export", "onnx", "--checkpoint", i["ckpt"], o], "model.onnx", ()),
    "synth": (lambda i, o: ["synth", o, "--per-task", "1", "--val", "0", "--test", "0", "--tasks", "breast_2cls",
                            "--workers", "1"], "synthetic", ()),
    "validate --json": (lambda i, o: ["validate", i["data"], "--quick", "--json", o], "report.json", ()),
}
FILE_OUTPUTS = ("model.onnx", "report.json")


def fingerprint(folder) -> dict[str, str]:
    """Every file under ``folder`` with the sha256 of its bytes."""
    found = {}
    for base, _dirs, files in os.walk(folder):
        for f in files:
            path = os.path.join(base, f)
            if os.path.islink(path):
                found[os.path.relpath(path, folder)] = "link:" + os.readlink(path)
                continue
            with open(path, "rb") as fh:
                found[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return found


def rows_text(rows: list[dict], columns=COLUMNS) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})
    return out.getvalue()


def file_of(root: str, rel: str) -> str:
    return os.path.normpath(os.path.join(root, "csv_files", rel))


def write_csv_bytes(root: str, data: bytes) -> None:
    with open(os.path.join(root, CSV), "wb") as fh:
        fh.write(data)


def build_root(root: str, fault) -> None:
    """A valid root, then ``fault(root, rows)`` plants one problem."""
    rows = valid_rows()
    materialise(root, rows)
    fault(root, rows)


def rewrite(root: str, rows: list[dict], columns=COLUMNS) -> None:
    write_csv_bytes(root, rows_text(rows, columns).encode())
