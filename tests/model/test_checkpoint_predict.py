"""The prediction settings travel with the checkpoint; a checkpoint written before the
predict: section (model_config.tta / .box_voting) still loads, its settings moved."""
import json
import logging

import torch

from fmuia.config import PredictConfig
from fmuia.model import build_model, load_checkpoint, save_checkpoint
from fmuia.model.checkpoint import FIELD_HASHES, CHECKPOINT_HASH, SIDECAR_NAME, _seal
from fmuia.tasks import TaskRegistry, fmuia2026
from model_helpers import tiny_config

REGISTRY = TaskRegistry(t for t in fmuia2026() if t.task_id in ("thyroid_nodule_det", "organ_cls"))


def test_predict_settings_are_saved_and_loaded(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config(heads={"detection": "centernet"}), REGISTRY, PredictConfig(tta=True, box_voting=True))
    save_checkpoint(model, tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / SIDECAR_NAME).read_text())
    assert meta["predict_config"]["tta"] is True and "tta" not in meta["model_config"]
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.predict == model.predict and loaded.head("thyroid_nodule_det").box_voting is True


def test_a_checkpoint_from_before_the_predict_section_loads(tmp_path, caplog):
    torch.manual_seed(0)
    save_checkpoint(build_model(tiny_config(), REGISTRY), tmp_path / "ckpt")
    sidecar = tmp_path / "ckpt" / SIDECAR_NAME
    meta = json.loads(sidecar.read_text())
    for name in (FIELD_HASHES, CHECKPOINT_HASH, "predict_config"):
        del meta[name]
    meta["model_config"].update(tta=True, box_voting=False)  # how older versions saved them
    sidecar.write_text(json.dumps(_seal(meta)))
    with caplog.at_level(logging.WARNING):
        loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.predict.tta is True and loaded.predict.box_voting is False
    assert len(caplog.records) == 1 and "model.tta" in caplog.records[0].getMessage()
