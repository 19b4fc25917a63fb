"""The OpenVINO form of a model: the routed graph of ``fmuia.predict.onnx_graph``
converted to OpenVINO IR (``model.xml`` + ``model.bin``), in fp32 or quantised to int8.

The IR keeps the ONNX graph's inputs and outputs (images, the task routing as row
indices, raw and decoded outputs per task: ``fmuia.predict.graph_inputs``), and its runtime info holds the same fmuia metadata
as the ONNX file (task registry, model config with input sizes, flip and box voting,
routes) plus the precision and, for int8, how it was calibrated: ``model.xml`` alone
(with its ``.bin``) is enough to predict.

int8 is NNCF's post-training quantisation (``nncf.quantize``): weights and
activations of the convolutions and matrix products in int8, scales from the
activation ranges seen on calibration images. Calibration images are training images
spread evenly over every task of the model (``calibration_feeds``), one image of
every task per forward pass so that every head sees its own task's rows in every pass. Weights are stored in fp32
(``compress_to_fp16=False``): fp16 weight storage alone moves raw outputs by ~1e-3.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from typing import TYPE_CHECKING

import numpy as np

from fmuia.errors import CheckpointError, DataError
from fmuia.io.outputs import check_writable
from fmuia.predict import graph_inputs

if TYPE_CHECKING:
    from fmuia.model.network import MultiTaskModel

log = logging.getLogger(__name__)

META_KEY = graph_inputs.META_KEY
PRECISIONS = ("fp32", "int8")
# NNCF's own default subset: 300 calibration samples (about 11 per task of FM_UIA 2026).
DEFAULT_CALIBRATION_IMAGES = 300
# Heads of these kinds stay fp32 in an int8 model. Detection heads regress box sizes in
# pixels from a few channels: int8 there cost 0.036 IoU on the quality benchmark, fp32
# heads 0.002 (docs/speed.md); they run on their own tasks' rows only, so this is cheap.
FP32_HEAD_KINDS = ("detection",)


def _openvino():
    try:
        import openvino as ov
    except ImportError:
        raise CheckpointError("the OpenVINO backend needs the openvino package (pip install 'fmuia[openvino]')") from None
    return ov


def calibration_feeds(model: MultiTaskModel, data_root: str,
                      images: int = DEFAULT_CALIBRATION_IMAGES) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Graph inputs of about ``images`` calibration images from ``data_root`` (rounded
    up to whole feeds), taken evenly through each task's rows, and the tasks whose own
    images they hold.

    Each feed is a batch of one image of EVERY task of the model, each routed to its
    own task's head: NNCF's statistics (activation ranges, fast bias correction's
    per-channel means) are taken per feed, and a head with no rows in a feed gives
    statistics of an empty tensor (NaN means, reductions at the float limits) that
    spoil its ranges. The feeds' side cycles through the model's input sides; a task
    of another side is seen at the feed's side there (the same content, another
    scale). A task of the model without rows in the data is routed a stand-in image
    of another task (named in the log); tasks of the data the model lacks are refused."""
    import torch

    from fmuia.data.layout import read_layout
    from fmuia.predict.pipeline import _Images
    from fmuia.predict.normalise import normalise

    if images < 1:
        raise DataError(f"--calibration-images must be at least 1, got {images}")
    layout = read_layout(data_root, base=model.registry)
    if layout.problems:
        raise DataError(f"{data_root}: {len(layout.problems)} problem(s) in the CSVs, first: {layout.problems[0]}")
    unknown = [t for t in layout.registry.task_ids if t not in model.registry]
    if unknown:
        raise DataError(f"{data_root}: calibration data has task(s) the model was not trained for: {', '.join(unknown)}")
    by_task: dict[str, list] = {}
    for entry in layout.entries:
        by_task.setdefault(entry.task_id, []).append(entry)
    if not by_task:
        raise DataError(f"{data_root}: no rows to calibrate on")
    task_ids = list(model.registry.task_ids)
    missing = [t for t in task_ids if t not in by_task]
    if missing:
        log.warning("calibration data has no rows of task(s) %s: their heads are calibrated on images of other tasks",
                    ", ".join(missing))
    count = max(1, math.ceil(images / len(by_task)))
    stand_ins = list(by_task.values())
    sides = sorted(set(model.input_sizes.values()))
    cpu = torch.device("cpu")
    feeds = []
    for k in range(count):
        entries = []
        for j, task_id in enumerate(task_ids):
            rows = by_task.get(task_id) or stand_ins[j % len(stand_ins)]
            entries.append(rows[int(k * len(rows) / count) % len(rows)])
        reader = _Images(entries, sides[k % len(sides)])
        batch = []
        for i in range(len(entries)):
            image, _, _, _, error = reader[i]
            if error is not None:
                raise DataError(error)
            batch.append(image)
        feed = graph_inputs.routing_feeds(task_ids, model.routes, task_ids)
        feed[graph_inputs.IMAGES] = normalise(torch.from_numpy(np.stack(batch)), cpu).numpy()
        feeds.append(feed)
    return feeds, [t for t in task_ids if t in by_task]


def export_openvino(model: MultiTaskModel, path: str, *, calibration: str | None = None,
                    calibration_images: int = DEFAULT_CALIBRATION_IMAGES) -> dict:
    """Write ``model`` as OpenVINO IR to ``path`` (``.xml``; the weights go to the
    ``.bin`` beside it): fp32, or int8 when ``calibration`` names a data root to
    calibrate on. Returns the metadata written (``precision``, ``calibration``)."""
    from fmuia.predict import onnx_graph

    ov = _openvino()
    if not path.lower().endswith(".xml"):
        raise CheckpointError(f"{path}: the OpenVINO output file must end in .xml (the weights go beside it in .bin)")
    model = model.float().cpu().eval()
    meta = onnx_graph.graph_meta(model)
    with tempfile.TemporaryDirectory(prefix="fmuia-openvino-") as scratch:
        graph = os.path.join(scratch, "graph.onnx")
        try:
            onnx_graph.export_onnx(model, graph)
        except ImportError as exc:
            raise CheckpointError(f"OpenVINO export goes through ONNX and needs the onnx package (pip install 'fmuia[onnx]'): {exc}") from None
        ir = ov.convert_model(graph)
    meta["precision"] = "fp32"
    if calibration is not None:
        ir, meta["calibration"] = quantize(ir, model, calibration, calibration_images)
        meta["precision"] = "int8"
    ir.set_rt_info(json.dumps(meta), META_KEY)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Written under temporary names and moved into place: never a half-written pair.
    with tempfile.TemporaryDirectory(prefix=".fmuia-openvino-", dir=folder) as staging:
        xml = os.path.join(staging, "model.xml")
        ov.save_model(ir, xml, compress_to_fp16=False)
        os.replace(xml[:-4] + ".bin", path[:-4] + ".bin")
        os.replace(xml, path)
    return meta


def quantize(ir, model: MultiTaskModel, data_root: str, images: int):
    """``ir`` quantised to int8 by NNCF, calibrated on ``images`` images of ``data_root``;
    returns the quantised model and what to record of the calibration."""
    try:
        import nncf
    except ImportError:
        raise CheckpointError("int8 quantisation needs the nncf package (pip install 'fmuia[openvino]')") from None
    start = time.perf_counter()
    feeds, tasks = calibration_feeds(model, data_root, images)
    # The graph's nodes are named after the module path: a head's are under /<task id>/.
    kept_fp32 = [f"^/{re.escape(t.task_id)}/.*" for t in model.registry if t.kind in FP32_HEAD_KINDS]
    # The decoding steps (``onnx_graph.Decoding``; the tracer numbers its later calls ``decoding_1``, ...).
    kept_fp32.append(f"^/{graph_inputs.DECODING_SCOPE}(_[0-9]+)?/.*")
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)  # NNCF logs one INFO line per node it leaves in fp32
    try:
        # NNCF draws its progress bars on standard output: they go to standard error,
        # with the other progress, so that standard output holds the command's result.
        with contextlib.redirect_stdout(sys.stderr):
            quantised = nncf.quantize(ir, nncf.Dataset(feeds), subset_size=len(feeds),
                                      ignored_scope=nncf.IgnoredScope(patterns=kept_fp32, validate=False))
    finally:
        nncf_log.setLevel(level)
    seconds = time.perf_counter() - start
    used = len(feeds) * len(tasks)
    log.info("int8: calibrated on %d images of %d tasks (%d passes) in %.1f s", used, len(tasks), len(feeds), seconds)
    return quantised, {"images": used, "tasks": len(tasks), "passes": len(feeds), "seconds": round(seconds, 1),
                       "fp32_heads": [t.task_id for t in model.registry if t.kind in FP32_HEAD_KINDS]}


def _is_ir(path: str) -> bool:
    """Whether ``path`` opens as OpenVINO IR (root ``<net version=...>``). Checked before
    ``read_model``, which otherwise hands an unknown file to every other frontend (and
    those print parse errors of their own)."""
    from xml.etree import ElementTree

    try:
        for _, element in ElementTree.iterparse(path, events=("start",)):
            return element.tag == "net" and "version" in element.attrib
    except (ElementTree.ParseError, OSError, UnicodeDecodeError):
        return False
    return False


def read_openvino(path: str):
    """The OpenVINO model at ``path`` (``.xml``) and its fmuia metadata."""
    ov = _openvino()
    if not os.path.isfile(path[:-4] + ".bin"):
        raise CheckpointError(f"{path}: the weights file {os.path.basename(path[:-4])}.bin is missing beside it")
    if not _is_ir(path):
        raise CheckpointError(f"{path}: cannot load the OpenVINO model (not an OpenVINO IR file: its root element "
                              "is not <net version=...>)")
    try:
        model = ov.Core().read_model(path, path[:-4] + ".bin")
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{path}: cannot load the OpenVINO model ({type(exc).__name__}: {reason})") from None
    if not model.has_rt_info(META_KEY):
        raise CheckpointError(f"{path}: not an OpenVINO model exported by 'fmuia export openvino' (no fmuia metadata)")
    try:
        meta = json.loads(model.get_rt_info(META_KEY).astype(str))
    except ValueError as exc:
        raise CheckpointError(f"{path}: malformed fmuia metadata in the OpenVINO model ({exc})") from None
    if meta.get("precision", "fp32") not in PRECISIONS:
        raise CheckpointError(f"{path}: unknown precision {meta.get('precision')!r} in its fmuia metadata")
    return model, meta


def compile_model(model, threads: int | None = None, cache: str | None = None):
    """``model`` compiled for the CPU (``compiler``'s work, done now)."""
    return compiler(model, threads, cache)()


def compiler(model, threads: int | None = None, cache: str | None = None):
    """A function of no arguments compiling ``model`` for the CPU; everything that can
    fail on the caller's input (the cache folder) is checked here, before it runs, so
    that it can run on another thread (``OpenVinoBackend`` compiles while the data is
    read: compiling keeps one core busy, and the other would wait).

    The compiled model takes uint8 ``(B, S, S, 3)`` images as read: the ImageNet
    normalisation and the layout change run inside it (OpenVINO's preprocessing, fused
    with the first convolution), where NumPy or torch would cost a pass over the batch
    and its float copy. Arithmetic in fp32 wherever it is not quantised (the same numbers
    on every CPU; OpenVINO would pick bf16 on CPUs with AMX), the latency hint (one
    request at a time uses every thread), ``threads`` threads (None: OpenVINO's default,
    the physical cores).

    ``cache``: a folder for OpenVINO's compiled-model cache (``CACHE_DIR``): the first
    run writes the compiled model there, later runs of the same model, settings and
    OpenVINO version on this CPU load it instead of compiling (EfficientNet-Lite0 int8:
    1.2 s -> 0.6 s). Off unless named: fmuia writes nowhere the user did not name."""
    ov = _openvino()
    from openvino.preprocess import PrePostProcessor

    from fmuia.predict.normalise import PIXEL_MEAN, PIXEL_STD

    steps = PrePostProcessor(model)
    images = steps.input(graph_inputs.IMAGES)
    images.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    images.model().set_layout(ov.Layout("NCHW"))
    images.preprocess().convert_element_type(ov.Type.f32).mean(PIXEL_MEAN.tolist()).scale(PIXEL_STD.tolist())
    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
    }
    if threads:  # else OpenVINO's default: the physical cores
        config["INFERENCE_NUM_THREADS"] = int(threads)
    core = ov.Core()
    if cache is not None:
        check_writable(cache, "the OpenVINO cache folder")
        os.makedirs(cache, exist_ok=True)
        core.set_property({"CACHE_DIR": os.path.abspath(cache)})
    built = steps.build()
    return lambda: core.compile_model(built, "CPU", config)
