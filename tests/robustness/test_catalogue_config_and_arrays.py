"""Config mistakes refused before a run folder exists, and images given to the Python
API: DICOM photometric interpretations and transfer syntaxes, and arrays of every
integer and float kind - accepted by the documented intensity rules or refused naming
the argument."""
from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest
from catalogue_helpers import TINY_TRAIN, fingerprint, run_cli
from dataset_builders import materialise, valid_rows
from tiny import tiny_checkpoint

import fmuia
from fmuia.errors import DataError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "io"))
from test_dicom_files import BY_NAME  # noqa: E402  (pydicom-data's files, found without a download)


@pytest.mark.parametrize("override, message", [
    ("train.epochz=2", "train.epochz"),
    ("train.epochs=two", "train.epochs"),
    ("train.epochs", "override 'train.epochs': expected KEY=VALUE with a dotted key, e.g. train.epochs=2"),
    ("data.check=pixels", "data.check: expected one of header, full, none, got 'pixels'"),
])
def test_config_mistakes_stop_train_before_anything_is_written(tmp_path, capsys, override, message):
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    before = fingerprint(tmp_path)
    code, _out, err = run_cli(["train", "--data", root, "--out", tmp_path / "run", *TINY_TRAIN, "--set", override], capsys)
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert fingerprint(tmp_path) == before and not (tmp_path / "run").exists()


def test_unknown_recipe_change_is_a_config_error_naming_it(tmp_path):
    recipe = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "configs", "fmuia_plus.yaml")
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"extends: {os.path.abspath(recipe)}\nchanges: [warp drive]\n")
    from fmuia.config import load_config

    with pytest.raises(fmuia.errors.ConfigError, match=rf"^{re.escape(str(mine))}: changes: unknown change 'warp drive' "):
        load_config(str(mine))


@pytest.fixture(scope="module")
def predictor():
    return fmuia.load(tiny_checkpoint(), device="cpu")


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "examples_ybr_color.dcm", "US1_J2KR.dcm"],
                         ids=["palette_color", "ybr_full_422", "jpeg_2000"])
def test_dicom_files_are_predicted(predictor, name):
    path = BY_NAME[name]
    before = fingerprint(os.path.dirname(path))[os.path.basename(path)]
    [result] = predictor.predict_batch([path], ["breast_2cls"], probabilities=True)
    assert result.label in (0, 1) and abs(float(np.sum(result.probabilities)) - 1) < 1e-5
    assert fingerprint(os.path.dirname(path))[os.path.basename(path)] == before


@pytest.mark.parametrize("image", [
    np.array([[0, 2048, 4095]] * 8, np.uint16),  # 12-bit in uint16
    np.array([[0, 70_000, 2**24 - 1]] * 8, np.int32),
    np.array([[-128, 0, 127]] * 8, np.int8),
], ids=["uint16_12bit", "int32", "negative_int8"])
def test_integer_arrays_are_predicted(predictor, image):
    [result] = predictor.predict_batch([image], ["FUGC"])
    points = np.asarray(result.points)
    assert points.shape == (2, 2) and np.isfinite(points).all()


@pytest.mark.parametrize("image, reason", [
    (np.array([[0.0, np.nan]] * 4, np.float32), "NaN or infinite"),
    (np.zeros((1, 8, 8, 3), np.uint8), r"got shape \(1, 8, 8, 3\)"),
], ids=["float_nan", "four_d"])
def test_unusable_arrays_are_refused_naming_the_argument(predictor, image, reason):
    with pytest.raises(DataError, match="^image: .*" + reason):
        predictor.predict_batch([image], ["FUGC"])
