"""What ``fmuia export submission`` puts in the folder: the prediction modules only,
a requirements.txt generated from their imports, templates from package data; and
the prediction path loads no training or scoring code."""
import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from dataset_builders import materialise, valid_rows
from tiny import tiny_checkpoint

import fmuia
from fmuia.cli.main import main
from fmuia.errors import ConfigError
from fmuia.evaluate.predictions import json_kinds
from fmuia.predict.requirements import distributions_for, requirements_text, scan_imports
from fmuia.predict.submission import export_submission, template_dir
from fmuia.predict.writer import json_files
from fmuia.tasks import Kind

REPO = Path(__file__).resolve().parents[2]
NOT_FOR_PREDICTION = ("sklearn", "matplotlib", "pandas", "fmuia.train", "fmuia.evaluate", "fmuia.cli", "fmuia.synthetic")


def test_prediction_loads_no_training_or_scoring_code(tmp_path):
    root, out = str(tmp_path / "data"), str(tmp_path / "out")
    materialise(root, valid_rows())
    code = textwrap.dedent(f"""
        import sys
        import fmuia.predict
        predictor = fmuia.load({tiny_checkpoint()!r}, device="cpu")
        predictor.predict_dataset({root!r}, {out!r}, workers=0, progress=False)
        predictor.predict({os.path.join(root, "csv_files", valid_rows()[0]["image_path"])!r}, "breast_lesion")
        loaded = [m for m in {NOT_FOR_PREDICTION!r} if m in sys.modules]
        print("LOADED", loaded)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout
    assert os.path.isfile(os.path.join(out, "classification_predictions.json"))


def test_writer_and_scorer_name_the_same_json_files():
    expected = {Kind.CLASSIFICATION: "classification_predictions.json", Kind.DETECTION: "detection_predictions.json",
                Kind.KEYPOINTS: "regression_predictions.json"}
    assert json_files() == expected
    assert {k.kind: k.prediction_file for k in json_kinds()} == expected


def test_export_ships_the_prediction_modules_and_generated_requirements(tmp_path):
    folder = tmp_path / "submission"
    assert main(["export", "submission", "--checkpoint", tiny_checkpoint(), str(folder), "--device", "cpu"]) == 0
    assert sorted(os.listdir(folder)) == ["Dockerfile", "checkpoint", "fmuia", "model.py", "requirements.txt", "settings.json"]
    shipped = {p.relative_to(folder / "fmuia").as_posix() for p in (folder / "fmuia").rglob("*") if p.is_file()}
    assert {"__init__.py", "predict/api.py", "predict/pipeline.py", "predict/writer.py", "model/network.py",
            "tasks/fmuia2026.yaml", "data/resize.py", "predict/normalise.py"} <= shipped
    # data/transforms.py: prediction resizes with OpenCV alone, so the container needs no albumentations
    for absent in ("train/", "evaluate/", "cli/", "synthetic/", "data/transforms.py", "predict/submission.py", "predict/requirements.py",
                   "predict/templates/", "demo.py"):
        assert not any(name.startswith(absent) for name in shipped), absent
    assert json.loads((folder / "settings.json").read_text())["device"] == "cpu"
    assert (folder / "model.py").read_bytes() == (template_dir() / "model.py").read_bytes()

    lines = (folder / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    names = {name.lower().replace("_", "-") for name in pins}
    assert {"torch", "torchvision", "timm", "segmentation-models-pytorch", "numpy",
            "opencv-python-headless", "pillow", "pyyaml", "safetensors", "tqdm"} == names
    assert pins["torch"] == metadata.version("torch").split("+")[0]
    assert pins["timm"] == metadata.version("timm")
    assert any("onnxruntime" in line and "pydicom" in line for line in lines if line.startswith("#"))

    with pytest.raises(ConfigError, match="not empty"):
        export_submission(tiny_checkpoint(), str(folder))


def test_templates_are_package_data():
    folder = template_dir()
    assert folder.is_relative_to(Path(fmuia.__file__).resolve().parent)
    assert {"model.py", "Dockerfile"} <= set(os.listdir(folder))
    with open(REPO / "pyproject.toml", "rb") as fh:
        package_data = tomllib.load(fh)["tool"]["setuptools"]["package-data"]
    assert "templates/*" in package_data["fmuia.predict"]
    assert not (REPO / "submission" / "model.py").exists()  # nothing is read from the repository


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_import_walk_follows_fmuia_and_tells_required_from_optional(tmp_path):
    package = tmp_path / "fmuia"
    _write(tmp_path / "model.py", "import os\nimport fmuia\nfrom fmuia.sub import runner\n")
    _write(package / "__init__.py", "def load():\n    from fmuia.sub import lazy\n")
    _write(package / "sub" / "__init__.py", "")
    _write(package / "sub" / "runner.py", """
        from __future__ import annotations
        from typing import TYPE_CHECKING
        import numpy as np
        from . import helper
        if TYPE_CHECKING:
            import pandas
        try:
            import onnx
        except ImportError:
            onnx = None
        class Thing:
            import yaml
        def read(path):
            import pydicom
    """)
    _write(package / "sub" / "helper.py", "from ..sub.lazy import VALUE\nimport cv2.data\n")
    _write(package / "sub" / "lazy.py", "VALUE = 1\nimport timm\n")
    _write(package / "unused.py", "import sklearn\n")
    scan = scan_imports(tmp_path / "model.py", package)
    assert sorted(scan.modules) == ["fmuia", "fmuia.sub", "fmuia.sub.helper", "fmuia.sub.lazy", "fmuia.sub.runner"]
    assert sorted(scan.required) == ["cv2", "numpy", "timm", "yaml"]
    assert sorted(scan.optional) == ["onnx", "pydicom"]
    assert scan.required["numpy"] == {"fmuia/sub/runner.py"}


def test_an_import_no_distribution_provides_is_named():
    with pytest.raises(ConfigError, match=r"fmuia/x\.py: imports 'no_such_module_fmuia'"):
        distributions_for({"no_such_module_fmuia": {"fmuia/x.py"}})


def test_requirements_pin_torch_without_its_local_label(monkeypatch):
    scan = scan_imports(template_dir() / "model.py", Path(fmuia.__file__).resolve().parent)
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "9.8.7+cu999" if name == "torch" else real(name))
    assert "torch==9.8.7\n" in requirements_text(scan)


def test_export_writes_the_checkpoints_tta_choice_unless_told_otherwise(tmp_path):
    import torch

    from fmuia.config import PredictConfig
    from fmuia.model import ModelConfig, build_model, save_checkpoint
    from fmuia.tasks import fmuia2026
    from tiny import TINY

    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY), fmuia2026(), PredictConfig(tta=True, box_voting=True))
    save_checkpoint(model, str(tmp_path / "ckpt"))
    assert main(["export", "submission", "--checkpoint", str(tmp_path / "ckpt"), str(tmp_path / "a")]) == 0
    settings = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert settings["tta"] is True and settings["box_voting"] is True
    assert main(["export", "submission", "--checkpoint", str(tmp_path / "ckpt"), str(tmp_path / "b"), "--no-tta",
                 "--no-box-voting"]) == 0
    settings = json.loads((tmp_path / "b" / "settings.json").read_text())
    assert settings["tta"] == [] and settings["box_voting"] is False
    assert main(["export", "submission", "--checkpoint", tiny_checkpoint(), str(tmp_path / "c")]) == 0
    settings = json.loads((tmp_path / "c" / "settings.json").read_text())
    assert settings["tta"] == [] and settings["box_voting"] is False
