"""``fmuia.load``: a checkpoint (or an exported ONNX or OpenVINO file) to a ready ``Predictor``."""
from __future__ import annotations

import os
import tempfile
from typing import Iterable

from fmuia.errors import CheckpointError
from fmuia.predict.backends import OnnxBackend, OpenVinoBackend, TorchBackend, is_onnx_file, is_openvino_file
from fmuia.predict.predictor import Predictor


def load_checkpoint(path: str):
    """``fmuia.model.load_checkpoint``, imported on first use: the exported-graph
    backends never build the network, and timm's import costs seconds."""
    from fmuia.model.checkpoint import load_checkpoint as load_model

    return load_model(path)


BACKENDS = ("torch", "onnxruntime", "openvino")
# Earlier name of the onnxruntime backend, still accepted.
ALIASES = {"onnx": "onnxruntime"}
TORCH_PRECISIONS = ("fp32", "bf16", "fp16", "auto")
PRECISIONS = TORCH_PRECISIONS + ("int8",)


def backend_of(path: str, backend: str | None) -> str:
    """The backend that runs ``path``: ``backend`` (aliases resolved) checked against the
    file's form, or the file's own (``.onnx``: onnxruntime, ``.xml``: openvino, else torch)."""
    own = "onnxruntime" if is_onnx_file(path) else "openvino" if is_openvino_file(path) else None
    backend = ALIASES.get(backend, backend) if backend else own or "torch"
    if backend not in BACKENDS:
        raise CheckpointError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if own is not None and backend != own:
        form = "an ONNX file" if own == "onnxruntime" else "an OpenVINO model (.xml)"
        raise CheckpointError(f"{path}: {form} runs with backend '{own}', not '{backend}'")
    return backend


def check_precision(backend: str, precision: str | None) -> None:
    """Refuse a precision the backend does not run, naming what it does run."""
    if precision is None:
        return
    if precision not in PRECISIONS:
        raise CheckpointError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if backend == "torch" and precision == "int8":
        raise CheckpointError("int8 runs on --backend openvino (NNCF post-training quantisation); "
                              "the torch backend runs fp32, bf16 or fp16")
    if backend == "onnxruntime" and precision != "fp32":
        raise CheckpointError("--backend onnxruntime runs fp32 only: its static int8 quantisation ran at 0.7x the "
                              "speed of its fp32 (EfficientNet-B4 at 256 px and Lite0 at 128 px, docs/speed.md); "
                              "use --backend openvino --precision int8")
    if backend == "openvino" and precision not in ("fp32", "int8"):
        raise CheckpointError(f"--backend openvino runs fp32 or int8, not {precision}")


def load(
    path: "str | os.PathLike[str]",
    *,
    device: str | None = "auto",
    backend: str | None = None,
    precision: str | None = None,
    tta: "bool | Iterable[str] | None" = None,
    box_voting: bool | None = None,
    calibration: "str | os.PathLike[str] | None" = None,
    calibration_images: int | None = None,
    threads: int | None = None,
    openvino_cache: "str | os.PathLike[str] | None" = None,
) -> Predictor:
    """Load a model for prediction.

    ``path``: a checkpoint (folder, ``.safetensors`` or its ``.json`` sidecar), an ONNX
    file from ``fmuia export onnx`` or an OpenVINO ``.xml`` from ``fmuia export openvino``.
    ``backend``: ``torch``, ``onnxruntime`` (``onnx`` is accepted) or ``openvino``
    (default: the file's own; for a checkpoint its ``predict.backend`` and
    ``predict.precision``, torch fp32 unless its config said otherwise); a checkpoint run by another
    backend is exported to a temporary file first. ``device``: ``auto`` (CUDA if
    present), ``cpu`` or ``cuda`` (onnxruntime and torch only).

    ``precision``: for torch ``fp32``/``bf16``/``fp16``/``auto`` (default: fp32 on CPU,
    identical on every CPU; the checkpoint's on GPU; ``bf16`` is faster on CPUs with
    AVX512-BF16 or AMX; ``auto`` picks bf16 there); onnxruntime runs ``fp32``; openvino
    runs ``fp32`` or ``int8``. An OpenVINO file has its own precision (asking for
    another is an error); ``int8`` from a checkpoint quantises it with NNCF, calibrated
    on ``calibration_images`` (default 300) images of the data root ``calibration``
    (required), spread over every task.

    ``tta``: horizontal-flip test-time augmentation, ``True`` for every task it is valid
    for, a list of task ids, ``False`` for none, or ``None`` (default) for the
    checkpoint's ``predict.tta``. ``box_voting``: detection boxes as the score-weighted mean
    of the cells around the peak (centre-map heads only; ``None``: ``predict.box_voting``).
    ``threads``: CPU threads of the onnxruntime and openvino backends (default:
    ``backends.default_threads``). ``openvino_cache``: a folder for OpenVINO's compiled-model cache
    (``openvino_graph.compiler``; off by default).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    model = None
    if backend is None and not (is_onnx_file(path) or is_openvino_file(path)):
        # A checkpoint's own choice (its predict: section) unless the caller names one.
        model = load_checkpoint(path)
        backend = model.predict.backend
        if precision is None and model.predict.precision != "fp32":
            precision = model.predict.precision
    backend = backend_of(path, backend)
    check_precision(backend, precision)
    options = dict(tta=tta, box_voting=box_voting)
    if openvino_cache is not None and backend != "openvino":
        raise CheckpointError(f"an OpenVINO cache folder applies to --backend openvino, not {backend}")
    cache = None if openvino_cache is None else os.fspath(openvino_cache)
    if calibration is not None and not (backend == "openvino" and precision == "int8" and not is_openvino_file(path)):
        raise CheckpointError("a calibration data root applies to --backend openvino --precision int8 from a checkpoint only")
    if backend == "torch":
        return Predictor(TorchBackend(model or load_checkpoint(path), device, precision), **options)
    if backend == "onnxruntime":
        if is_onnx_file(path):
            return Predictor(OnnxBackend(path, device, threads), **options)
        from fmuia.predict.onnx_graph import export_onnx

        with tempfile.TemporaryDirectory(prefix="fmuia-onnx-") as folder:
            graph = os.path.join(folder, "model.onnx")
            export_onnx(model or load_checkpoint(path), graph)
            # The session holds the graph in memory; the temporary file can go.
            return Predictor(OnnxBackend(graph, device, threads), **options)
    if is_openvino_file(path):
        found = OpenVinoBackend(path, device, threads, cache)
        if precision is not None and precision != found.precision:
            raise CheckpointError(f"{path}: this OpenVINO model is {found.precision}, not {precision} "
                                  "(export another with 'fmuia export openvino"
                                  + (" --int8 --calibration DATA_ROOT'" if precision == "int8" else "'") + ")")
        return Predictor(found, **options)
    if precision == "int8" and calibration is None:
        raise CheckpointError("--precision int8 from a checkpoint needs calibration images: --calibration DATA_ROOT "
                              "(training data of every task), or a model from 'fmuia export openvino --int8'")
    from fmuia.predict.openvino_graph import DEFAULT_CALIBRATION_IMAGES, export_openvino

    with tempfile.TemporaryDirectory(prefix="fmuia-openvino-") as folder:
        xml = os.path.join(folder, "model.xml")
        export_openvino(model or load_checkpoint(path), xml, calibration=os.fspath(calibration) if calibration else None,
                        calibration_images=calibration_images or DEFAULT_CALIBRATION_IMAGES)
        # The compiled model holds the weights in memory; the temporary files can go.
        return Predictor(OpenVinoBackend(xml, device, threads, cache), **options)
