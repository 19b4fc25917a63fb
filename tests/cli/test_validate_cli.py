import json
import os
import subprocess
import sys

from dataset_builders import cls_row, det_row, kp_row, materialise, valid_rows, write_csv
from fmuia.cli.main import main


def test_validate_ok_prints_table(tiny_root, capsys):
    assert main(["validate", tiny_root]) == 0
    out = capsys.readouterr().out
    assert "breast_lesion" in out and "segmentation" in out


def test_validate_lists_all_five_planted_errors_and_exits_1(tmp_path, capsys):
    root = str(tmp_path / "d")
    rows = valid_rows()
    materialise(root, rows)
    csv_dir = os.path.join(root, "csv_files")
    os.remove(os.path.join(csv_dir, rows[0]["image_path"]))          # 1 image missing
    rows[5] = cls_row(0, label=7)                                     # 2 label out of range
    rows[9] = det_row(0, box=(9, 9, 2, 20))                           # 3 inverted box
    rows[11] = {**kp_row(0), "point_2_xy": "[1, oops]"}               # 4 malformed point
    rows.append(dict(rows[6]))                                        # 5 duplicate
    write_csv(os.path.join(csv_dir, "data.csv"), rows)
    out_json = str(tmp_path / "report.json")
    assert main(["validate", root, "--json", out_json]) == 1
    err = capsys.readouterr().err
    assert "5 problem(s)" in err
    for needle in ["line 2: image", "line 7: classification label 7", "line 11: box", "line 13: point_2_xy", "line 15: duplicate row"]:
        assert needle in err, needle
    data = json.load(open(out_json))
    assert not data["ok"] and len(data["problems"]) == 5


def test_cli_bad_input_is_a_message_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fmuia", "validate", str(tmp_path / "missing")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "data root not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "fmuia", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "validate" in proc.stdout
