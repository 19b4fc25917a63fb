"""Labels outside their image are validation errors, named by CSV file and line; a box
may touch the border and a point may lie on it."""
from dataset_builders import det_row, kp_row, materialise
from fmuia.data.validate import validate


def test_boxes_and_points_outside_the_image_are_reported_with_their_row(tmp_path):
    root = str(tmp_path / "data")
    rows = [
        det_row(0, box=(0, 0, 32, 32)),  # touches every border: valid
        det_row(1, box=(4, 5, 33, 25)),  # x_max past the width
        det_row(2, box=(-1, 5, 20, 25)),  # x_min before the left edge
        kp_row(0, points=((0, 0), (32, 32))),  # on the border: valid
        kp_row(1, points=((3, 4), (20.5, 32.5))),  # y past the height
        kp_row(2, points=((-0.5, 4), (20.5, 11))),  # x before the left edge
    ]
    materialise(root, rows)
    report = validate(root, workers=1)
    found = {p.where: p.reason for p in report.problems}
    assert set(found) == {"csv_files/data.csv line 3", "csv_files/data.csv line 4",
                          "csv_files/data.csv line 6", "csv_files/data.csv line 7"}
    assert "box [4.0, 5.0, 33.0, 25.0] lies outside the 32x32 (w x h) image" in found["csv_files/data.csv line 3"]
    assert "box [-1.0, 5.0, 20.0, 25.0] lies outside" in found["csv_files/data.csv line 4"]
    assert "point_2_xy [20.5, 32.5] lies outside the 32x32 (w x h) image" in found["csv_files/data.csv line 6"]
    assert "point_1_xy [-0.5, 4] lies outside" in found["csv_files/data.csv line 7"]
    assert report.stats["thyroid_nodule_det"].labelled == 1 and report.stats["FUGC"].labelled == 1
