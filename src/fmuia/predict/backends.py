"""Where the network runs: PyTorch, or onnxruntime or OpenVINO on an exported graph.

A backend carries the model's task registry, config and ``input_sizes`` (each task's
input side ``S``, as ``MultiTaskModel.input_sizes``). It takes a uint8 batch
``(B, S, S, 3)`` as read and resized, normalises it where the network runs (torch on
its device, onnxruntime by torch on the CPU, OpenVINO inside the compiled model), and returns
each task's raw head output for one task id per image (rows in batch order, as
``MultiTaskModel`` does); ``decode`` turns a task's raw output into normalised
predictions with the task's head. Everything after that is the same for every backend.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from fmuia.errors import CheckpointError
from fmuia.config.predict import PredictConfig, saved_settings
from fmuia.model.config import ModelConfig
from fmuia.model.heads import Head, build_head, head_types
from fmuia.model.input_sizes import task_input_sizes
from fmuia.predict.normalise import normalise
import fmuia.predict.onnx_graph as onnx_graph
from fmuia.runtime import autocast, resolve_device, resolve_precision
from fmuia.tasks import TaskRegistry

if TYPE_CHECKING:
    from fmuia.model.network import MultiTaskModel

log = logging.getLogger(__name__)


def inference_precision(requested: str | None, checkpoint_precision: str, device: torch.device) -> str:
    """The precision the torch backend runs in.

    ``requested`` None (the default): fp32 on CPU, so that the same command gives the
    same numbers on every CPU (``auto`` would pick bf16 only where the CPU has
    AVX512-BF16 or AMX); on GPU the checkpoint's precision, ``auto`` giving bf16 (fp16
    without bf16 support). An explicit ``fp32``/``bf16``/``fp16`` is used as is;
    ``auto`` is resolved for ``device`` (CPU-dependent on CPU)."""
    if requested is None:
        return "fp32" if device.type == "cpu" else resolve_precision(checkpoint_precision, device)
    return resolve_precision(requested, device)


class TorchBackend:
    name = "torch"

    def __init__(self, model: "MultiTaskModel", device: "str | torch.device | None" = None, precision: str | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.registry: TaskRegistry = model.registry
        self.config: ModelConfig = model.config
        self.input_sizes: dict[str, int] = model.input_sizes  # each task's input side
        self.predict: PredictConfig = model.predict
        self.precision = inference_precision(precision, model.config.precision, self.device)

    def raw(self, images: torch.Tensor, task_ids: Sequence[str]) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), autocast(self.precision, self.device):
            return self.model(normalise(images, self.device), list(task_ids))

    def decode(self, task_id: str, raw: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.head(task_id).decode(raw)

    def set_decoding(self, predict: PredictConfig) -> None:
        """Decode with ``predict``'s settings (the weights stay as they are)."""
        self.predict = predict
        self.model.set_decoding(predict)


class GraphBackend:
    """What the exported-graph backends share: the task registry, model config and
    routes from the graph's metadata, and decoding with the heads' ``decode`` (which
    has no weights), built from them."""

    name = "graph"
    precision = "fp32"

    def _read_meta(self, meta: dict, path: str) -> None:
        self.registry = TaskRegistry.from_list(meta["registry"])
        model_config, predict = saved_settings(meta["model_config"], meta.get("predict_config"), path)
        self.config = ModelConfig.from_saved({**model_config, "pretrained": "none"})
        self.routes: dict[str, str] = dict(meta["routes"])
        # The exported model's input sides; a graph exported without them: the model's rule.
        self.input_sizes: dict[str, int] = ({t: int(side) for t, side in meta["input_sizes"].items()}
                                            if "input_sizes" in meta else task_input_sizes(self.registry, self.config))
        types = head_types(self.config.heads)
        self._heads: dict[str, Head] = {t.task_id: build_head(t, 1, self.config, types[t.kind]).eval() for t in self.registry}
        self.set_decoding(predict)

    def _feeds(self, images: torch.Tensor, task_ids: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        """The graph's inputs for a batch, and the tasks present (in first-seen order)."""
        present = list(dict.fromkeys(task_ids))
        unknown = [t for t in present if t not in self.registry]
        if unknown:
            raise KeyError(f"unknown task(s) {', '.join(map(repr, unknown))}; the model's tasks: {', '.join(self.registry.task_ids)}")
        feeds = onnx_graph.routing_feeds(task_ids, self.routes, self.registry.task_ids)
        feeds[onnx_graph.IMAGES] = self._images_input(images)
        return feeds, present

    def _images_input(self, images: torch.Tensor) -> np.ndarray:
        """The graph's ``images`` input of a uint8 batch: normalised, ``(B, 3, S, S)``."""
        return normalise(images, torch.device("cpu")).numpy()

    def decode(self, task_id: str, raw: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self._heads[task_id].decode(raw)

    def set_decoding(self, predict: PredictConfig) -> None:
        """Decode with ``predict``'s settings."""
        self.predict = predict
        for head in self._heads.values():
            head.set_decoding(predict)


class OnnxBackend(GraphBackend):
    """onnxruntime on a graph written by ``fmuia.predict.onnx_graph.export_onnx``."""

    name = "onnxruntime"

    def __init__(self, path: str, device: "str | torch.device | None" = None, threads: int | None = None) -> None:
        try:
            # onnxruntime is optional: only this backend needs it.
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - optional dependency
            raise CheckpointError("--backend onnxruntime needs onnxruntime (pip install 'fmuia[onnx]')") from None
        self.device = resolve_device(device)
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise CheckpointError("device 'cuda' requested but this onnxruntime has no CUDA provider "
                                      "(install onnxruntime-gpu, or use --device cpu)")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        # As many threads as torch uses, so that OMP_NUM_THREADS applies to every backend alike.
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
            self._read_meta(onnx_graph.read_onnx_meta(self.session), path)
        except KeyError:
            raise CheckpointError(f"{path}: not an ONNX file exported by 'fmuia export onnx' (no fmuia metadata)") from None
        except Exception as exc:
            raise CheckpointError(f"{path}: cannot load the ONNX model ({type(exc).__name__}: {exc})") from None

    def raw(self, images: torch.Tensor, task_ids: Sequence[str]) -> dict[str, torch.Tensor]:
        feeds, present = self._feeds(images, task_ids)
        values = self.session.run(present, feeds)
        return {t: torch.from_numpy(v) for t, v in zip(present, values)}


class OpenVinoBackend(GraphBackend):
    """OpenVINO (CPU) on an IR written by ``fmuia.predict.openvino_graph.export_openvino``:
    the routed graph of ``onnx_graph``, fp32 or NNCF-quantised int8; its metadata says
    which."""

    name = "openvino"

    def __init__(self, path: str, device: "str | torch.device | None" = None, threads: int | None = None,
                 cache: str | None = None) -> None:
        from fmuia.predict import openvino_graph

        self.device = resolve_device(device)
        if self.device.type != "cpu":
            raise CheckpointError(f"--backend openvino runs on the CPU, not on {self.device.type!r} (use --device cpu, "
                                  "or --backend torch on a GPU)")
        model, meta = openvino_graph.read_openvino(path)
        try:
            self._read_meta(meta, path)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: malformed fmuia metadata in the OpenVINO model ({exc})") from None
        self.precision = meta.get("precision", "fp32")
        self.compiled = openvino_graph.compile_model(model, threads, cache)
        self._request = self.compiled.create_infer_request()

    def _images_input(self, images: torch.Tensor) -> np.ndarray:
        # The compiled model normalises (``openvino_graph.compile_model``): uint8 goes in as read.
        return np.ascontiguousarray(images.numpy())

    def raw(self, images: torch.Tensor, task_ids: Sequence[str]) -> dict[str, torch.Tensor]:
        feeds, present = self._feeds(images, task_ids)
        self._request.infer(feeds)
        # The request's output buffers are reused by the next call: copy what is kept.
        return {t: torch.from_numpy(self._request.get_tensor(t).data.copy()) for t in present}


def is_onnx_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(".onnx")


def is_openvino_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(".xml")
