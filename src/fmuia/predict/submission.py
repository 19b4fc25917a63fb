"""``fmuia export submission``: a folder the challenge can build and run as is.

Contents: ``model.py`` (entry point), ``Dockerfile``, ``requirements.txt`` (from the
repository's ``submission/`` folder), ``checkpoint/`` (weights and sidecar),
``settings.json`` (prediction options read by ``model.py``) and ``fmuia/`` (the
package source, so the folder needs only third-party packages). The folder is
assembled under a temporary name beside the target and renamed into place at the
end: it exists complete or not at all.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

import fmuia
from fmuia.errors import CheckpointError, ConfigError
from fmuia.io.atomic import publish_folder, write_json
from fmuia.model.checkpoint import SIDECAR_NAME, WEIGHTS_NAME, checkpoint_paths, load_checkpoint
from fmuia.predict.predictor import tta_tasks

TEMPLATE_FILES = ("model.py", "Dockerfile", "requirements.txt")


def template_dir() -> Path:
    """The repository's ``submission/`` folder (beside ``src/``)."""
    folder = Path(fmuia.__file__).resolve().parents[2] / "submission"
    missing = [name for name in TEMPLATE_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"{folder}: the submission templates {', '.join(missing)} are missing "
                          "(export a submission from a source checkout of fmuia)")
    return folder


def export_submission(
    checkpoint: str,
    out_dir: str,
    *,
    tta: "bool | Iterable[str]" = False,
    device: str = "auto",
    workers: int | None = None,
    force: bool = False,
) -> Path:
    """Assemble the submission folder ``out_dir`` for ``checkpoint``; returns its path.

    ``out_dir`` must not exist (or be empty) unless ``force``, which replaces it."""
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ConfigError(f"{target}: folder exists and is not empty (use --force to replace it)")
    model = load_checkpoint(checkpoint)  # fails early on a broken checkpoint
    tta_list = sorted(tta_tasks(model.registry, tta)) if tta is not True else True
    weights, sidecar = checkpoint_paths(checkpoint)
    templates = template_dir()

    with publish_folder(target) as staging:  # the folder appears complete or not at all
        for name in TEMPLATE_FILES:
            shutil.copy2(templates / name, staging / name)
        (staging / "checkpoint").mkdir()
        shutil.copy2(weights, staging / "checkpoint" / WEIGHTS_NAME)
        shutil.copy2(sidecar, staging / "checkpoint" / SIDECAR_NAME)
        package = Path(fmuia.__file__).resolve().parent
        shutil.copytree(package, staging / "fmuia", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        settings = {"checkpoint": "checkpoint", "device": device, "tta": tta_list, "workers": workers}
        write_json(staging / "settings.json", settings)
    return target


def export_onnx_file(checkpoint: str, out_path: str) -> Path:
    """Export ``checkpoint`` as the routed ONNX graph (see ``fmuia.predict.onnx_graph``)."""
    from fmuia.predict.onnx_graph import export_onnx

    if not out_path.lower().endswith(".onnx"):
        raise ConfigError(f"{out_path}: the ONNX output file must end in .onnx")
    try:
        export_onnx(load_checkpoint(checkpoint), out_path)
    except ImportError as exc:
        raise CheckpointError(f"ONNX export needs the onnx package (pip install 'fmuia[onnx]'): {exc}") from None
    return Path(out_path)
