"""DICOM files whose data fills a small part of the declared value range (12-bit data in
a file declaring 16 stored bits, a rescale with no window): read nearly black by the
documented rule, with a warning naming the file; windowed from the data on request."""
from __future__ import annotations

import logging
import os
import sys

import numpy as np
import pytest
from catalogue_helpers import run_cli

pytest.importorskip("pydicom")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "io"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "pretrain"))
from pretrain_helpers import TINY_PRETRAIN  # noqa: E402
from test_dicom_pipeline import _dataset, _save  # noqa: E402

from fmuia.io.dicom import read_dicom  # noqa: E402

TWELVE_BITS = np.random.default_rng(0).integers(0, 4096, (24, 32)).astype(np.uint16)
CASES = {
    # 12-bit data, 16 bits declared: at most 4095/65535 of the range, 16/255 at the brightest.
    "sixteen_bits_declared": dict(bits=16),
    # 8-bit data with a rescale that spreads the declared range 256-fold, no window.
    "rescale_without_window": dict(bits=16, RescaleSlope="256", RescaleIntercept="0"),
}


def _file(tmp_path, name, pixels=TWELVE_BITS, **elements):
    return _save(_dataset(pixels if name != "rescale_without_window" else pixels >> 4, **{**CASES[name], **elements}),
                 tmp_path / f"{name}.dcm")


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_nearly_black_reading_is_named_and_windowed_from_the_data_on_request(tmp_path, caplog, name):
    path = _file(tmp_path, name)
    declared = read_dicom(path)
    warnings = [r.getMessage() for r in caplog.records if path in r.getMessage()]
    assert declared.max() <= 16 and len(warnings) == 1
    assert warnings[0].startswith(f"warning: {path}: the image's values ") and "gives no window, so it reads nearly black" in warnings[0]
    assert "Window it from the data with the DICOM range 'percentile' (or 'minmax')" in warnings[0]
    read_dicom(path)
    assert len([r for r in caplog.records if path in r.getMessage()]) == 1  # once per file
    minmax, robust = read_dicom(path, value_range="minmax"), read_dicom(path, value_range="percentile")
    assert (minmax.min(), minmax.max()) == (0, 255) and robust.max() == 255
    order = np.argsort(TWELVE_BITS, axis=None)  # the data's order is kept
    assert np.all(np.diff(minmax[..., 0].ravel()[order].astype(int)) >= 0)


def test_a_file_with_a_window_keeps_it_silently(tmp_path, caplog):
    path = _file(tmp_path, "sixteen_bits_declared", WindowCenter="2048", WindowWidth="4096")
    windowed = read_dicom(path, value_range="percentile")
    assert np.array_equal(windowed, read_dicom(path)) and windowed.max() > 200
    assert not [r for r in caplog.records if path in r.getMessage()]


def test_pretrain_warns_and_windows_from_the_data_by_its_config(tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("FMUIA_DICOM_RANGE", "declared")  # the runs set it for the process; restored after
    caplog.set_level(logging.INFO)
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    paths = [_save(_dataset(rng.integers(0, 4096, (40, 48)).astype(np.uint16), bits=16), folder / f"{i}.dcm")
             for i in range(6)]
    sets = [a for item in TINY_PRETRAIN + ["train.epochs=1"] for a in ("--set", item)]
    code, _out, err = run_cli(["pretrain", "--images", folder, "--out", tmp_path / "run", *sets], capsys)
    named = {p for p in paths if any(p in r.getMessage() and "nearly black" in r.getMessage() for r in caplog.records)}
    assert code == 0 and named == set(paths) and "Traceback" not in err
    caplog.clear()
    code, _out, err = run_cli(["pretrain", "--images", folder, "--out", tmp_path / "run2", *sets,
                               "--set", "data.dicom_range=percentile"], capsys)
    assert code == 0 and not [r for r in caplog.records if "nearly black" in r.getMessage()]
    code, _out, err = run_cli(["pretrain", "--images", folder, "--out", tmp_path / "run3", *sets,
                               "--set", "data.dicom_range=window"], capsys)
    assert code == 2 and err.startswith("error: ") and "data.dicom_range" in err and "percentile" in err
