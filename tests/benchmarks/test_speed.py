"""benchmarks/speed.py --quick end to end: every backend row, every stage, ratios
against torch fp32 in the same run."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("openvino")
# Minutes of process start-ups and exports: run by `make test-bench`, not by `make test`.
pytestmark = [pytest.mark.slow, pytest.mark.benchmark]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_speed_benchmark_measures_every_row_and_stage(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "speed.py"), "--quick", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "speed.json").read_text())
    (network,) = result["networks"]
    labels = {r["label"]: r for r in network["rows"]}
    assert set(labels) == {f"improved {b} {p} {f}" for f in ("flip", "no flip")
                           for b, p in (("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8"))
                           } | {"improved openvino int8 flip cached", "baseline torch fp32 no flip"}
    for row in network["rows"]:
        for key in ("process images/s", "pipeline images/s", "network images/s", "peak RSS MiB"):
            assert row[key] > 0, (row["label"], key)
    for flip in ("flip", "no flip"):
        reference = labels[f"improved torch fp32 {flip}"]
        assert reference["process x"] == reference["network x"] == 1.0
    assert network["evaluate images/s"] > 0
    assert network["train"]["steps/s"] > 0 and network["train"]["images/s"] > 0
    assert "| improved openvino int8 flip |" in proc.stdout
    assert os.listdir(tmp_path / "tiny" / "openvino-cache")  # the cached row's compiled model


def test_only_measures_the_rows_named_and_their_references():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import speed
    finally:
        sys.path.pop(0)
    args = speed.parse_args(["--only", "improved openvino int8 flip,baseline torch fp32 no flip"])
    assert [r.label for r in speed.selected_rows(args.only)] == [
        "improved torch fp32 flip", "improved openvino int8 flip", "improved torch fp32 no flip",
        "baseline torch fp32 no flip"]
    assert speed.selected_rows(None) == speed.ROWS
    with pytest.raises(SystemExit):
        speed.parse_args(["--only", "improved openvino int9 flip"])
