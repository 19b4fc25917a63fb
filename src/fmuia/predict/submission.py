"""``fmuia export submission``: a folder the challenge can build and run as is.

Contents: ``model.py`` (entry point) and ``Dockerfile`` (package data in
``fmuia/predict/templates/``), ``checkpoint/`` (weights and sidecar for the torch
backend; ``model.onnx`` for onnxruntime; ``model.xml``/``model.bin``, fp32 or int8,
for OpenVINO), ``settings.json``
(prediction options read by ``model.py``), ``fmuia/`` (the fmuia modules that
``model.py`` reaches, found by walking their imports: no training, scoring or CLI
code) and ``requirements.txt``, generated from the third-party imports of those
modules (``fmuia.predict.requirements``) plus the chosen backend's runtime. The folder is assembled under a temporary
name beside the target and renamed into place at the end: it exists complete or
not at all.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Iterable

import os

import fmuia
from fmuia.errors import CheckpointError, ConfigError
from fmuia.io.atomic import publish_folder, write_bytes, write_json, write_text
from fmuia.io.lock import claim_output
from fmuia.model.checkpoint import SIDECAR_NAME, WEIGHTS_NAME, checkpoint_paths, load_checkpoint
from fmuia.predict.api import backend_of, check_precision
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
    backend: str | None = None,
    precision: str | None = None,
    calibration: str | None = None,
    calibration_images: int | None = None,
) -> Path:
    """Assemble the submission folder ``out_dir`` for ``checkpoint``; returns its path.

    ``tta``: as ``fmuia.load``'s; ``None`` writes the checkpoint's ``predict.tta`` into the
    submission's settings; ``box_voting`` likewise (``predict.box_voting``). ``backend`` and
    ``precision`` as ``fmuia.load``'s: onnxruntime ships the ONNX graph, openvino the
    OpenVINO model (int8 quantised here, calibrated on ``calibration``), each with its
    runtime in ``requirements.txt``. ``out_dir`` must not exist (or be empty) unless
    ``force``, which replaces it."""
    target = Path(out_dir)
    backend = backend_of(checkpoint, backend)
    check_precision(backend, precision)
    if backend == "openvino" and precision == "int8" and calibration is None:
        raise CheckpointError("an int8 submission needs calibration images: --calibration DATA_ROOT (training data of every task)")
    if calibration is not None and not (backend == "openvino" and precision == "int8"):
        raise CheckpointError("--calibration applies to --backend openvino --precision int8 only")
    with claim_output(target, "export submission"):  # refuses a file at out_dir too
        if target.is_dir() and any(target.iterdir()) and not force:
            raise ConfigError(f"{target}: folder exists and is not empty (use --force to replace it)")
        model = load_checkpoint(checkpoint)  # fails early on a broken checkpoint
        return _assemble(model, checkpoint, target, tta, box_voting, device, workers, backend, precision, calibration,
                         calibration_images)


def _assemble(model, checkpoint: str, target: Path, tta, box_voting: bool | None, device: str, workers: int | None,
              backend: str, precision: str | None, calibration: str | None, calibration_images: int | None) -> Path:
    if tta is None:  # the checkpoint's own choice, written out so the submission does not depend on it
        tta = model.predict.tta
    tta_list = sorted(tta_tasks(model.registry, tta)) if tta is not True else True
    if box_voting is None:
        box_voting = model.predict.box_voting
    weights, sidecar = checkpoint_paths(checkpoint)
    templates = template_dir()
    scan = scan_imports(templates / "model.py", package_root())
    requirements = requirements_text(scan, runtimes=RUNTIMES[backend])

    with publish_folder(target) as staging:  # the folder appears complete or not at all
        for name in TEMPLATE_FILES:
            _copy(templates / name, staging / name)
        write_text(str(staging / "requirements.txt"), requirements)
        model_file = _write_model(backend, model, weights, sidecar, staging / "checkpoint", calibration, calibration_images)
        for rel, source in shipped_files(scan).items():
            _copy(source, staging / "fmuia" / rel)
        settings = {"checkpoint": model_file, "device": device, "tta": tta_list, "box_voting": bool(box_voting),
                    "workers": workers, "backend": backend, "precision": precision}
        write_json(staging / "settings.json", settings)
    return target


# The module each backend runs on, added to the requirements (imported only where that backend runs).
RUNTIMES = {"torch": (), "onnxruntime": ("onnxruntime",), "openvino": ("openvino",)}


def _write_model(backend: str, model, weights: str, sidecar: str, folder: Path, calibration: str | None,
                 calibration_images: int | None) -> str:
    """Write the model in the backend's form into ``folder``; returns its path relative
    to the submission folder."""
    if backend == "torch":
        _copy(Path(weights), folder / WEIGHTS_NAME)
        _copy(Path(sidecar), folder / SIDECAR_NAME)
        return "checkpoint"
    os.makedirs(folder, exist_ok=True)
    if backend == "onnxruntime":
        _graph_export(export_onnx, model, str(folder / "model.onnx"))
        return "checkpoint/model.onnx"
    from fmuia.predict.openvino_graph import DEFAULT_CALIBRATION_IMAGES, export_openvino

    export_openvino(model, str(folder / "model.xml"), calibration=calibration,
                    calibration_images=calibration_images or DEFAULT_CALIBRATION_IMAGES)
    return "checkpoint/model.xml"


def _graph_export(export, model, path: str, **options):
    try:
        return export(model, path, **options)
    except ImportError as exc:
        raise CheckpointError(f"ONNX export needs the onnx package (pip install 'fmuia[onnx]'): {exc}") from None


def export_openvino_file(checkpoint: str, out_path: str, *, int8: bool = False, calibration: str | None = None,
                         calibration_images: int | None = None) -> tuple[Path, dict]:
    """Export ``checkpoint`` as an OpenVINO model (see ``fmuia.predict.openvino_graph``);
    returns its path and the metadata written."""
    from fmuia.predict.openvino_graph import DEFAULT_CALIBRATION_IMAGES, export_openvino

    if int8 and calibration is None:
        raise ConfigError("--int8 needs --calibration DATA_ROOT: training images of every task to calibrate on")
    if calibration is not None and not int8:
        raise ConfigError("--calibration applies to --int8 only")
    if not out_path.lower().endswith(".xml"):
        raise ConfigError(f"{out_path}: the OpenVINO output file must end in .xml (the weights go beside it in .bin)")
    with claim_output(out_path, "export openvino", "the OpenVINO file", folder=False):
        meta = export_openvino(load_checkpoint(checkpoint), out_path, calibration=calibration,
                               calibration_images=calibration_images or DEFAULT_CALIBRATION_IMAGES)
    return Path(out_path), meta


def export_onnx_file(checkpoint: str, out_path: str) -> Path:
    """Export ``checkpoint`` as the routed ONNX graph (see ``fmuia.predict.onnx_graph``)."""
    if not out_path.lower().endswith(".onnx"):
        raise ConfigError(f"{out_path}: the ONNX output file must end in .onnx")
    with claim_output(out_path, "export onnx", "the ONNX file", folder=False):
        _graph_export(export_onnx, load_checkpoint(checkpoint), out_path)
    return Path(out_path)
