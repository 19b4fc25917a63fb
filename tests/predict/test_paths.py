import os

import pytest
from dataset_builders import materialise, seg_row, write_csv

from fmuia.errors import DataError
from fmuia.predict.pipeline import predict_dataset
from fmuia.predict.paths import plan_mask_files, relative_output_path
from fmuia.tasks import fmuia2026


class _NoModel:
    """Path checks happen before any prediction: a predictor that must never be used."""

    registry = fmuia2026()
    image_size = 64

    def results(self, *args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("prediction started before the paths were checked")


def test_leading_parents_are_stripped():
    assert relative_output_path("../Segmentation/Two/b/MASKS/1.png") == os.path.join("Segmentation", "Two", "b", "MASKS", "1.png")
    assert relative_output_path("../../x/./y.png") == os.path.join("x", "y.png")


@pytest.mark.parametrize("bad, reason", [
    ("/etc/passwd_mask.png", "absolute"),
    ("../Segmentation/../../escape.png", "still contains '..'"),
    ("../Seg/..\\..\\escape.png", "still contains '..'"),
    ("C:\\masks\\x.png", "absolute"),
    ("../classification_predictions.json", "collides"),
])
def test_unsafe_mask_paths_refused_with_row_and_nothing_written(tmp_path, bad, reason):
    root, out = str(tmp_path / "data"), str(tmp_path / "out")
    rows = [seg_row(i) for i in range(3)]
    materialise(root, rows)
    rows[1] = {**rows[1], "mask_path": bad}
    write_csv(os.path.join(root, "csv_files", "data.csv"), rows)
    with pytest.raises(DataError) as err:
        predict_dataset(_NoModel(), root, out, workers=0, progress=False)
    message = str(err.value)
    assert "csv_files/data.csv line 3" in message and repr(bad) in message and reason in message
    assert not os.path.exists(out)


def test_symlink_inside_out_dir_escaping_is_refused(tmp_path):
    root, out, outside = str(tmp_path / "data"), tmp_path / "out", tmp_path / "elsewhere"
    rows = [seg_row(i) for i in range(2)]
    materialise(root, rows)
    outside.mkdir()
    out.mkdir()
    os.symlink(outside, out / "Segmentation")
    with pytest.raises(DataError, match="symlink that leaves the output folder") as err:
        predict_dataset(_NoModel(), root, str(out), workers=0, progress=False, overwrite=True)
    assert "line 2" in str(err.value) and "line 3" in str(err.value)
    assert list(outside.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["Segmentation"]


def test_two_rows_writing_one_file_and_overwriting_inputs_are_refused(tmp_path):
    root = str(tmp_path / "data")
    rows = [seg_row(0), {**seg_row(1), "mask_path": seg_row(0)["mask_path"]}]
    materialise(root, rows)
    from fmuia.data.layout import read_layout

    with pytest.raises(DataError, match="line 3: .* writes the same file as csv_files/data.csv line 2"):
        plan_mask_files(read_layout(root).entries, str(tmp_path / "out"))
    rows = [seg_row(0)]
    write_csv(os.path.join(root, "csv_files", "data.csv"), rows)
    mask = os.path.join(root, "Segmentation", "Two", "breast_lesion", "MASKS", "000.png")
    before = open(mask, "rb").read()
    for overwrite in (False, True):
        with pytest.raises(DataError, match="the output folder is the data root"):
            predict_dataset(_NoModel(), root, root, workers=0, progress=False, overwrite=overwrite)
    assert open(mask, "rb").read() == before
