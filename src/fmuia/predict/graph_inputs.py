"""The names and inputs of the exported routed graph (``fmuia.predict.onnx_graph``),
without torch: what the onnxruntime and OpenVINO backends need to run a graph file.

Graph inputs:

- ``images``: float32 ``(B, 3, S, S)``, ImageNet-normalised (as for the PyTorch model);
  the OpenVINO model compiled by ``openvino_graph.compiler`` takes the uint8
  ``(B, S, S, 3)`` batch as read instead and normalises it itself;
- ``fpn_rows``: int64 ``(F,)``, the batch rows that go through the FPN decoder;
- ``rows:<task_id>`` for every task: int64 ``(k,)``, the rows of that task's head,
  indexing its feature source (the batch for ``top`` tasks, ``fpn_rows`` order for
  ``fpn`` tasks); empty when the task is not in the batch.

Graph outputs, for every task, for its ``k`` rows in the order given:

- ``<task_id>``: the head's raw output (``MultiTaskModel.forward``'s ``out[task]``);
- ``decoded:<task_id>``: the head's ``decode`` of it (normalised predictions);
- ``voted:<task_id>``: for a head with box voting (``box_voting`` attribute), its
  ``decode`` with voting on; ``decoded:`` is then the decode with voting off, so that
  the prediction setting can still be chosen when the graph runs.

Decoding inside the graph lets the graph backends predict without torch.
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from fmuia.model import routing

IMAGES = "images"
FPN_ROWS = "fpn_rows"
ROWS_PREFIX = "rows:"
DECODED_PREFIX = "decoded:"
VOTED_PREFIX = "voted:"
META_KEY = "fmuia"
# The graph's decoding nodes are named under this scope (``/decoding/...``): int8
# quantisation leaves them in fp32 by that name.
DECODING_SCOPE = "decoding"


def rows_input(task_id: str) -> str:
    return ROWS_PREFIX + task_id


def decoded_output(task_id: str, box_voting: bool = False) -> str:
    """The name of a task's decoded output (``voted:`` for the box-voting decode)."""
    return (VOTED_PREFIX if box_voting else DECODED_PREFIX) + task_id


def routing_feeds(task_ids: Sequence[str], routes: dict[str, str], all_tasks: Sequence[str]) -> dict[str, np.ndarray]:
    """The index inputs of the graph for a batch of ``task_ids`` (the same grouping as
    ``MultiTaskModel.forward``: tasks' rows ascending)."""
    groups = routing.group_indices(task_ids)
    fpn_rows = sorted(i for t, rows in groups.items() if routes[t] == routing.FPN for i in rows)
    position = {i: j for j, i in enumerate(fpn_rows)}
    feeds = {FPN_ROWS: np.asarray(fpn_rows or [0], dtype=np.int64)}
    for task_id in all_tasks:
        rows = groups.get(task_id, [])
        if routes[task_id] == routing.FPN:
            rows = [position[i] for i in rows]
        feeds[rows_input(task_id)] = np.asarray(rows, dtype=np.int64)
    return feeds


def read_onnx_meta(session) -> dict:
    """The metadata written by ``onnx_graph.export_onnx`` from an onnxruntime session."""
    custom = session.get_modelmeta().custom_metadata_map
    if META_KEY not in custom:
        raise KeyError(META_KEY)
    return json.loads(custom[META_KEY])
