"""The checkpoint's predict: section chooses the backend and the batch size unless an
argument does."""
import pytest
import torch

from fmuia.config import PredictConfig
from fmuia.errors import CheckpointError
from fmuia.model import ModelConfig, build_model
from fmuia.model.checkpoint import save_checkpoint
from fmuia.predict import pipeline
from fmuia.predict.api import load
from fmuia.tasks import TaskRegistry, fmuia2026

from tiny import TINY

REGISTRY = TaskRegistry(t for t in fmuia2026() if t.task_id in ("organ_cls",))


def _saved(folder, **settings) -> str:
    torch.manual_seed(0)
    path = str(folder / "ckpt")
    save_checkpoint(build_model(ModelConfig(**TINY), REGISTRY, PredictConfig(**settings)), path)
    return path


def test_saved_backend_is_the_default_and_an_argument_overrides_it(tmp_path):
    path = _saved(tmp_path, backend="onnxruntime")
    assert load(path, device="cpu").backend.name == "onnxruntime"
    assert load(path, device="cpu", backend="torch").backend.name == "torch"


def test_a_saved_int8_choice_needs_calibration_and_an_argument_overrides_it(tmp_path):
    pytest.importorskip("openvino")
    path = _saved(tmp_path, backend="openvino", precision="int8")
    with pytest.raises(CheckpointError, match="calibration"):
        load(path, device="cpu")
    assert load(path, device="cpu", backend="torch").backend.name == "torch"


def test_saved_batch_size_is_the_default(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("fmuia.predict.predictor.predict_dataset", lambda p, d, o, **options: seen.update(options))
    predictor = load(_saved(tmp_path, batch_size=3), device="cpu")
    predictor.predict_dataset("data", "out")
    assert seen["batch_size"] == 3
    predictor.predict_dataset("data", "out", batch_size=5)
    assert seen["batch_size"] == 5
    assert pipeline.predict_dataset.__kwdefaults__["batch_size"] == PredictConfig().batch_size
