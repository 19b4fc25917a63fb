"""benchmarks/transfer.py without training: the held-out tasks, the runs each
initialisation makes, their shared budget, the label subsets and the table."""
import csv
import importlib.util
import os
import sys

import pytest

from fmuia.cli.main import build_parser
from fmuia.config import load_config
from fmuia.config.pretrain import load_pretrain_config
from fmuia.tasks import Kind, fmuia2026

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def transfer():
    spec = importlib.util.spec_from_file_location("transfer_benchmark", os.path.join(ROOT, "benchmarks", "transfer.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves its annotations through it
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.fixture
def bench(transfer, tmp_path):
    return transfer.Bench(transfer.parse_args(["--out", str(tmp_path / "out")]))


def _settings(argv):
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]


def test_one_task_of_each_kind_is_held_out_of_the_source_tasks(transfer):
    held = transfer.held_out_tasks()
    registry = fmuia2026()
    assert {registry[t].kind for t in held} == set(Kind)
    assert not set(held) & set(transfer.source_tasks())
    assert len(held) + len(transfer.source_tasks()) == len(registry)


def test_the_plan_crosses_label_counts_and_initialisations(transfer):
    rows = transfer.plan()
    assert len(rows) == 12 and len({r.name for r in rows}) == 12
    assert [r.name for r in rows[:4]] == ["random_5", "imagenet_5", "pretrain_5", "multitask_5"]
    assert rows[-1].name == "multitask_all"


def test_every_initialisation_trains_the_same_network_at_the_same_budget(transfer, bench):
    parser = build_parser()
    for labels in transfer.LABEL_COUNTS:
        commands = {init: bench.finetune_argv(transfer.Row(init, labels)) for init in transfer.INITS}
        shared = {init: [s for s in _settings(argv) if not s.startswith("model.pretrained=")]
                  for init, argv in commands.items()}
        assert len({tuple(s) for s in shared.values()}) == 1, shared
        for argv in commands.values():
            parser.parse_args(argv)  # the command line fmuia accepts
        train = commands["random"]
        assert train[0] == "train" and "model.pretrained=none" in _settings(train)
        assert "model.pretrained=efficientnet-lite0-package" in _settings(commands["imagenet"])
        config = load_config(bench.args.recipe, _settings(commands["imagenet"]))
        assert (config.model.encoder, config.model.image_size, config.train.max_steps) == (transfer.ENCODER, 96, 240)
        assert config.data.val_fraction == 0.0
        assert commands["pretrain"][:3] == ["finetune", "--from", os.path.join(bench.run_dir("source_pretrain"),
                                                                               "encoder.safetensors")]
        assert commands["multitask"][:3] == ["finetune", "--from", os.path.join(bench.run_dir("source_multitask"), "best")]
    # 5 labels x 4 tasks = 20 rows, 3 batches of 8 per epoch: 240 steps take 80 epochs
    assert "train.epochs=80" in _settings(bench.finetune_argv(transfer.Row("random", 5)))


def test_the_preparations_learn_from_the_source_tasks_only(transfer, bench):
    parser = build_parser()
    pretrain = bench.preparation("pretrain")
    multitask = bench.preparation("multitask")
    assert bench.preparation("random") is None and bench.preparation("imagenet") is None
    for argv in (pretrain, multitask):
        parser.parse_args(argv)
        assert bench.root("source") in argv
    config = load_pretrain_config(transfer.PRETRAIN_CONFIG, _settings(pretrain))
    assert config.model.encoder == transfer.ENCODER and config.model.image_size == 96
    trained = load_config(bench.args.recipe, _settings(multitask))
    assert trained.model.encoder == transfer.ENCODER and trained.train.max_steps == bench.args.source_steps


def test_label_subsets_draw_the_same_rows_for_every_run(transfer, tmp_path):
    src = tmp_path / "src"
    (src / "csv_files").mkdir(parents=True)
    (src / "Images").mkdir()
    rows = [{"task_id": t, "image_path": f"../Images/{t}{i}.png"} for t in ("a", "b", "c") for i in range(6)]
    with open(src / "csv_files" / "data.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["task_id", "image_path"])
        writer.writeheader()
        writer.writerows(rows)
    for name in ("one", "two"):
        transfer.subset_root(str(src), str(tmp_path / name), ["a", "b"], per_task=2, seed=3)
    read = [list(csv.DictReader(open(tmp_path / name / "csv_files" / "data.csv"))) for name in ("one", "two")]
    assert read[0] == read[1] and len(read[0]) == 4
    assert sorted(r["task_id"] for r in read[0]) == ["a", "a", "b", "b"]
    assert os.path.islink(tmp_path / "one" / "Images")


def test_the_table_has_a_row_per_kind_and_label_count(transfer):
    results = {"pretrain_20": {"tasks": {"thyroid_nodule": {"score": 0.5}, "fetal_femur": {"score": 0.25}}}}
    lines = transfer.table(results).splitlines()
    assert lines[0] == "| kind (task) | labels/task | random | imagenet | pretrain | multitask |"
    assert len(lines) == 2 + 4 * 3
    assert "| segmentation (thyroid_nodule) | 20 | - | - | 0.5000 | - |" in lines
    assert "| keypoints (fetal_femur) | 20 | - | - | 0.2500 | - |" in lines


def test_too_few_samples_for_the_label_counts_is_refused(transfer):
    with pytest.raises(SystemExit):
        transfer.parse_args(["--per-task", "10"])
    assert transfer.parse_args(["--full"]).image_size == 256


def _fake_fmuia(bench, calls):
    """Bench.fmuia that records the order of the runs and writes what each leaves."""
    def fmuia(name, argv):
        calls.append(name)
        os.makedirs(os.path.join(bench.out, "logs"), exist_ok=True)
        out = argv[argv.index("--out") + 1]
        if argv[0] == "evaluate":
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "results.json"), "w") as fh:
                fh.write('{"tasks": {}}')
        elif argv[0] == "pretrain":
            os.makedirs(out, exist_ok=True)
            open(os.path.join(out, "encoder.safetensors"), "w").close()
        elif argv[0] == "train" and "source_multitask" in out:
            os.makedirs(os.path.join(out, "best"), exist_ok=True)
    bench.fmuia = fmuia


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_run_waits_for_its_preparation_and_reuse_skips_finished_runs(transfer, tmp_path, jobs):
    args = transfer.parse_args(["--out", str(tmp_path / "out"), "--jobs", str(jobs), "--reuse"])
    bench = transfer.Bench(args)
    calls = []
    _fake_fmuia(bench, calls)
    results = bench.run_all()
    assert set(results) == {row.name for row in transfer.plan()}
    assert len(calls) == 2 + 3 * 12
    for init in ("pretrain", "multitask"):
        prepared = calls.index(f"source_{init}")
        assert all(calls.index(f"{row.name}.train") > prepared for row in transfer.plan() if row.init == init)
    calls.clear()
    bench.run_all()
    assert calls == []  # everything finished is kept


def test_an_interrupted_preparation_is_run_again(transfer, tmp_path):
    bench = transfer.Bench(transfer.parse_args(["--out", str(tmp_path / "out"), "--jobs", "1", "--reuse"]))
    calls = []
    _fake_fmuia(bench, calls)
    bench.run_all()
    # the pretraining stopped after writing an epoch's encoder, before it finished
    os.remove(os.path.join(bench.out, "logs", "source_pretrain.done"))
    os.remove(os.path.join(bench.out, "eval", "pretrain_5", "results.json"))
    calls.clear()
    bench.run_all()
    assert calls == ["source_pretrain", "pretrain_5.train", "pretrain_5.predict", "pretrain_5.evaluate"]


def test_finished_rows_need_no_preparation(transfer, tmp_path):
    bench = transfer.Bench(transfer.parse_args(["--out", str(tmp_path / "out"), "--jobs", "1", "--reuse"]))
    calls = []
    _fake_fmuia(bench, calls)
    bench.run_all()
    for init in ("pretrain", "multitask"):  # e.g. an --out from before the markers existed
        os.remove(os.path.join(bench.out, "logs", f"source_{init}.done"))
    calls.clear()
    bench.run_all()
    assert calls == []


def test_an_out_folder_made_with_other_settings_is_refused(transfer, tmp_path):
    out = str(tmp_path / "out")
    transfer.Bench(transfer.parse_args(["--out", out])).check_settings()
    transfer.Bench(transfer.parse_args(["--out", out, "--jobs", "1"])).check_settings()  # not a setting of the runs
    with pytest.raises(SystemExit, match="steps"):
        transfer.Bench(transfer.parse_args(["--out", out, "--steps", "10"])).check_settings()


def test_the_plot_is_written(transfer, tmp_path):
    results = {"random_5": {"tasks": {"thyroid_nodule": {"score": 0.5}}},
               "imagenet_all": {"tasks": {"lung_2cls": {"score": 0.75}}}}
    path = str(tmp_path / "transfer.png")
    transfer.plot(results, 40, path)
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not os.path.exists(path + ".tmp.png")


def test_the_source_runs_can_start_from_the_imagenet_weights(transfer, tmp_path):
    bench = transfer.Bench(transfer.parse_args(["--out", str(tmp_path / "out")]))  # the default
    pretrain = load_pretrain_config(transfer.PRETRAIN_CONFIG, _settings(bench.preparation("pretrain")))
    assert pretrain.model.pretrained == "efficientnet-lite0-package" and pretrain.optim.lr == 1e-4
    multitask = load_config(bench.args.recipe, _settings(bench.preparation("multitask")))
    assert multitask.model.pretrained == "efficientnet-lite0-package"
    scratch = transfer.Bench(transfer.parse_args(["--out", str(tmp_path / "out2"), "--source-init", "random"]))
    assert load_config(scratch.args.recipe, _settings(scratch.preparation("multitask"))).model.pretrained == "none"
    pretrain = load_pretrain_config(transfer.PRETRAIN_CONFIG, _settings(scratch.preparation("pretrain")))
    assert pretrain.model.pretrained == "none" and pretrain.optim.lr == 1e-3
