"""Where the network runs: PyTorch, or onnxruntime or OpenVINO on an exported graph.

A backend carries the model's task registry, config and ``input_sizes`` (each task's
input side ``S``, as ``MultiTaskModel.input_sizes``). ``decoded`` takes a uint8 NumPy
batch ``(B, S, S, 3)`` as read and resized and one task id per image, normalises it
where the network runs (torch on its device, onnxruntime by torch on the CPU, OpenVINO
inside the compiled model), and returns each task's decoded predictions (its head's
``decode``) as float32 NumPy arrays, rows in batch order. Everything after that is
the same for every backend.

The exported graphs decode inside the graph (``fmuia.predict.graph_inputs``), so the
OpenVINO backend predicts without importing torch (1.5 s of every run's start-up).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Sequence

import numpy as np

from fmuia.errors import CheckpointError
from fmuia.config.predict import PredictConfig, saved_settings
from fmuia.model.config import ModelConfig
from fmuia.model.input_sizes import task_input_sizes
from fmuia.predict import graph_inputs
from fmuia.tasks import TaskRegistry

if TYPE_CHECKING:
    import torch

    from fmuia.model.network import MultiTaskModel

log = logging.getLogger(__name__)


def inference_precision(requested: str | None, checkpoint_precision: str, device: "torch.device") -> str:
    """The precision the torch backend runs in.

    ``requested`` None (the default): fp32 on CPU, so that the same command gives the
    same numbers on every CPU (``auto`` would pick bf16 only where the CPU has
    AVX512-BF16 or AMX); on GPU the checkpoint's precision, ``auto`` giving bf16 (fp16
    without bf16 support). An explicit ``fp32``/``bf16``/``fp16`` is used as is;
    ``auto`` is resolved for ``device`` (CPU-dependent on CPU)."""
    from fmuia.runtime import resolve_precision

    if requested is None:
        return "fp32" if device.type == "cpu" else resolve_precision(checkpoint_precision, device)
    return resolve_precision(requested, device)


def default_threads() -> int | None:
    """CPU threads of the graph backends when not told: ``OMP_NUM_THREADS`` if set, or
    as many as torch uses where torch is loaded already (so ``torch.set_num_threads``
    applies to every backend alike); None leaves the runtime's own default (the physical
    cores, as torch's)."""
    if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    if "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    return None


class TorchBackend:
    name = "torch"

    def __init__(self, model: "MultiTaskModel", device: "str | torch.device | None" = None, precision: str | None = None) -> None:
        from fmuia.runtime import resolve_device

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.registry: TaskRegistry = model.registry
        self.config: ModelConfig = model.config
        self.input_sizes: dict[str, int] = model.input_sizes  # each task's input side
        self.predict: PredictConfig = model.predict
        self.precision = inference_precision(precision, model.config.precision, self.device)

    def raw(self, images, task_ids: Sequence[str]) -> "dict[str, torch.Tensor]":
        """Each task's raw head output (torch) for a uint8 batch (NumPy or torch)."""
        import torch

        from fmuia.predict.normalise import normalise
        from fmuia.runtime import autocast

        with torch.inference_mode(), autocast(self.precision, self.device):
            return self.model(normalise(torch.as_tensor(images), self.device), list(task_ids))

    def decoded(self, images: np.ndarray, task_ids: Sequence[str]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            return {t: rows.float().cpu().numpy() for t, rows in self.model.decode(self.raw(images, task_ids)).items()}

    def set_decoding(self, predict: PredictConfig) -> None:
        """Decode with ``predict``'s settings (the weights stay as they are)."""
        self.predict = predict
        self.model.set_decoding(predict)


class GraphBackend:
    """What the exported-graph backends share: the task registry, model config and
    routes from the graph's metadata, and the choice of decoded outputs (box voting)."""

    name = "graph"
    precision = "fp32"
    device = "cpu"

    def _read_meta(self, meta: dict, path: str, outputs: Sequence[str]) -> None:
        self.registry = TaskRegistry.from_list(meta["registry"])
        model_config, predict = saved_settings(meta["model_config"], meta.get("predict_config"), path)
        self.config = ModelConfig.from_saved({**model_config, "pretrained": "none"})
        self.routes: dict[str, str] = dict(meta["routes"])
        # The exported model's input sides; a graph exported without them: the model's rule.
        self.input_sizes: dict[str, int] = ({t: int(side) for t, side in meta["input_sizes"].items()}
                                            if "input_sizes" in meta else task_input_sizes(self.registry, self.config))
        outputs = set(outputs)
        undecoded = [t for t in self.registry.task_ids if graph_inputs.decoded_output(t) not in outputs]
        if undecoded:
            raise CheckpointError(f"{path}: exported by an earlier fmuia, without decoded outputs (task "
                                  f"{undecoded[0]!r}): export it again from its checkpoint")
        self._voting = {t for t in self.registry.task_ids if graph_inputs.decoded_output(t, box_voting=True) in outputs}
        self.set_decoding(predict)

    def _feeds(self, images: np.ndarray, task_ids: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        """The graph's inputs for a batch, and the tasks present (in first-seen order)."""
        present = list(dict.fromkeys(task_ids))
        unknown = [t for t in present if t not in self.registry]
        if unknown:
            raise KeyError(f"unknown task(s) {', '.join(map(repr, unknown))}; the model's tasks: {', '.join(self.registry.task_ids)}")
        feeds = graph_inputs.routing_feeds(task_ids, self.routes, self.registry.task_ids)
        feeds[graph_inputs.IMAGES] = self._images_input(np.asarray(images))
        return feeds, present

    def _images_input(self, images: np.ndarray) -> np.ndarray:
        """The graph's ``images`` input of a uint8 batch: normalised, ``(B, 3, S, S)``."""
        import torch

        from fmuia.predict.normalise import normalise

        return normalise(torch.from_numpy(images), torch.device("cpu")).numpy()

    def _decoded_name(self, task_id: str) -> str:
        return graph_inputs.decoded_output(task_id, box_voting=self.predict.box_voting and task_id in self._voting)

    def raw(self, images: np.ndarray, task_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Each task's raw head output (the graph's ``<task_id>`` outputs)."""
        feeds, present = self._feeds(images, task_ids)
        return dict(zip(present, self._run(feeds, present)))

    def decoded(self, images: np.ndarray, task_ids: Sequence[str]) -> dict[str, np.ndarray]:
        feeds, present = self._feeds(images, task_ids)
        return dict(zip(present, self._run(feeds, [self._decoded_name(t) for t in present])))

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        raise NotImplementedError

    def set_decoding(self, predict: PredictConfig) -> None:
        """Decode with ``predict``'s settings."""
        self.predict = predict


class OnnxBackend(GraphBackend):
    """onnxruntime on a graph written by ``fmuia.predict.onnx_graph.export_onnx``."""

    name = "onnxruntime"

    def __init__(self, path: str, device: "str | torch.device | None" = None, threads: int | None = None) -> None:
        try:
            # onnxruntime is optional: only this backend needs it.
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - optional dependency
            raise CheckpointError("--backend onnxruntime needs onnxruntime (pip install 'fmuia[onnx]')") from None
        from fmuia.runtime import resolve_device

        self.device = resolve_device(device)
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise CheckpointError("device 'cuda' requested but this onnxruntime has no CUDA provider "
                                      "(install onnxruntime-gpu, or use --device cpu)")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or default_threads() or 0)  # 0: onnxruntime's default
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
            outputs = [o.name for o in self.session.get_outputs()]
            self._read_meta(graph_inputs.read_onnx_meta(self.session), path, outputs)
        except CheckpointError:
            raise
        except KeyError:
            raise CheckpointError(f"{path}: not an ONNX file exported by 'fmuia export onnx' (no fmuia metadata)") from None
        except Exception as exc:
            raise CheckpointError(f"{path}: cannot load the ONNX model ({type(exc).__name__}: {exc})") from None

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        return self.session.run(outputs, feeds)


def cpu_only(device, backend: str) -> str:
    """``device`` for a backend that runs on the CPU only: ``auto``/None/``cpu`` give
    ``"cpu"``; anything else is refused (read without torch)."""
    name = "auto" if device is None else str(device)
    if name not in ("auto", "cpu"):
        kind = name.split(":")[0]
        raise CheckpointError(f"--backend {backend} runs on the CPU, not on {kind!r} (use --device cpu, "
                              "or --backend torch on a GPU)")
    return "cpu"


class OpenVinoBackend(GraphBackend):
    """OpenVINO (CPU) on an IR written by ``fmuia.predict.openvino_graph.export_openvino``:
    the routed graph of ``onnx_graph``, fp32 or NNCF-quantised int8; its metadata says
    which. Imports neither torch nor the network's code."""

    name = "openvino"

    def __init__(self, path: str, device: "str | torch.device | None" = None, threads: int | None = None,
                 cache: str | None = None) -> None:
        from fmuia.predict import openvino_graph

        self.device = cpu_only(device, self.name)
        model, meta = openvino_graph.read_openvino(path)
        try:
            self._read_meta(meta, path, [name for output in model.outputs for name in output.get_names()])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: malformed fmuia metadata in the OpenVINO model ({exc})") from None
        self.precision = meta.get("precision", "fp32")
        self._path = path
        # Compiled on a thread of its own (seconds, on one core): meanwhile the caller
        # reads and checks the data and the reader processes start reading images. The
        # first batch waits for it (``compiled``). Not a daemon: an early exit waits
        # for the compiler rather than tear OpenVINO down under it.
        self._compiling: Future = Future()
        compile_now = openvino_graph.compiler(model, threads or default_threads(), cache)
        threading.Thread(target=_set_result, args=(self._compiling, compile_now), name="fmuia-openvino-compile").start()
        self._request = None

    @property
    def compiled(self):
        """The compiled model (waits for the compiling thread)."""
        try:
            return self._compiling.result()
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]  # OpenVINO's messages run to many lines
            raise CheckpointError(f"{self._path}: cannot compile the OpenVINO model ({type(exc).__name__}: {reason})") from None

    def _images_input(self, images: np.ndarray) -> np.ndarray:
        # The compiled model normalises (``openvino_graph.compiler``): uint8 goes in as read.
        return np.ascontiguousarray(images)

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        if self._request is None:
            self._request = self.compiled.create_infer_request()
        self._request.infer(feeds)
        # The request's output buffers are reused by the next call: copy what is kept.
        return [self._request.get_tensor(name).data.copy() for name in outputs]


def _set_result(future: Future, work) -> None:
    try:
        future.set_result(work())
    except BaseException as exc:  # handed to whoever waits for the result
        future.set_exception(exc)


def is_onnx_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(".onnx")


def is_openvino_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(".xml")
