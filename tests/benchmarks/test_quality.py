"""benchmarks/quality.py without training: the rows each mode trains, their references,
the shared budget and the acceptance checks (runs replaced by a recorder)."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark", os.path.join(ROOT, "benchmarks", "quality.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QUALITY = _load_quality()
FIXES, IMPROVEMENTS, CANDIDATES = QUALITY.FIXES, QUALITY.IMPROVEMENTS, QUALITY.CANDIDATES


@pytest.fixture(scope="module")
def quality():
    return QUALITY


class Recorder:
    """A Bench that records each run's name and config instead of training."""

    def __init__(self, quality, **args):
        self.args = quality.parse_args([f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}")
                                        for k, v in args.items()])
        self.budget = quality.Bench.budget.__get__(self)
        self._epochs = quality.Bench._epochs.__get__(self)
        self.runs = {}

    def run(self, name, config):
        assert name not in self.runs, f"{name} trained twice"
        self.runs[name] = config
        return {"per_kind": {}, "challenge_score": float(len(self.runs))}


def test_budget_keeps_the_validation_split_and_sets_epochs_from_steps(quality):
    bench = Recorder(quality, steps=100, per_task=10, batch_size=8)
    extra = bench.budget()
    assert "data" not in extra  # the recipe's own validation split
    # 27 tasks x 10 rows, 20% held out: 216 training rows, 27 batches of 8 -> 4 epochs.
    assert extra["train"]["max_steps"] == 100 and extra["train"]["epochs"] == 4
    assert set(extra) == {"seed", "device", "train", "model"}
    assert set(extra["train"]) == {"max_steps", "epochs", "batch_size", "progress", "plot"}


def test_compare_trains_the_three_recipes(quality):
    bench = Recorder(quality, steps=10)
    result = quality.compare(bench)
    assert list(bench.runs) == ["official", "baseline", "improved"]
    assert bench.runs["official"].augment.seeded is False  # run as written
    assert bench.runs["official"].data.val_split == "random" and bench.runs["baseline"].data.val_split == "per_task"
    assert "| kind | metric | official | baseline | improved |" in result["table"]
    assert len(result["acceptance"]) == len(quality.ACCEPTANCE_METRICS)


def test_compare_over_seeds_trains_each_recipe_per_seed_and_compares_the_means(quality):
    scores = {}

    class Scored(Recorder):
        def run(self, name, config):
            super().run(name, config)
            # the score and keypoint error follow the seed: the means are checkable
            scores[name] = config.seed / 100
            return {"per_kind": {"keypoints": {"MRE": float(config.seed)}}, "challenge_score": scores[name]}

    bench = Scored(quality, steps=10, seeds="42,44")
    result = quality.compare(bench)
    assert list(bench.runs) == ["official", "official-seed44", "baseline", "baseline-seed44", "improved",
                                "improved-seed44"]
    assert [c.seed for c in bench.runs.values()] == [42, 44] * 3
    assert result["seeds"] == [42, 44]
    score_row = next(r for r in result["rows"] if r["metric"] == "challenge score")
    assert score_row["official"] == pytest.approx(0.43)
    mre_row = next(r for r in result["rows"] if r["metric"] == "MRE")
    assert mre_row["improved"] == pytest.approx(43.0)
    assert "Means over training seeds 42, 44" in result["table"]
    assert "| baseline (seed 44) |" in result["table"] and "| official (seed 42) |" in result["table"]


def test_mean_results_leaves_a_metric_undefined_where_one_run_lacks_it(quality):
    runs = [{"per_kind": {"classification": {"AUC": 0.8, "Accuracy": 0.5}}, "challenge_score": 0.6},
            {"per_kind": {"classification": {"AUC": None, "Accuracy": 0.7}}, "challenge_score": 0.8}]
    mean = quality.mean_results(runs)
    assert mean["per_kind"]["classification"]["AUC"] is None
    assert mean["per_kind"]["classification"]["Accuracy"] == pytest.approx(0.6)
    assert mean["challenge_score"] == pytest.approx(0.7) and mean["runs"] == 2


@pytest.mark.parametrize("argv", [["--seeds", "42,x"], ["--seeds", "42,42"], ["--seeds", ","],
                                  ["--ladder", "--seeds", "42,43"]])
def test_seeds_refuses_bad_lists_and_other_modes(quality, argv, capsys):
    with pytest.raises(SystemExit):
        quality.parse_args(argv)
    assert "--seeds" in capsys.readouterr().err


def test_ladder_rows_and_their_references(quality):
    bench = Recorder(quality, steps=10, ladder=True)
    result = quality.ladder(bench)
    names = [row["name"] for row in result["rows"]]
    assert names == (["official recipe"] + [f"official + {c.name}" for c in FIXES]
                     + ["baseline (official + all fixes)"] + [f"baseline + {c.name}" for c in IMPROVEMENTS]
                     + ["improved (baseline + all improvements)"]
                     + [f"baseline + {c.name} (not kept)" for c in CANDIDATES])
    assert len(bench.runs) == 1 + len(FIXES) + 1 + len(IMPROVEMENTS) + 1 + len(CANDIDATES)
    assert bench.runs["official-seeded_augmentation"].augment.seeded is True
    assert bench.runs["baseline-mixed_batches"].sampler.mode == "mixed"
    # Equal budget: every run has the same steps, batch, seed and network.
    budgets = {(c.train.max_steps, c.train.epochs, c.train.batch_size, c.seed, c.model.encoder) for c in bench.runs.values()}
    assert len(budgets) == 1


def test_ladder_restricted_rows_train_their_kinds_against_a_restricted_reference(quality):
    bench = Recorder(quality, steps=10, ladder=True, restrict=True)
    quality.ladder(bench)
    assert bench.runs["official-detection_negatives"].data.tasks == bench.runs["official-detection"].data.tasks
    assert bench.runs["baseline-keypoint_heatmap"].data.tasks == bench.runs["baseline-keypoints"].data.tasks
    assert bench.runs["baseline"].data.tasks is None


def test_acceptance_wants_every_step_to_improve(quality):
    def results(dsc, mre):
        return {"per_kind": {"segmentation": {"DSC": dsc}, "keypoints": {"MRE": mre}}}

    checks = {what.split(" improves")[0]: met for what, met, _ in
              quality.acceptance(results(0.5, 20.0), results(0.6, 15.0), results(0.7, 16.0))}
    assert checks["segmentation DSC"] is True
    assert checks["keypoints MRE"] is False  # 15 -> 16 is worse
    assert checks["detection IoU"] is None  # not measured


def test_only_trains_the_named_rows(quality):
    bench = Recorder(quality, steps=10, ladder=True, only="decoder trained,EMA")
    result = quality.ladder(bench)
    names = [row["name"] for row in result["rows"]]
    assert names == ["official recipe", "official + decoder trained", "baseline (official + all fixes)",
                     "improved (baseline + all improvements)", "baseline + EMA (not kept)"]
    assert set(bench.runs) == {"official", "official-decoder_trained", "baseline", "improved", "baseline-EMA"}


def test_only_refuses_an_unknown_change(quality, capsys):
    with pytest.raises(SystemExit):
        quality.parse_args(["--ladder", "--only", "decoder trained,warp drive"])
    assert "'warp drive'" in capsys.readouterr().err


def test_compare_only_trains_the_named_recipes_without_acceptance(quality):
    bench = Recorder(quality, steps=10, only="official,improved")
    result = quality.compare(bench)
    assert list(bench.runs) == ["official", "improved"]
    assert "| kind | metric | official | improved |" in result["table"]
    assert result["acceptance"] == []
    with pytest.raises(SystemExit):
        quality.parse_args(["--only", "decoder trained"])  # a change, not a recipe


def test_compare_of_one_recipe_prints_its_metrics(quality):
    bench = Recorder(quality, steps=10, only="official")
    bench.run = lambda name, config: {"per_kind": {"classification": {"Accuracy": 0.55, "AUC": 0.7}},
                                      "challenge_score": 0.5}
    result = quality.compare(bench)
    assert result["acceptance"] == []
    assert "Accuracy (cla)" in result["table"] and "MCC (cla)" in result["table"]
    assert "| official |" in result["table"] and "0.550" in result["table"] and "0.700" in result["table"]


def test_leave_out_rows_drop_one_change_from_the_improved_recipe(quality):
    from fmuia.config import load_config

    bench = Recorder(quality, steps=10, leave_out=True)
    result = quality.leave_out(bench)
    names = [row["name"] for row in result["rows"]]
    assert names[0] == "improved recipe"
    assert len(names) == 1 + len(FIXES) + len(IMPROVEMENTS) + len(CANDIDATES)
    improved = bench.runs["improved"]
    assert improved == load_config([quality.IMPROVED_CONFIG, bench.budget()])
    # Leaving a fix out brings back the official quirk, and nothing else changes.
    without = bench.runs["improved-without-balanced_selection"]
    assert without.train.select == "official"
    differs = without.to_dict()
    differs["train"]["select"] = "balanced"
    assert differs == improved.to_dict()
    assert bench.runs["improved-without-gradient_clipping"].train.grad_clip is None
    assert bench.runs["improved-plus-EMA"].train.ema_decay == 0.995
    assert load_config(quality.IMPROVED_CONFIG).train.select == "balanced"


def test_network_and_image_size_override_the_demo_network(quality, tmp_path):
    bench = Recorder(quality, steps=10, network=os.path.join(ROOT, "configs", "scratch_resnet18.yaml"), image_size=96)
    model = bench.budget()["model"]
    assert (model["encoder"], model["pretrained"], model["image_size"]) == ("resnet18", "none", 96)
    config = quality.recipe(quality.IMPROVED_CONFIG, extra=bench.budget())
    assert (config.model.encoder, config.model.image_size) == ("resnet18", 96)
    empty = tmp_path / "empty.yaml"
    empty.write_text("train: {epochs: 2}\n")
    with pytest.raises(SystemExit):
        quality.parse_args(["--network", str(empty)])
    with pytest.raises(SystemExit):
        quality.parse_args(["--network", str(tmp_path / "missing.yaml")])


class FakeFmuia:
    """Bench._fmuia stand-in: records each call; training makes a best/ folder,
    evaluation a results.json."""

    def __init__(self, bench):
        self.bench, self.calls = bench, []

    def __call__(self, name, argv):
        import json

        self.calls.append((name, argv))
        if argv[0] == "train":
            os.makedirs(os.path.join(argv[argv.index("--out") + 1], "best"))
        elif argv[0] == "evaluate":
            out = argv[argv.index("--out") + 1]
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "results.json"), "w") as fh:
                json.dump({"run": name}, fh)


def _bench(quality, tmp_path):
    bench = quality.Bench(quality.parse_args(["--out", str(tmp_path), "--steps", "10", "--reuse"]))
    bench._fmuia = FakeFmuia(bench)
    return bench


def test_a_prediction_only_change_reuses_a_finished_runs_checkpoint(quality, tmp_path):
    from fmuia.config import load_config

    bench = _bench(quality, tmp_path)
    plain = load_config(os.path.join(ROOT, "configs", "fmuia2026_baseline.yaml"))
    flipped = load_config(os.path.join(ROOT, "configs", "fmuia2026_baseline.yaml"), overrides=["model.tta=true"])
    bench.run("plain", plain)
    # A finished row whose config this fmuia cannot read is skipped, not fatal.
    os.makedirs(os.path.join(str(tmp_path), "runs", "alien", "best"))
    os.makedirs(os.path.join(str(tmp_path), "eval", "alien"))
    open(os.path.join(str(tmp_path), "eval", "alien", "results.json"), "w").write("{}")
    open(os.path.join(str(tmp_path), "configs", "alien.yaml"), "w").write("model: {no_such_key: 1}\n")
    bench.run("flipped", flipped)
    steps = [(name, argv) for name, argv in bench._fmuia.calls]
    assert [name for name, _ in steps] == ["plain.train", "plain.predict", "plain.evaluate", "flipped.predict", "flipped.evaluate"]
    predict = steps[3][1]
    assert predict[predict.index("--checkpoint") + 1] == os.path.join(str(tmp_path), "runs", "plain", "best")
    assert "--tta" in predict and "--no-tta" in steps[1][1]


def test_an_interrupted_rerun_is_not_taken_for_a_finished_one(quality, tmp_path):
    from fmuia.config import load_config

    bench = _bench(quality, tmp_path)
    config = load_config(os.path.join(ROOT, "configs", "fmuia2026_baseline.yaml"))
    bench.run("row", config)
    changed = load_config(os.path.join(ROOT, "configs", "fmuia2026_baseline.yaml"), overrides=["seed=7"])

    def interrupted(name, argv):
        raise KeyboardInterrupt

    bench._fmuia = interrupted
    with pytest.raises(KeyboardInterrupt):
        bench.run("row", changed)
    assert not os.path.exists(os.path.join(str(tmp_path), "eval", "row", "results.json"))
    bench._fmuia = FakeFmuia(bench)
    bench.run("row", changed)
    assert [name for name, _ in bench._fmuia.calls] == ["row.train", "row.predict", "row.evaluate"]


def test_the_rows_come_from_the_catalogues_and_add_up_to_the_recipes(quality):
    from fmuia.config.loading import read_changes

    assert quality.IMPROVEMENTS == read_changes(os.path.join(ROOT, "configs", "changes", "improvements.yaml"))
    assert quality.recipes_disagree() == []


def test_dry_run_writes_each_planned_config_and_trains_nothing(quality, tmp_path, capsys):
    from fmuia.config import load_config

    out = tmp_path / "out"
    (out / "planned").mkdir(parents=True)
    (out / "planned" / "earlier-plan.yaml").write_text("seed: 1\n")
    assert quality.main(["--ladder", "--restrict", "--only", "dice + ce,EMA", "--dry-run", "--out", str(out)]) == 0
    assert os.listdir(out) == ["planned"]
    planned = sorted(os.listdir(out / "planned"))
    assert planned == ["baseline-EMA.yaml", "baseline-dice_plus_ce.yaml", "baseline-segmentation.yaml", "baseline.yaml",
                       "improved.yaml", "official.yaml"]
    bench = Recorder(quality, steps=1200, restrict=True)
    dice = next(c for c in IMPROVEMENTS if c.name == "dice + ce")
    assert load_config(str(out / "planned" / "baseline-dice_plus_ce.yaml")) == quality.recipe(
        quality.BASELINE_CONFIG, [dice], bench.budget(dice.kinds))
    assert "6 runs planned" in capsys.readouterr().out
