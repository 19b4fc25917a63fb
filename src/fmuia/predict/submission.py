"""``fmuia export submission``: a folder the challenge can build and run as is.

Contents: ``model.py`` (entry point) and ``Dockerfile`` (package data in
``fmuia/predict/templates/``), ``checkpoint/`` (weights and sidecar), ``settings.json``
(prediction options read by ``model.py``), ``fmuia/`` (the fmuia modules that
``model.py`` reaches, found by walking their imports: no training, scoring or CLI
code) and ``requirements.txt``, generated from the third-party imports of those
modules (``fmuia.predict.requirements``). The folder is assembled under a temporary
name beside the target and renamed into place at the end: it exists complete or
not at all.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Iterable

import fmuia
from fmuia.errors import CheckpointError, ConfigError
from fmuia.io.atomic import publish_folder, write_bytes, write_json, write_text
from fmuia.io.lock import claim_output
from fmuia.model.checkpoint import SIDECAR_NAME, WEIGHTS_NAME, checkpoint_paths, load_checkpoint
from fmuia.predict.onnx_graph import export_onnx
from fmuia.predict.predictor import tta_tasks
from fmuia.predict.requirements import ImportScan, requirements_text, scan_imports

TEMPLATE_FILES = ("model.py", "Dockerfile")


def template_dir() -> Path:
    """The submission templates, package data of ``fmuia.predict``."""
    folder = Path(str(resources.files("fmuia.predict").joinpath("templates")))
    missing = [name for name in TEMPLATE_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"{folder}: the submission templates {', '.join(missing)} are missing "
                          "(a broken fmuia installation: reinstall it)")
    return folder


def package_root() -> Path:
    return Path(fmuia.__file__).resolve().parent


def shipped_files(scan: ImportScan) -> dict[str, Path]:
    """Path inside the submission's ``fmuia/`` -> source file: every module of the
    scan, plus the data files (not Python) beside each shipped package's
    ``__init__.py`` (the task registry's YAML)."""
    root = package_root()
    files: dict[str, Path] = {}
    for path in scan.modules.values():
        files[path.relative_to(root).as_posix()] = path
        if path.name == "__init__.py":
            for data in path.parent.iterdir():
                if data.is_file() and data.suffix not in (".py", ".pyc"):
                    files[data.relative_to(root).as_posix()] = data
    return dict(sorted(files.items()))


def _copy(source: Path, target: Path) -> None:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror or exc})") from None
    write_bytes(str(target), data)


def export_submission(
    checkpoint: str,
    out_dir: str,
    *,
    tta: "bool | Iterable[str] | None" = None,
    box_voting: bool | None = None,
    device: str = "auto",
    workers: int | None = None,
    force: bool = False,
) -> Path:
    """Assemble the submission folder ``out_dir`` for ``checkpoint``; returns its path.

    ``tta``: as ``fmuia.load``'s; ``None`` writes the checkpoint's ``predict.tta`` into the
    submission's settings; ``box_voting`` likewise (``predict.box_voting``). ``out_dir`` must
    not exist (or be empty) unless ``force``, which replaces it."""
    target = Path(out_dir)
    with claim_output(target, "export submission"):  # refuses a file at out_dir too
        if target.is_dir() and any(target.iterdir()) and not force:
            raise ConfigError(f"{target}: folder exists and is not empty (use --force to replace it)")
        model = load_checkpoint(checkpoint)  # fails early on a broken checkpoint
        return _assemble(model, checkpoint, target, tta, box_voting, device, workers)


def _assemble(model, checkpoint: str, target: Path, tta, box_voting: bool | None, device: str,
              workers: int | None) -> Path:
    if tta is None:  # the checkpoint's own choice, written out so the submission does not depend on it
        tta = model.predict.tta
    tta_list = sorted(tta_tasks(model.registry, tta)) if tta is not True else True
    if box_voting is None:
        box_voting = model.predict.box_voting
    weights, sidecar = checkpoint_paths(checkpoint)
    templates = template_dir()
    scan = scan_imports(templates / "model.py", package_root())
    requirements = requirements_text(scan)

    with publish_folder(target) as staging:  # the folder appears complete or not at all
        for name in TEMPLATE_FILES:
            _copy(templates / name, staging / name)
        write_text(str(staging / "requirements.txt"), requirements)
        _copy(Path(weights), staging / "checkpoint" / WEIGHTS_NAME)
        _copy(Path(sidecar), staging / "checkpoint" / SIDECAR_NAME)
        for rel, source in shipped_files(scan).items():
            _copy(source, staging / "fmuia" / rel)
        settings = {"checkpoint": "checkpoint", "device": device, "tta": tta_list, "box_voting": bool(box_voting),
                    "workers": workers}
        write_json(staging / "settings.json", settings)
    return target


def export_onnx_file(checkpoint: str, out_path: str) -> Path:
    """Export ``checkpoint`` as the routed ONNX graph (see ``fmuia.predict.onnx_graph``)."""
    if not out_path.lower().endswith(".onnx"):
        raise ConfigError(f"{out_path}: the ONNX output file must end in .onnx")
    try:
        with claim_output(out_path, "export onnx", "the ONNX file", folder=False):
            export_onnx(load_checkpoint(checkpoint), out_path)
    except ImportError as exc:
        raise CheckpointError(f"ONNX export needs the onnx package (pip install 'fmuia[onnx]'): {exc}") from None
    return Path(out_path)
