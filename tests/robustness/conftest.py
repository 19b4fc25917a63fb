"""The catalogue shares the prediction tests' tiny checkpoint (built once per session)
and the pretraining tests' image folders, and makes the inputs of every writing
command once (``command_inputs``, for ``catalogue_helpers.COMMANDS``)."""
import os
import sys

for _helpers in ("predict", "pretrain"):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, _helpers))

import pytest  # noqa: E402
import torch  # noqa: E402
from pretrain_helpers import write_grey_images  # noqa: E402
from tiny import TINY  # noqa: E402

from fmuia.data.layout import read_layout  # noqa: E402
from fmuia.evaluate.truth_submission import write_truth_submission  # noqa: E402
from fmuia.model import ModelConfig, build_model, save_checkpoint  # noqa: E402
from fmuia.tasks import fmuia2026  # noqa: E402


@pytest.fixture(scope="session")
def command_inputs(tmp_path_factory, train_root):
    """Inputs every command reads, made once: a labelled root, a checkpoint, grey
    images for pretraining and a prediction folder (the ground truth as predictions)."""
    base = tmp_path_factory.mktemp("fs-inputs")
    pred = str(base / "pred")
    write_truth_submission(train_root, pred)
    # The tiny model with only the root's four tasks: quicker to load and export than all 27.
    torch.manual_seed(0)
    registry = fmuia2026().subset(read_layout(train_root).registry.task_ids)
    checkpoint = str(base / "ckpt")
    save_checkpoint(build_model(ModelConfig(**TINY), registry).eval(), checkpoint)
    return {"data": train_root, "ckpt": checkpoint, "images": write_grey_images(str(base / "images")), "pred": pred}
