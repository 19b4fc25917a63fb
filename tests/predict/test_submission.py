import json
import os

import cv2
import numpy as np
import pytest
from dataset_builders import cls_row, det_row, kp_row, materialise, seg_row, valid_rows, write_image
from tiny import tiny_checkpoint

import fmuia
from fmuia.cli.main import main
from fmuia.errors import DataError
from fmuia.tasks import fmuia2026

JSONS = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")


@pytest.fixture(scope="module")
def predictor():
    return fmuia.load(tiny_checkpoint(), device="cpu", precision="fp32")


def _load(out, name):
    with open(os.path.join(out, name)) as fh:
        return json.load(fh)


def _sizes(root, rows):
    """Give images distinct odd sizes (so original-size output is really tested)."""
    csv_dir = os.path.join(root, "csv_files")
    sizes = {}
    for i, r in enumerate(rows):
        h, w = 37 + 3 * i, 53 + 5 * i
        write_image(os.path.normpath(os.path.join(csv_dir, r["image_path"])), h=h, w=w, channels=3, seed=i)
        sizes[r["image_path"]] = (h, w)
    return sizes


def test_submission_schemas_sizes_and_ranges(tmp_path, predictor):
    root, out = str(tmp_path / "data"), str(tmp_path / "out")
    rows = valid_rows()
    sizes = _sizes(root, rows)
    materialise(root, rows)
    summary = predictor.predict_dataset(root, out, batch_size=4, workers=0, progress=False)
    assert summary.total == len(rows)
    registry = fmuia2026()

    for r in rows:
        if r["task_name"] != "segmentation":
            continue
        path = os.path.join(out, r["mask_path"][3:])
        raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint8 and raw.ndim == 2, path
        assert raw.shape == sizes[r["image_path"]]
        assert raw.max() < registry[r["task_id"]].n

    by_path = {r["image_path"]: r for r in rows}
    cls = _load(out, JSONS[0])
    assert len(cls) == 4
    for rec in cls:
        assert set(rec) == {"image_path", "task_id", "predicted_class", "predicted_probs"}
        assert rec["image_path"] in by_path and rec["task_id"] == "breast_2cls"
        assert type(rec["predicted_class"]) is int and 0 <= rec["predicted_class"] < 2
        probs = rec["predicted_probs"]
        assert len(probs) == 2 and all(type(p) is float for p in probs)
        assert abs(sum(probs) - 1.0) < 1e-9
        assert rec["predicted_class"] == int(np.argmax(probs))

    det = _load(out, JSONS[1])
    assert len(det) == 2
    for rec in det:
        assert set(rec) == {"image_path", "task_id", "bbox_normalized", "bbox_pixels"}
        h, w = sizes[rec["image_path"]]
        norm, pix = np.array(rec["bbox_normalized"]), np.array(rec["bbox_pixels"])
        assert norm.shape == (4,) and np.all((norm >= 0) & (norm <= 1))
        assert norm[0] <= norm[2] and norm[1] <= norm[3]
        np.testing.assert_allclose(pix, norm * [w, h, w, h], rtol=1e-12)

    reg = _load(out, JSONS[2])
    assert len(reg) == 2
    for rec in reg:
        assert set(rec) == {"image_path", "task_id", "predicted_points_normalized", "predicted_points_pixels"}
        h, w = sizes[rec["image_path"]]
        norm, pix = np.array(rec["predicted_points_normalized"]), np.array(rec["predicted_points_pixels"])
        assert norm.shape == (4,) and np.all((norm >= 0) & (norm <= 1))
        np.testing.assert_allclose(pix, norm * [w, h, w, h], rtol=1e-12)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    umask = os.umask(0o022)
    os.umask(umask)
    for name in (JSONS[0], rows[0]["mask_path"][3:]):  # readable as a plain open() would leave it
        assert os.stat(os.path.join(out, name)).st_mode & 0o777 == 0o666 & ~umask


def test_cli_on_partial_tasks_with_empty_labels(tmp_path, capsys):
    """A test folder with two of the model's tasks, label columns empty: only those are
    predicted, JSON files of absent kinds hold []."""
    root, out = str(tmp_path / "test"), str(tmp_path / "sub")
    rows = [seg_row(i) for i in range(3)] + [cls_row(i, label="") for i in range(3)]
    materialise(root, rows)
    for r in rows[:3]:  # test data: masks do not exist
        os.remove(os.path.normpath(os.path.join(root, "csv_files", r["mask_path"])))
    assert main(["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", out,
                 "--device", "cpu", "--workers", "1", "--batch-size", "4", "--precision", "fp32"]) == 0
    table = capsys.readouterr().out
    assert "breast_lesion" in table and "breast_2cls" in table and "total" in table
    assert len(_load(out, JSONS[0])) == 3
    assert _load(out, JSONS[1]) == [] and _load(out, JSONS[2]) == []
    masks = sorted(os.listdir(os.path.join(out, "Segmentation/Two/breast_lesion/MASKS")))
    assert masks == ["000.png", "001.png", "002.png"]
    # The image_path is the scorer's join key: verbatim.
    assert {r["image_path"] for r in _load(out, JSONS[0])} == {r["image_path"] for r in rows[3:]}


def test_task_unknown_to_model_is_refused_before_writing(tmp_path, predictor):
    root, out = str(tmp_path / "data"), str(tmp_path / "out")
    rows = [cls_row(0), {**cls_row(1), "task_id": "new_cls", "num_classes": 4, "mask": ""},
            {**seg_row(2), "task_id": "new_seg", "num_classes": 2}]
    materialise(root, rows)
    with pytest.raises(DataError, match="not trained for: new_cls, new_seg"):
        predictor.predict_dataset(root, out, workers=0, progress=False)
    assert not os.path.exists(out)


def test_unreadable_image_names_row_and_leaves_no_json(tmp_path, predictor):
    root, out = str(tmp_path / "data"), str(tmp_path / "out")
    rows = [det_row(i) for i in range(3)] + [kp_row(0)]
    materialise(root, rows)
    bad = os.path.normpath(os.path.join(root, "csv_files", rows[2]["image_path"]))
    data = open(bad, "rb").read()
    with open(bad, "wb") as fh:  # a valid header, truncated pixel data: found only when read
        fh.write(data[: len(data) // 2])
    os.makedirs(out)
    with open(os.path.join(out, JSONS[1]), "w") as fh:  # stale file of an earlier run
        fh.write("[]")
    with pytest.raises(DataError, match="line 4"):
        predictor.predict_dataset(root, out, batch_size=2, workers=1, progress=False, overwrite=True)
    assert not any(os.path.exists(os.path.join(out, name)) for name in JSONS)
