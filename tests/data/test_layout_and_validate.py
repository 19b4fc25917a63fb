"""The dataset reader: every validation error is reported with its row and reason."""
import os

import cv2
import numpy as np
import pytest

from dataset_builders import cls_row, det_row, kp_row, materialise, seg_row, valid_rows, write_csv, write_image, write_mask
from fmuia.data import FMUIADataset, read_image, read_layout, read_mask, validate
from fmuia.errors import DataError
from fmuia.tasks import Kind


def problems_of(root, **kw):
    report = validate(root, **kw)
    return [str(p) for p in report.problems]


def test_valid_dataset_round_trips_all_four_kinds(tiny_root):
    report = validate(tiny_root)
    assert report.ok, report.problems
    assert set(report.stats) == {"FUGC", "breast_2cls", "thyroid_nodule_det", "breast_lesion", "cardiac_multi"}
    assert report.stats["breast_2cls"].counts == {0: 2, 1: 2}
    assert report.stats["breast_lesion"].min_hw == (32, 32)
    ds = FMUIADataset(tiny_root)
    by_kind = {}
    for i in range(len(ds)):
        s = ds[i]
        assert s.image.dtype == np.uint8 and s.image.shape == (32, 32, 3)
        by_kind.setdefault(s.kind, s)
    seg = by_kind[Kind.SEGMENTATION]
    assert seg.label.shape == (32, 32) and seg.label.max() == 1
    assert by_kind[Kind.CLASSIFICATION].label in (0, 1)
    np.testing.assert_array_equal(by_kind[Kind.DETECTION].label, [4, 5, 20, 25])
    np.testing.assert_array_equal(by_kind[Kind.KEYPOINTS].label, [[3, 4], [20.5, 11]])
    assert by_kind[Kind.KEYPOINTS].entry.image_path == "../Regression/FUGC/000.png"
    assert ds.registry.task_ids == ["FUGC", "breast_2cls", "thyroid_nodule_det", "breast_lesion", "cardiac_multi"]


def test_report_table_and_json(tiny_root):
    report = validate(tiny_root)
    table = report.format_table()
    assert "cardiac_multi" in table and "5 tasks, 13 samples" in table
    d = report.to_dict()
    assert d["ok"] and len(d["tasks"]) == 5


@pytest.mark.parametrize(
    "row, reason",
    [
        ({**cls_row(9), "task_name": "clasification"}, "task_name: unknown task kind 'clasification'"),
        ({**cls_row(9), "num_classes": 3}, "num_classes 3 disagrees with the task registry (2)"),
        ({**cls_row(9), "num_classes": "two"}, "num_classes 'two' is not an integer"),
        ({**cls_row(9), "task_name": "segmentation"}, "task_name 'segmentation' disagrees with the task registry"),
        (cls_row(9, label=2), "classification label 2 outside 0..1"),
        (cls_row(9, label="x"), "classification label (column 'mask') 'x' is not an integer"),
        (det_row(9, box=(20, 5, 4, 25)), "is empty or inverted"),
        (det_row(9, box=(4, 5, 4, 25)), "is empty or inverted"),
        (det_row(9, box=(4, 5, "", 25)), "missing or non-numeric"),
        ({**kp_row(9), "point_2_xy": "[1, 2"}, "point_2_xy: not a JSON [x, y] pair"),
        ({**kp_row(9), "point_2_xy": "[1, 2, 3]"}, "point_2_xy: not a JSON [x, y] pair"),
        ({**kp_row(9), "point_1_xy": "[NaN, 2]"}, "point_1_xy: non-finite coordinate"),
        ({**kp_row(9), "point_1_xy": ""}, "point_1_xy is empty while other points are given"),
        ({**seg_row(9), "mask_path": ""}, "segmentation row has no mask_path"),
        ({**cls_row(9), "task_id": ""}, "empty task_id"),
    ],
)
def test_row_level_problems_name_file_line_and_reason(tmp_path, row, reason):
    root = str(tmp_path / "d")
    rows = valid_rows()
    materialise(root, rows + [cls_row(99)])
    rows.insert(3, row)
    write_csv(os.path.join(root, "csv_files", "data.csv"), rows)
    problems = problems_of(root)
    assert len(problems) == 1, problems
    assert problems[0].startswith("csv_files/data.csv line 5: ")
    assert reason in problems[0]


def test_new_task_defined_by_rows_and_inconsistent_num_classes(tmp_path):
    root = str(tmp_path / "d")
    rows = [cls_row(i, task="my_new_task", n=4, label=i) for i in range(3)]
    rows.append(cls_row(5, task="my_new_task", n=5, label=0))
    materialise(root, rows)
    layout = read_layout(root)
    assert layout.registry["my_new_task"].n == 4
    assert layout.registry["my_new_task"].kind is Kind.CLASSIFICATION
    assert [str(p) for p in layout.problems] == [
        "csv_files/data.csv line 5: num_classes 5 disagrees with earlier rows of this task (4)"
    ]


def test_file_level_problems(tmp_path):
    root = str(tmp_path / "d")
    rows = valid_rows()
    materialise(root, rows)
    csv_dir = os.path.join(root, "csv_files")
    # image missing, image unreadable, mask of another size, mask value >= n,
    # box outside image, duplicate row
    os.remove(os.path.join(csv_dir, rows[0]["image_path"]))
    with open(os.path.join(csv_dir, rows[5]["image_path"]), "wb") as fh:
        fh.write(b"not a png at all")
    write_mask(os.path.join(csv_dir, rows[1]["mask_path"]), h=16, w=32)
    os.remove(os.path.join(csv_dir, rows[2]["mask_path"]))
    write_mask(os.path.join(csv_dir, rows[2]["mask_path"]), value=7)
    rows[9] = det_row(0, box=(4, 5, 40, 25))
    rows.append(dict(rows[6]))
    write_csv(os.path.join(csv_dir, "data.csv"), rows)
    problems = problems_of(root)
    expected = [
        ("line 2:", "image '../Segmentation/Two/breast_lesion/IMAGES/000.png': file not found"),
        ("line 3:", "is 16x32 but its image is 32x32"),
        ("line 4:", "has value(s) [7] >= num_classes 2"),
        ("line 7:", "not a readable image"),
        ("line 11:", "box [4.0, 5.0, 40.0, 25.0] lies outside the 32x32 (w x h) image"),
        ("line 15:", "duplicate row: task breast_2cls image '../Classification/breast_2cls/001.png' already at csv_files/data.csv line 8"),
    ]
    assert len(problems) == len(expected), problems
    for (line, reason), text in zip(expected, problems):
        assert line in text and reason in text, (line, reason, text)


def test_missing_mask_is_a_problem_only_when_labels_are_required(tmp_path):
    root = str(tmp_path / "d")
    rows = valid_rows()
    materialise(root, rows)
    os.remove(os.path.join(root, "csv_files", rows[0]["mask_path"]))
    assert validate(root).ok
    problems = problems_of(root, require_labels=True)
    assert problems == ["csv_files/data.csv line 2: mask '../Segmentation/Two/breast_lesion/MASKS/000.png': file not found"]


def test_unlabelled_test_rows_are_fine_unless_required(tmp_path):
    root = str(tmp_path / "d")
    materialise(root, [cls_row(0, label=""), det_row(0, box=("", "", "", "")), {**kp_row(0), "point_1_xy": "", "point_2_xy": ""}])
    report = validate(root)
    assert report.ok and all(s.labelled == 0 for s in report.stats.values())
    assert len(problems_of(root, require_labels=True)) == 3


def test_missing_and_misspelt_columns(tmp_path):
    root = str(tmp_path / "d")
    materialise(root, valid_rows())
    write_csv(os.path.join(root, "csv_files", "bad.csv"), [cls_row(0)],
              columns=["task_id", "task_name", "num_clases", "image_path", "mask"])
    problems = problems_of(root)
    assert problems == [
        "csv_files/bad.csv line 1: unknown column 'num_clases' (did you mean 'num_classes'?)",
        "csv_files/bad.csv line 1: missing required column(s): num_classes",
    ]


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="data root not found"):
        read_layout(str(tmp_path / "nope"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match="no 'csv_files/' folder"):
        read_layout(str(tmp_path / "empty"))


@pytest.mark.parametrize("ext, channels, dtype", [
    (".png", 1, np.uint8), (".png", 3, np.uint8), (".png", 4, np.uint8),
    (".png", 1, np.uint16), (".png", 3, np.uint16), (".jpg", 3, np.uint8), (".jpg", 1, np.uint8), (".bmp", 3, np.uint8),
])
def test_image_formats_load_as_rgb_uint8(tmp_path, ext, channels, dtype):
    path = str(tmp_path / f"img{ext}")
    write_image(path, h=20, w=30, channels=channels, dtype=dtype)
    img = read_image(path)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    if dtype == np.uint16 and ext == ".png":
        raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        ref = raw if raw.ndim == 2 else raw[..., 0]
        got = img[..., 0] if raw.ndim == 2 else img[..., 2]
        assert np.abs(got.astype(int) - (ref / 257.0).round()).max() <= 1


def test_rgb_mask_with_different_channels_is_refused(tmp_path):
    path = str(tmp_path / "m.png")
    m = np.zeros((8, 8, 3), np.uint8)
    m[..., 1] = 1
    cv2.imwrite(path, m)
    with pytest.raises(DataError, match="different colour channels"):
        read_mask(path)


def test_dataset_is_lazy_and_errors_name_the_row(tiny_root):
    ds = FMUIADataset(tiny_root)
    # Removing files after construction: construction read no image.
    entry = ds.entries[6]
    os.remove(entry.image_file)
    with pytest.raises(DataError, match=r"csv_files/data.csv line 8 \(task breast_2cls\): .*file not found"):
        ds[6]
    assert ds[7].image.shape == (32, 32, 3)  # other samples unaffected, nothing substituted


def test_dataset_refuses_csv_problems_unless_not_strict(tmp_path):
    root = str(tmp_path / "d")
    materialise(root, valid_rows() + [cls_row(7, label=5)])
    with pytest.raises(DataError, match="1 problem"):
        FMUIADataset(root)
    assert len(FMUIADataset(root, strict=False)) == len(valid_rows())
