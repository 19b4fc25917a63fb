"""The ONNX form of a model: one graph for all tasks, with the task routing as input.

Its inputs and outputs (images, the rows of each task, raw and decoded outputs per
task) are named in ``fmuia.predict.graph_inputs``, which the backends read without torch.

Why one graph with the routing as input: the encoder runs once per batch whatever
the mix of tasks, each head runs only on its own rows (onnxruntime computes every
output of a graph on every run, so a graph applying all heads to the whole batch
would cost several times the encoder on dense tasks), and one file carries every
task. The only waste: a batch without any dense task sends one row through the FPN,
because onnxruntime's GroupNorm cannot take an empty batch.

The task registry, model config and routes are stored in the file's metadata, so
the ONNX file alone is enough to predict.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

from fmuia.model import routing
from fmuia.io.atomic import write_bytes as atomic_write_bytes
from fmuia.predict.graph_inputs import DECODING_SCOPE, FPN_ROWS, IMAGES, META_KEY, decoded_output, rows_input

if TYPE_CHECKING:
    from fmuia.model.network import MultiTaskModel

class Decoding(nn.Module):
    """A head's ``decode`` as a step of the graph. A module of its own so that the
    decoding nodes are named under its scope (``graph_inputs.DECODING_SCOPE``), where
    int8 quantisation leaves them alone: box voting compares and weights scores, and
    quantising those would move the boxes."""

    def forward(self, head: nn.Module, raw: torch.Tensor, box_voting: bool | None = None) -> torch.Tensor:
        if box_voting is None:
            return head.decode(raw)
        saved, head.box_voting = head.box_voting, box_voting
        try:
            return head.decode(raw)
        finally:
            head.box_voting = saved


class RoutedGraph(nn.Module):
    """``MultiTaskModel`` with its routing made explicit as tensor inputs (traceable).

    Outputs: every task's raw head output, then every task's decoded output, then the
    box-voting decode of each head that votes (``output_names`` names them in order;
    ``decoded:`` is then the decode without voting, so that the choice stays open when
    the graph runs)."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model
        self.task_ids = list(model.registry.task_ids)
        self.voting = [t for t in self.task_ids if hasattr(model.head(t), "box_voting")]
        setattr(self, DECODING_SCOPE, Decoding())

    def output_names(self) -> list[str]:
        return [*self.task_ids, *(decoded_output(t) for t in self.task_ids),
                *(decoded_output(t, box_voting=True) for t in self.voting)]

    def forward(self, images: torch.Tensor, fpn_rows: torch.Tensor, *task_rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        feats = model.encoder(images)
        sources = {routing.TOP: feats[-1]}
        if model.decoder is not None:
            sources[routing.FPN] = model.decoder([f.index_select(0, fpn_rows) for f in feats])
        size = (images.shape[-2], images.shape[-1])
        raw = {t: model.head(t)(sources[model.routes[t]].index_select(0, rows), size).float()
               for t, rows in zip(self.task_ids, task_rows)}
        decoding = getattr(self, DECODING_SCOPE)
        decoded = [decoding(model.head(t), raw[t], False if t in self.voting else None) for t in self.task_ids]
        voted = [decoding(model.head(t), raw[t], True) for t in self.voting]
        return (*raw.values(), *decoded, *voted)


class StaticSamePadConv(nn.Module):
    """A TensorFlow-"same" convolution (timm's ``Conv2dSame``, in the ``tf_`` encoders)
    with its padding as constants.

    ``Conv2dSame`` works its padding out from the input's size at every call, which
    the ONNX tracer records as shape arithmetic feeding a ``Pad`` node; OpenVINO runs
    such a ``Pad`` with its slow reference kernel (14% of EfficientNet-Lite0's int8
    forward pass at 128 px). On a side ``i`` divisible by the stride ``s`` the padding
    is ``(k - 1) * d + 1 - s`` whatever ``i`` is, and every feature map of the network
    is: input sides are multiples of 32, the encoder's largest stride
    (``fmuia.model.input_sizes``). Same weights, same arithmetic."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        (kh, kw), (sh, sw), (dh, dw) = conv.weight.shape[-2:], conv.stride, conv.dilation
        pad_h, pad_w = max((kh - 1) * dh + 1 - sh, 0), max((kw - 1) * dw + 1 - sw, 0)
        self.pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return nn.functional.conv2d(nn.functional.pad(x, self.pads), c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


def with_static_padding(module: nn.Module) -> int:
    """Replace every timm ``Conv2dSame`` under ``module`` by ``StaticSamePadConv`` (in
    place); returns how many were replaced."""
    from timm.layers import Conv2dSame

    found = [(name, child) for name, child in module.named_modules() if isinstance(child, Conv2dSame)]
    for name, conv in found:
        parent_name, _, attr = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, attr, StaticSamePadConv(conv))
    return len(found)


def graph_meta(model: MultiTaskModel) -> dict:
    """What a graph file carries so that it alone is enough to predict: the task
    registry, the model config, the prediction settings (flip, box voting...), the
    routes and each task's input size."""
    return {
        "registry": model.registry.to_list(),
        "model_config": model.config.to_dict(),
        "predict_config": model.predict.to_dict(),
        "routes": dict(model.routes),
        "input_sizes": dict(model.input_sizes),
    }


def export_onnx(model: MultiTaskModel, path: str, opset: int = 17) -> None:
    """Write ``model`` (eval mode, fp32, CPU) as the routed graph to ``path``."""
    import onnx  # optional: only export needs it, and the submission container lacks it

    model = model.float().cpu().eval()
    # A copy: the caller's model keeps its own modules.
    graph = RoutedGraph(copy.deepcopy(model)).eval()
    with_static_padding(graph)
    task_ids = graph.task_ids
    size = model.config.image_size
    batch = 2
    example = (
        torch.zeros(batch, 3, size, size),
        torch.arange(batch),
        *[torch.arange(batch) for _ in task_ids],
    )
    input_names = [IMAGES, FPN_ROWS, *[rows_input(t) for t in task_ids]]
    dynamic = {IMAGES: {0: "batch"}, FPN_ROWS: {0: "fpn_batch"}}
    if len(set(model.input_sizes.values())) > 1:  # ``model.input_scale``: tasks of several input sizes
        dynamic[IMAGES].update({2: "height", 3: "width"})
    output_names = graph.output_names()
    for i, t in enumerate(task_ids):
        for name in (rows_input(t), t, decoded_output(t), decoded_output(t, box_voting=True)):
            if name in input_names or name in output_names:
                dynamic[name] = {0: f"rows_{i}"}
    # The TorchScript-based exporter: no onnxscript dependency, and it handles the
    # data-dependent row selection as plain Gather nodes.
    with tempfile.TemporaryDirectory(prefix="fmuia-onnx-") as scratch:
        traced = os.path.join(scratch, "graph.onnx")
        _export(graph, example, traced, input_names, output_names, dynamic, opset)
        proto = onnx.load(traced)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(graph_meta(model))
    atomic_write_bytes(path, proto.SerializeToString())


def _export(graph, example, path, input_names, output_names, dynamic, opset) -> None:
    with warnings.catch_warnings():
        # The exporter's deprecation notice and tracer notes on shape checks that are
        # constant at a fixed image size.
        warnings.simplefilter("ignore")
        _run_exporter(graph, example, path, input_names, output_names, dynamic, opset)


def _run_exporter(graph, example, path, input_names, output_names, dynamic, opset) -> None:
    torch.onnx.export(
        graph, example, path, input_names=input_names, output_names=output_names,
        dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True,
    )
