"""Where ``fmuia predict`` writes: never among the inputs, never over files it did not
write, never outside its folder; refusals come before any prediction, as an ``error:``
line and exit 2, and leave the data and the folder as they were."""
from __future__ import annotations

import errno
import os

import pytest
from catalogue_helpers import fingerprint, rewrite, run_cli
from dataset_builders import materialise, seg_row, valid_rows
from tiny import tiny_checkpoint

import fmuia

JSONS = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")


def _predict(root, out, capsys, *extra):
    return run_cli(["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", out, "--workers", "0",
                    "--no-progress", "--device", "cpu", *extra], capsys)


@pytest.fixture
def root(tmp_path):
    folder = str(tmp_path / "data")
    materialise(folder, valid_rows())
    return folder


@pytest.mark.parametrize("where, relation", [
    ("{root}", "is the data root"),
    ("{root}/predictions", "is inside the data root"),
    ("{tmp}", "contains the data root"),
])
def test_out_among_the_inputs_is_refused(tmp_path, capsys, root, where, relation):
    out = where.format(root=root, tmp=tmp_path)
    before = fingerprint(tmp_path)
    for extra in ((), ("--overwrite",)):
        code, _out, err = _predict(root, out, capsys, *extra)
        assert code == 2 and err.startswith("error: ") and f"the output folder {relation}" in err
    assert fingerprint(tmp_path) == before


def test_non_empty_out_without_overwrite_is_refused(tmp_path, capsys, root):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _out, err = _predict(root, out, capsys)
    assert code == 2 and f"{out}: the output folder is not empty (notes.txt)" in err and "--overwrite" in err
    assert sorted(os.listdir(out)) == ["notes.txt"]


def test_overwrite_removes_only_stale_prediction_files(tmp_path, capsys, root):
    out = tmp_path / "out"
    stale = out / "Segmentation/Two/old_task/MASKS/9.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"earlier run")
    (out / "notes.txt").write_text("mine")
    (out / "classification_predictions.json").write_text("[]")
    code, _out, err = _predict(root, out, capsys, "--overwrite")
    assert code == 0 and not stale.exists() and (out / "notes.txt").read_text() == "mine"
    assert (out / "classification_predictions.json").read_text() != "[]"
    assert (out / "Segmentation/Two/breast_lesion/MASKS/000.png").is_file()


def test_read_only_out_is_an_error_naming_the_file(tmp_path, capsys, root, failing_writes):
    """A read-only file system (EROFS, as root meets it too) at the first mask written."""
    out = str(tmp_path / "out")
    failing_writes(errno.EROFS, ".png")
    code, _out, err = _predict(root, out, capsys)
    assert code == 2 and err.startswith("error: " + out) and ".png: cannot write the mask" in err
    assert "Read-only file system" in err and "Traceback" not in err
    assert not any(os.path.exists(os.path.join(out, j)) for j in JSONS)


@pytest.mark.parametrize("mask_path, reason", [
    ("../Segmentation/Two/breast_lesion/MASKS/" + "m" * 296 + ".png", "a name of 300 bytes (at most 217 can be written here)"),
    ("/tmp/elsewhere/000.png", "is an absolute path"),
    ("../Segmentation/../../../escape/000.png", "still contains '..' after removing the leading '../'"),
])
def test_unsafe_mask_names_are_refused_naming_the_row(tmp_path, capsys, mask_path, reason):
    root = str(tmp_path / "data")
    rows = [seg_row(0), seg_row(1)]
    materialise(root, rows)
    rows[1] = {**rows[1], "mask_path": mask_path}
    rewrite(root, rows)
    before = fingerprint(tmp_path)
    code, _out, err = _predict(root, tmp_path / "out", capsys)
    assert code == 2 and "csv_files/data.csv line 3: mask_path " in err and reason in err
    assert not (tmp_path / "out").exists() and fingerprint(tmp_path) == before
    assert not os.path.exists("/tmp/elsewhere/000.png")


def test_a_symlink_leaving_the_output_folder_is_not_followed(tmp_path, capsys, root):
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.png").write_bytes(b"not ours")
    out.mkdir()
    os.symlink(outside, out / "Segmentation")
    code, _out, err = _predict(root, out, capsys, "--overwrite")
    assert code == 2 and "Segmentation" in err and "error: " in err
    assert sorted(os.listdir(outside)) == ["keep.png"] and (outside / "keep.png").read_bytes() == b"not ours"


def test_predict_batch_of_nothing_is_an_empty_list():
    predictor = fmuia.load(tiny_checkpoint(), device="cpu")
    assert predictor.predict_batch([], []) == []


def test_an_empty_out_under_a_read_only_parent_is_predicted_into(tmp_path, capsys, root):
    """A container's /output under a read-only /: the run's lock lives in the folder for
    the run's length, and the folder ends with the predictions alone."""
    import shutil
    import subprocess

    parent = tmp_path / "ro"
    out = parent / "out"
    out.mkdir(parents=True)
    if os.geteuid() != 0 or not shutil.which("chattr") or \
            subprocess.run(["chattr", "+i", str(parent)], capture_output=True).returncode:
        pytest.skip("needs chattr as root")
    try:
        code, _out, err = _predict(root, out, capsys)
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=False)
    assert code == 0, err
    assert sorted(os.listdir(out)) == ["Segmentation", *JSONS]
