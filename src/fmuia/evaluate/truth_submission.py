"""A submission made from the ground truth itself, exact or perturbed.

Scoring the exact one must give perfect scores (Dice 1, HD 0, IoU 1, MRE 0,
accuracy 1), which checks the scorer and the submission layout end to end; the
perturbed one (shifted and eroded masks, jittered boxes and points, noisy
probabilities, some predictions dropped; each kind's ``TaskKind.truth_result``) gives realistic imperfect scores for
timing the scorer and for trying the report.
"""
from __future__ import annotations

import json
import os

import numpy as np

from fmuia import kinds
from fmuia.io.atomic import write_bytes, write_text
from fmuia.data.layout import read_layout
from fmuia.evaluate.predictions import json_kinds

__all__ = ["write_truth_submission"]


def write_truth_submission(data_root: str, out_dir: str, noise: float = 0.0, drop: float = 0.0, seed: int = 0) -> int:
    """Write a submission for every labelled row of ``data_root`` into ``out_dir``.

    ``noise`` in [0, 1] scales every perturbation (0: the truth exactly); ``drop`` is
    the fraction of rows left without a prediction. Returns the predictions written.
    """
    layout = read_layout(data_root)
    rng = np.random.default_rng(seed)
    lists: dict[str, list] = {k.name: [] for k in json_kinds()}
    written = 0
    for e in layout.entries:
        if not e.labelled or rng.random() < drop:
            continue
        owner = kinds.kind_of(e.kind)
        result = owner.truth_result(layout.registry[e.task_id], e, noise, rng)
        if owner.prediction_file is None:
            write_bytes(os.path.join(out_dir, owner.prediction_path(e)), owner.prediction_bytes(result))
        else:
            lists[owner.name].append(owner.record(e, result))
        written += 1
    os.makedirs(out_dir, exist_ok=True)
    for owner in json_kinds():
        if lists[owner.name]:
            write_text(os.path.join(out_dir, owner.prediction_file), json.dumps(lists[owner.name], indent=1))
    return written
