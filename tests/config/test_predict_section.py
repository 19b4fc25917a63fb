"""The predict: section: old configs' model.tta/model.box_voting move there with a note."""
import logging

import yaml

from fmuia.config import PredictConfig, dump_config, load_config


def test_old_model_keys_move_to_predict_with_one_note(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text("model:\n  tta: true\n  box_voting: true\n  encoder: resnet18\n")
    with caplog.at_level(logging.WARNING):
        config = load_config(str(old))
    assert (config.predict.tta, config.predict.box_voting, config.model.encoder) == (True, True, "resnet18")
    assert "tta" not in yaml.safe_load(dump_config(config))["model"]
    [note] = caplog.records
    assert str(old) in note.getMessage() and "predict.tta" in note.getMessage()
    caplog.clear()
    assert load_config(None, ["model.tta=true"]).predict.tta is True and len(caplog.records) == 1
    # the new place wins over the old one in one file
    assert load_config({"model": {"tta": True}, "predict": {"tta": False}}).predict.tta is False


def test_predict_defaults():
    assert PredictConfig() == PredictConfig(tta=False, box_voting=False, batch_size=8, backend="torch", precision="fp32")
    assert load_config(None, ["predict.batch_size=4"]).predict.batch_size == 4
