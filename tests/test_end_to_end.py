"""The main job as a user runs it: synth -> validate -> train -> predict -> evaluate ->
report, each through the CLI, on a few synthetic images with a tiny network."""
import csv
import json
import os

import cv2
import pytest
import yaml

from fmuia.cli.main import main as fmuia

TASKS = "breast_lesion,cardiac_multi,breast_2cls,fetal_head_pos_cls,thyroid_nodule_det,FUGC,IUGC"
TINY = [
    "model.encoder=resnet18", "model.pretrained=none", "model.image_size=64",
    "model.decoder_channels=32", "model.decoder_out_channels=32", "model.channels_last=false",
    "train.epochs=2", "train.batch_size=4", "train.progress=false", "data.num_workers=0",
]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    paths = {name: str(out / name) for name in ("data", "run", "pred", "eval", "report")}
    data = paths["data"]
    assert fmuia(["synth", data, "--per-task", "4", "--val", "2", "--test", "2", "--tasks", TASKS, "--seed", "1"]) == 0
    assert fmuia(["validate", f"{data}/train", "--require-labels"]) == 0
    argv = ["train", "--config", "configs/fmuia_plus.yaml", "--config", "configs/demo_cpu.yaml", "--data", f"{data}/train", "--val", f"{data}/val", "--out", paths["run"]]
    for item in TINY:
        argv += ["--set", item]
    assert fmuia(argv) == 0
    assert fmuia(["predict", "--checkpoint", f"{paths['run']}/best", "--data", f"{data}/test",
                  "--out", paths["pred"], "--workers", "0", "--no-progress"]) == 0
    assert fmuia(["evaluate", "--data", f"{data}/test", "--pred", paths["pred"], "--out", paths["eval"]]) == 0
    assert fmuia(["report", "--data", f"{data}/test", "--pred", paths["pred"], "--run", paths["run"],
                  "--eval", paths["eval"], "--out", paths["report"]]) == 0
    return paths


@pytest.fixture(autouse=True, scope="module")
def _repo_root():
    before = os.getcwd()
    os.chdir(os.path.join(os.path.dirname(__file__), ".."))
    yield
    os.chdir(before)


def test_run_folder_has_config_checkpoints_and_metrics(chain):
    run = chain["run"]
    config = yaml.safe_load(open(f"{run}/config.yaml"))
    assert config["model"]["encoder"] == "resnet18" and config["train"]["epochs"] == 2
    # The recipe, the budget overlay over it, then the overrides: each layer key by key.
    assert config["sampler"]["mode"] == "mixed" and config["model"]["heads"]["detection"] == "centernet"
    assert config["train"]["batch_size"] == 4 and config["model"]["pretrained"] == "none"
    # the dense tasks train, validate and predict at 96 px (64 x 1.25, rounded up to 32), the others at 64
    assert config["model"]["input_scale"] == {"segmentation": 1.25, "detection": 1.25, "keypoints": 1.25}
    for ckpt in ("best", "last"):
        assert os.path.isfile(f"{run}/{ckpt}/model.safetensors")
        meta = json.load(open(f"{run}/{ckpt}/model.json"))
        assert meta["training_config"]["model"]["encoder"] == "resnet18"
    rows = list(csv.DictReader(open(f"{run}/metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # the improved recipe selects on the balanced score: chance 0, perfect 1, below chance negative
    assert all(float(r["val_score"]) <= 1.0 for r in rows)
    assert all(0.0 <= float(r["challenge_score"]) <= 1.0 for r in rows)


def test_submission_files_follow_the_spec(chain):
    pred, test_root = chain["pred"], os.path.join(chain["data"], "test")
    for name in ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json"):
        items = json.load(open(os.path.join(pred, name)))
        assert len(items) == 2 * {"classification": 2, "detection": 1, "regression": 2}[name.split("_")[0]]
    masks = []
    for row in csv.DictReader(open(os.path.join(test_root, "csv_files", "cardiac_multi.csv"))):
        mask = cv2.imread(os.path.join(pred, row["mask_path"].lstrip("./")), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(os.path.normpath(os.path.join(test_root, "csv_files", row["image_path"])))
        assert mask.ndim == 2 and mask.shape == image.shape[:2] and mask.max() < 4
        masks.append(mask)
    assert len(masks) == 2


def test_scores_and_report_parse(chain):
    results = json.load(open(os.path.join(chain["eval"], "results.json")))
    assert set(results["tasks"]) == set(TASKS.split(","))
    assert results["missing"] == 0 and results["extra"] == 0
    assert {t: r["num_samples"] for t, r in results["tasks"].items()} == {t: 2 for t in TASKS.split(",")}
    # The challenge score is the plain mean of the seven task scores.
    scores = [results["tasks"][t]["score"] for t in TASKS.split(",")]
    assert results["challenge_score"] == pytest.approx(sum(scores) / 7, abs=1e-12)
    # Detection, worked out here from the files alone: IoU of bbox_pixels with the CSV box.
    test_root = os.path.join(chain["data"], "test")
    truth = {r["image_path"]: [float(r[c]) for c in ("x_min", "y_min", "x_max", "y_max")]
             for r in csv.DictReader(open(os.path.join(test_root, "csv_files", "thyroid_nodule_det.csv")))}
    ious = []
    for item in json.load(open(os.path.join(chain["pred"], "detection_predictions.json"))):
        (px1, py1, px2, py2), (gx1, gy1, gx2, gy2) = item["bbox_pixels"], truth[item["image_path"]]
        inter = max(0.0, min(px2, gx2) - max(px1, gx1)) * max(0.0, min(py2, gy2) - max(py1, gy1))
        union = (px2 - px1) * (py2 - py1) + (gx2 - gx1) * (gy2 - gy1) - inter
        ious.append(inter / union if union else 0.0)
    assert len(ious) == 2
    assert results["tasks"]["thyroid_nodule_det"]["metrics"]["IoU"] == pytest.approx(sum(ious) / 2, abs=1e-12)
    summary = open(os.path.join(chain["eval"], "summary.txt")).read()
    assert summary.startswith(f"Challenge score: {results['challenge_score']:.4f}  (over 7 of 27 tasks)\n")
    page = open(os.path.join(chain["report"], "index.html")).read()
    assert "<html" in page and "cardiac_multi" in page and "data:image" in page
    assert os.path.isfile(os.path.join(chain["report"], "tasks", "FUGC.png"))
