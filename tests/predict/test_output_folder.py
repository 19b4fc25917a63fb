"""The output folder of ``fmuia predict``: never among the inputs, new or empty unless
--overwrite (which removes only stale prediction files), OS errors as DataError."""
import errno
import os

import pytest
from dataset_builders import materialise, seg_row, valid_rows, write_csv, write_image
from tiny import tiny_checkpoint

import fmuia
from fmuia.cli.main import main
from fmuia.errors import DataError, OutputError
from fmuia.predict import writer as writer_module
from fmuia.predict.pipeline import predict_dataset
from fmuia.tasks import fmuia2026

JSONS = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")


class _NoModel:
    """The folder checks happen before any prediction: a predictor that must never be used."""

    registry = fmuia2026()
    image_size = 64

    def results(self, *args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("prediction started before the output folder was checked")


@pytest.fixture(scope="module")
def predictor():
    return fmuia.load(tiny_checkpoint(), device="cpu")


def _snapshot(folder) -> dict[str, bytes]:
    found = {}
    for base, _dirs, files in os.walk(folder):
        for f in files:
            path = os.path.join(base, f)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, folder)] = fh.read()
    return found


@pytest.mark.parametrize("where, relation", [
    ("{root}", "is the data root"),
    ("{root}/csv_files", "is the CSV folder"),
    ("{root}/predictions", "is inside the data root"),
    ("{root}/Segmentation/Two/breast_lesion/MASKS", "is the mask folder of csv_files/data.csv line 2"),
    ("{tmp}", "contains the data root"),
    ("{tmp}/images", "is the image folder of csv_files/data.csv line 3"),
    ("{tmp}/images/deeper", "is inside the image folder of csv_files/data.csv line 3"),
])
def test_output_folder_among_the_inputs_is_refused(tmp_path, where, relation):
    root = str(tmp_path / "data")
    outside_image = os.path.join(str(tmp_path), "images", "x.png")
    rows = [seg_row(0), {"task_id": "breast_2cls", "task_name": "classification", "num_classes": 2,
                         "image_path": "../../images/x.png", "mask": 1}]
    materialise(root, rows)
    write_image(outside_image)
    out = where.format(root=root, tmp=str(tmp_path))
    before = _snapshot(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(DataError) as err:
            predict_dataset(_NoModel(), root, out, workers=0, progress=False, overwrite=overwrite)
        assert f"the output folder {relation}" in str(err.value)
    assert _snapshot(tmp_path) == before


def test_a_symlink_to_the_data_root_is_refused(tmp_path):
    root = str(tmp_path / "data")
    materialise(root, [seg_row(0)])
    os.symlink(root, tmp_path / "link")
    with pytest.raises(DataError, match="the output folder is the data root"):
        predict_dataset(_NoModel(), root, str(tmp_path / "link"), workers=0, progress=False)


def test_non_empty_output_folder_needs_overwrite(tmp_path):
    root, out = str(tmp_path / "data"), tmp_path / "out"
    materialise(root, [seg_row(0)])
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"out: the output folder is not empty \(notes.txt\).*--overwrite"):
        predict_dataset(_NoModel(), root, str(out), workers=0, progress=False)
    assert main(["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", str(out)]) == 2
    assert sorted(os.listdir(out)) == ["notes.txt"]


def test_overwrite_removes_only_stale_prediction_files(tmp_path, predictor):
    root, out = str(tmp_path / "data"), tmp_path / "out"
    materialise(root, valid_rows())
    stale = ["Segmentation/Two/old_task/MASKS/9.png", "Segmentation/Four/cardiac_multi/MASKS/stale.PNG", *JSONS]
    kept = ["notes.txt", "Segmentation/README.txt", "Other/9.png", "Segmentation/Two/old_task/keep.json"]
    for rel in stale + kept:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"earlier run")
    (out / "Segmentation" / "Five" / "empty_task").mkdir(parents=True)
    predictor.predict_dataset(root, str(out), workers=0, progress=False, overwrite=True)
    assert all(not (out / rel).exists() for rel in stale[:2])
    assert all((out / rel).read_bytes() == b"earlier run" for rel in kept)
    assert all((out / name).read_bytes() != b"earlier run" for name in JSONS)
    assert not (out / "Segmentation" / "Five").exists()  # folders emptied of stale masks go too
    assert (out / "Segmentation" / "Two" / "old_task").is_dir()  # still holds a file that is not ours
    assert (out / "Segmentation/Four/cardiac_multi/MASKS/001.png").is_file()


def test_an_empty_existing_output_folder_is_accepted(tmp_path, predictor):
    root, out = str(tmp_path / "data"), tmp_path / "out"
    materialise(root, valid_rows())
    out.mkdir()
    predictor.predict_dataset(root, str(out), workers=0, progress=False)
    assert all((out / name).is_file() for name in JSONS)


def test_output_path_that_is_a_file_is_refused(tmp_path):
    root, out = str(tmp_path / "data"), tmp_path / "out"
    materialise(root, [seg_row(0)])
    out.write_text("x")
    with pytest.raises(OutputError, match="out: cannot write the output folder .it exists and is not a folder"):
        predict_dataset(_NoModel(), root, str(out), workers=0, progress=False, overwrite=True)
    with pytest.raises(OutputError, match=f"out/sub: cannot write the output folder .{out} is a file, not a folder"):
        predict_dataset(_NoModel(), root, str(out / "sub"), workers=0, progress=False)


@pytest.mark.parametrize("mask_name, length, limit", [
    ("m" * 296 + ".png", 300, 217),   # the atomic writer's temporary name adds 38 bytes
    ("m" * 236 + ".png", 240, 217),
    ("d" * 300 + "/1.png", 300, 255),
])
def test_mask_names_too_long_are_refused_naming_the_row(tmp_path, mask_name, length, limit):
    root, out = str(tmp_path / "data"), str(tmp_path / "out")
    rows = [seg_row(0), seg_row(1)]
    materialise(root, rows)
    rows[1] = {**rows[1], "mask_path": "../Segmentation/Two/breast_lesion/MASKS/" + mask_name}
    write_csv(os.path.join(root, "csv_files", "data.csv"), rows)
    with pytest.raises(DataError) as err:
        predict_dataset(_NoModel(), root, out, workers=0, progress=False)
    assert f"csv_files/data.csv line 3: mask_path '../Segmentation/Two/breast_lesion/MASKS/{mask_name[:3]}" in str(err.value)
    assert f"a name of {length} bytes (at most {limit} can be written here)" in str(err.value)
    assert not os.path.exists(out)


def test_a_name_too_long_at_write_time_is_an_output_error_naming_the_file(tmp_path):
    import numpy as np

    path = str(tmp_path / ("x" * 300 + ".png"))
    with pytest.raises(OutputError, match=r"xxx\.png: cannot write the mask \(File name too long: a name of 304 bytes"):
        writer_module.write_mask_png(path, np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("target, code", [("mask", errno.EROFS), ("mask", errno.EACCES), ("json", errno.ENOSPC)])
def test_os_errors_while_writing_become_output_errors(tmp_path, predictor, failing_writes, capsys, target, code):
    """Read-only file system, permission denied, disk full: an `error:` line naming the
    path, exit 2, no traceback."""
    root, out = str(tmp_path / "data"), str(tmp_path / "out")
    materialise(root, valid_rows())
    failing_writes(code, ".png" if target == "mask" else ".json")
    assert main(["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", out,
                 "--device", "cpu", "--workers", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    expected = ".png: cannot write the mask" if target == "mask" else "classification_predictions.json: cannot write"
    assert err.startswith("error: " + out) and expected in err and os.strerror(code) in err
    assert "Traceback" not in err
    assert not any(os.path.exists(os.path.join(out, name)) for name in JSONS)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_an_output_error(tmp_path, predictor):
    root, out = str(tmp_path / "data"), tmp_path / "out"
    materialise(root, valid_rows())
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=f"{out}.*: cannot write .*Permission denied"):
            predictor.predict_dataset(root, str(out), workers=0, progress=False)
    finally:
        out.chmod(0o755)


def test_predict_batch_of_nothing_is_an_empty_list(predictor):
    assert predictor.predict_batch([], []) == []
    with pytest.raises(DataError, match="1 images but 0 task ids"):
        predictor.predict_batch([object()], [])
