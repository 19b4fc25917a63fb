"""``fmuia.load``: a checkpoint (or an exported ONNX file) to a ready ``Predictor``."""
from __future__ import annotations

import os
import tempfile
from typing import Iterable

from fmuia.errors import CheckpointError
from fmuia.model.checkpoint import load_checkpoint
from fmuia.predict.backends import OnnxBackend, TorchBackend, is_onnx_file
from fmuia.predict.onnx_graph import export_onnx
from fmuia.predict.predictor import Predictor

BACKENDS = ("torch", "onnx")


def load(
    path: "str | os.PathLike[str]",
    *,
    device: str | None = "auto",
    backend: str | None = None,
    precision: str | None = None,
    tta: "bool | Iterable[str] | None" = None,
    box_voting: bool | None = None,
) -> Predictor:
    """Load a model for prediction.

    ``path``: a checkpoint (folder, ``.safetensors`` or its ``.json`` sidecar) or an ONNX
    file from ``fmuia export onnx``. ``backend``: ``torch`` or ``onnx`` (default: ``onnx``
    for a ``.onnx`` file, else the checkpoint's ``predict.backend``); ``onnx`` with a checkpoint exports the graph to a
    temporary file first. ``device``: ``auto`` (CUDA if present), ``cpu`` or ``cuda``.
    ``precision``: ``fp32``/``bf16``/``fp16``/``auto`` for the torch backend (default: fp32
    on CPU, identical on every CPU; the checkpoint's on GPU; ``bf16`` is faster on CPUs
    with AVX512-BF16 or AMX; ``auto`` picks bf16 there). ``tta``: horizontal-flip test-time augmentation, ``True`` for every
    task it is valid for, a list of task ids, ``False`` for none, or ``None`` (default) for
    the checkpoint's ``predict.tta``. ``box_voting``: detection boxes as the score-weighted
    mean of the cells around the peak (centre-map heads only; ``None``: the checkpoint's ``predict.box_voting``).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    onnx_file = is_onnx_file(path)
    model = None if onnx_file else load_checkpoint(path)
    backend = backend or ("onnx" if onnx_file else _saved_backend(path, model))
    if backend not in BACKENDS:
        raise CheckpointError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        if onnx_file:
            raise CheckpointError(f"{path}: an ONNX file runs with backend 'onnx', not 'torch'")
        return Predictor(TorchBackend(model, device, precision), tta=tta, box_voting=box_voting)
    if onnx_file:
        return Predictor(OnnxBackend(path, device), tta=tta, box_voting=box_voting)
    with tempfile.TemporaryDirectory(prefix="fmuia-onnx-") as folder:
        graph = os.path.join(folder, "model.onnx")
        export_onnx(model, graph)
        # The session holds the graph in memory; the temporary file can go.
        return Predictor(OnnxBackend(graph, device), tta=tta, box_voting=box_voting)


def _saved_backend(path: str, model) -> str:
    """The backend the checkpoint's ``predict:`` section names (``predict.backend``, ``predict.precision``)."""
    settings = model.predict
    if settings.backend == "openvino" or settings.precision != "fp32":
        raise CheckpointError(f"{path}: its config asks for predict.backend {settings.backend} at predict.precision "
                              f"{settings.precision}, which this version cannot run; choose --backend torch or onnx")
    return {"torch": "torch", "onnxruntime": "onnx"}[settings.backend]
