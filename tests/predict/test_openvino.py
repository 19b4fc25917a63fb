"""The OpenVINO backend: fp32 matches torch (raw outputs within 1e-4, the same decoded
outputs), int8 stays within its stated tolerance, and every refusal names its reason.

The models are tiny and random, the data 32x32 images: the int8 tolerance here is on
raw outputs relative to their scale, because a random network's decisions sit on ties
that quantisation noise tips either way. The accuracy of int8 on a trained model is
the quality benchmark's (docs/speed.md).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from dataset_builders import materialise, training_rows, valid_rows
from tiny import TINY, tiny_checkpoint

import fmuia
from fmuia.cli.main import main
from fmuia.model import ModelConfig, build_model
from fmuia.predict.backends import OpenVinoBackend, TorchBackend
from fmuia.predict.openvino_graph import export_openvino
from fmuia.tasks import TaskRegistry, fmuia2026

pytest.importorskip("openvino")

JSONS = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")
# One task of each built-in kind (those of the test data) keeps every export small.
REGISTRY = TaskRegistry(t for t in fmuia2026() if t.task_id in ("breast_lesion", "breast_2cls", "thyroid_nodule_det", "FUGC"))
BATCH = ["FUGC", "breast_lesion", "breast_2cls", "thyroid_nodule_det", "FUGC", "breast_lesion"]
# int8 on a random tiny network: mean |int8 - fp32| of each task's raw output, over the
# mean |fp32| of that output (measured 0.02-0.2; random weights are int8's worst case).
INT8_RELATIVE_ERROR = 0.35

# Every head type of every built-in kind, the FPN routes, the fine decoder stage and
# several input sizes (model.input_scale), in three models.
MODELS = {
    "default-heads": dict(),
    "centre-maps-fpn-input-scale": dict(heads={"keypoints": "heatmap", "detection": "centernet"}, routing={"keypoints": "fpn"},
                                        decoder_stride=2, input_scale={"segmentation": 1.5, "detection": 1.5, "keypoints": 1.5}),
    "bounded-regression": dict(heads={"keypoints": "bounded_regression"}),
}


def _images(n, side, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8, generator=generator)


def assert_same_submission(expected: str, got: str) -> None:
    """The same records (numbers within 1e-4, everything else equal) and the same mask files."""
    for name in JSONS:
        a, b = (json.load(open(os.path.join(folder, name))) for folder in (expected, got))
        assert [r["image_path"] for r in a] == [r["image_path"] for r in b]
        for ra, rb in zip(a, b):
            assert ra.keys() == rb.keys()
            for key, value in ra.items():
                if isinstance(value, list):
                    np.testing.assert_allclose(value, rb[key], atol=1e-4)
                else:
                    assert value == rb[key], key
    masks = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(expected, "Segmentation")) for f in fs]
    assert masks
    for mask in masks:
        with open(mask, "rb") as a, open(mask.replace(expected, got, 1), "rb") as b:
            assert a.read() == b.read(), mask


@pytest.mark.parametrize("name", list(MODELS))
def test_fp32_openvino_matches_torch_raw_and_decoded(name, tmp_path, one_thread):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, **MODELS[name]), REGISTRY).eval()
    path = str(tmp_path / "model.xml")
    meta = export_openvino(model, path)
    assert meta["precision"] == "fp32" and os.path.isfile(tmp_path / "model.bin")
    expected_backend, backend = TorchBackend(model, "cpu", "fp32"), OpenVinoBackend(path, "cpu")
    assert backend.registry == expected_backend.registry and backend.config == model.config
    for side in sorted(set(model.input_sizes.values())):
        task_ids = [t for t in BATCH if model.input_sizes[t] == side]
        images = _images(len(task_ids), side)
        expected, got = expected_backend.raw(images, task_ids), backend.raw(images, task_ids)
        assert set(got) == set(expected) == set(task_ids)
        for task_id, raw in expected.items():
            assert got[task_id].shape == raw.shape, (side, task_id)
            assert float(np.abs(got[task_id] - raw.numpy()).max()) <= 1e-4, (side, task_id)
        # Decoded in the graph, with box voting off and on (both decodes are in the
        # graph), for this batch and for one task alone (the others decode no rows).
        for voting in (False, True):
            for b in (expected_backend, backend):
                b.set_decoding(b.predict.replace(box_voting=voting))
            for ids in (task_ids, task_ids[:1] * 3):
                batch = _images(len(ids), side, seed=1)
                decoded, decoded_ov = expected_backend.decoded(batch, ids), backend.decoded(batch, ids)
                assert set(decoded_ov) == set(decoded)
                for task_id, rows in decoded.items():
                    assert decoded_ov[task_id].dtype == np.float32
                    np.testing.assert_allclose(decoded_ov[task_id], rows, atol=1e-4, err_msg=f"{side} {task_id} {voting}")


def test_int8_openvino_stays_within_its_tolerance(tmp_path, one_thread, capsys):
    root = str(tmp_path / "train")
    materialise(root, training_rows())
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY), REGISTRY).eval()
    path = str(tmp_path / "int8.xml")
    meta = export_openvino(model, path, calibration=root, calibration_images=16)
    assert "━" not in capsys.readouterr().out  # NNCF's progress bars go to standard error
    assert meta["precision"] == "int8"
    assert meta["calibration"]["images"] == 16 and meta["calibration"]["tasks"] == 4  # every task of the data
    backend = OpenVinoBackend(path, "cpu")
    assert backend.precision == "int8"
    # The decoding steps in the graph stay fp32: no quantiser feeds them.
    import openvino as ov

    ir = ov.Core().read_model(path)
    quantised_inputs = [target.get_node().get_friendly_name() for op in ir.get_ops() if op.get_type_name() == "FakeQuantize"
                        for target in op.output(0).get_target_inputs()]
    assert any(name.startswith("/encoder/") for name in quantised_inputs)
    assert not [name for name in quantised_inputs if name.startswith("/decoding")]
    images = _images(len(BATCH), 64)
    expected, got = TorchBackend(model, "cpu", "fp32").raw(images, BATCH), backend.raw(images, BATCH)
    for task_id, raw in expected.items():
        relative = float(np.abs(got[task_id] - raw.numpy()).mean() / raw.abs().mean())
        assert 0 < relative <= INT8_RELATIVE_ERROR, (task_id, relative)  # 0 would mean it was not quantised


@pytest.fixture(scope="module")
def fp32_xml(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("openvino") / "model.xml")
    assert main(["export", "openvino", "--checkpoint", tiny_checkpoint(), path]) == 0
    return path


def test_predict_with_openvino_writes_the_torch_submission(tmp_path, fp32_xml, one_thread):
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    outs = {}
    for backend, ckpt in (("torch", tiny_checkpoint()), ("openvino", fp32_xml)):
        out = str(tmp_path / backend)
        assert main(["predict", "--checkpoint", ckpt, "--data", root, "--out", out, "--device", "cpu", "--workers", "0",
                     "--backend", backend, "--precision", "fp32", "--tta", "--no-progress"]) == 0
        outs[backend] = out
    assert_same_submission(outs["torch"], outs["openvino"])
    predictor = fmuia.load(fp32_xml)
    assert predictor.backend.name == "openvino" and predictor.backend.precision == "fp32"


@pytest.mark.parametrize("args, message", [
    (["--backend", "onnxruntime", "--precision", "int8"], "onnxruntime runs fp32 only: its static int8 quantisation ran at 0.7x"),
    (["--backend", "torch", "--precision", "int8"], "int8 runs on --backend openvino"),
    (["--backend", "openvino", "--precision", "int8"], "needs calibration images: --calibration DATA_ROOT"),
    (["--backend", "openvino", "--precision", "bf16"], "openvino runs fp32 or int8"),
    (["--backend", "torch", "--calibration", "somewhere"], "calibration data root applies to --backend openvino"),
])
def test_unsupported_backend_and_precision_are_refused(tmp_path, capsys, args, message):
    code = main(["predict", "--checkpoint", tiny_checkpoint(), "--data", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--device", "cpu", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "out")


def test_openvino_file_refusals_name_the_file(tmp_path, capsys, fp32_xml):
    cases = [
        (["--checkpoint", fp32_xml, "--precision", "int8"], "this OpenVINO model is fp32, not int8"),
        (["--checkpoint", fp32_xml, "--backend", "torch"], "runs with backend 'openvino', not 'torch'"),
        (["--checkpoint", fp32_xml, "--device", "cuda"], None),  # refused for want of CUDA or because OpenVINO is CPU-only
    ]
    stray = tmp_path / "stray.xml"
    stray.write_text("<net/>")
    cases.append((["--checkpoint", str(stray)], "stray.bin is missing"))
    for args, message in cases:
        code = main(["predict", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *args])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and "Traceback" not in err, (args, err)
        assert message is None or message in err, (args, err)
    (tmp_path / "stray.bin").write_bytes(b"")
    for text in ("<net/>", "not xml at all", '<net name="x" version="11"><layers/></net>'):
        stray.write_text(text)
        assert main(["predict", "--checkpoint", str(stray), "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {stray}: ") and err.count("\n") == 1, (text, err)  # one line
        assert "cannot load the OpenVINO model" in err or "no fmuia metadata" in err, (text, err)
    assert not os.path.exists(tmp_path / "out")


def test_export_openvino_refuses_int8_without_calibration(tmp_path, capsys):
    assert main(["export", "openvino", "--checkpoint", tiny_checkpoint(), str(tmp_path / "m.xml"), "--int8"]) == 2
    assert "--int8 needs --calibration DATA_ROOT" in capsys.readouterr().err
    assert main(["export", "openvino", "--checkpoint", tiny_checkpoint(), str(tmp_path / "m.onnx")]) == 2
    assert "must end in .xml" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_openvino_submission_runs_its_model_and_matches_fmuia_predict(tmp_path, fp32_xml):
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    folder = tmp_path / "submission"
    assert main(["export", "submission", "--checkpoint", tiny_checkpoint(), str(folder), "--device", "cpu",
                 "--backend", "openvino", "--workers", "0"]) == 0
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["backend"] == "openvino" and settings["checkpoint"] == "checkpoint/model.xml"
    assert sorted(os.listdir(folder / "checkpoint")) == ["model.bin", "model.xml"]
    pins = (folder / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("openvino==") for line in pins)
    assert not any(line.startswith(("nncf==", "onnx==", "onnxruntime==")) for line in pins)
    assert (folder / "fmuia" / "predict" / "openvino_graph.py").is_file()
    out = tmp_path / "output"
    code = f"import model; model.Model().predict({root!r}, {str(out)!r})"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = tmp_path / "reference"
    assert main(["predict", "--checkpoint", fp32_xml, "--data", root, "--out", str(reference), "--workers", "0",
                 "--no-progress"]) == 0
    assert_same_submission(str(reference), str(out))


def test_tf_same_padding_is_exported_as_constants(tmp_path, one_thread):
    """timm's ``tf_`` encoders work their "same" padding out from the input size at every
    call; the export writes it as constants (no shape arithmetic left for OpenVINO's slow
    reference ``Pad``), with the same outputs at every input side, and leaves the
    caller's model as it was."""
    import onnx
    from timm.layers import Conv2dSame

    from fmuia.predict.onnx_graph import export_onnx

    torch.manual_seed(0)
    config = {**TINY, "encoder": "tf_efficientnet_lite0", "input_scale": {"segmentation": 1.5}}
    model = build_model(ModelConfig(**config), REGISTRY).eval()
    assert any(isinstance(m, Conv2dSame) for m in model.modules())
    export_onnx(model, str(tmp_path / "model.onnx"))
    operators = {node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    assert "Pad" in operators and "Ceil" not in operators  # the padding of the input-size arithmetic is gone
    assert any(isinstance(m, Conv2dSame) for m in model.modules())  # the caller's model is untouched
    path = str(tmp_path / "model.xml")
    export_openvino(model, path)
    expected_backend, backend = TorchBackend(model, "cpu", "fp32"), OpenVinoBackend(path, "cpu")
    for side in sorted(set(model.input_sizes.values())):
        task_ids = [t for t in BATCH if model.input_sizes[t] == side]
        expected, got = expected_backend.raw(_images(len(task_ids), side), task_ids), backend.raw(_images(len(task_ids), side), task_ids)
        for task_id, raw in expected.items():
            assert float(np.abs(got[task_id] - raw.numpy()).max()) <= 1e-4, (side, task_id)


@pytest.mark.parametrize("workers", [0, 2])
def test_openvino_predicts_without_torch(tmp_path, fp32_xml, workers):
    """Predicting with OpenVINO never imports torch (1.5 s of start-up), nor builds the
    network (timm, torchvision, albumentations): the graph decodes, the reader is ours."""
    root, out = str(tmp_path / "data"), str(tmp_path / "out")
    materialise(root, valid_rows())
    code = (f"import sys, fmuia\nfmuia.load({fp32_xml!r}, tta=True).predict_dataset({root!r}, {out!r}, workers={workers}, "
            "progress=False)\n"
            "banned = ('torch', 'timm', 'torchvision', 'segmentation_models_pytorch', 'albumentations')\n"
            "print('LOADED', sorted(m for m in sys.modules if m in banned))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout
    assert os.path.isfile(os.path.join(out, "classification_predictions.json"))


def test_a_graph_without_decoded_outputs_is_refused_by_name(tmp_path, capsys):
    """A graph exported before the graphs decoded (raw outputs only) is named, with the fix."""
    import onnx
    import openvino as ov

    from fmuia.predict.onnx_graph import export_onnx

    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY), REGISTRY).eval()
    graph = str(tmp_path / "model.onnx")
    export_onnx(model, graph)
    proto = onnx.load(graph)
    raw_only = [o for o in proto.graph.output if ":" not in o.name]
    del proto.graph.output[:]
    proto.graph.output.extend(raw_only)
    old = str(tmp_path / "old.onnx")
    onnx.save(proto, old)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["fmuia"])
    ir = ov.convert_model(old)
    ir.set_rt_info(json.dumps({**meta, "precision": "fp32"}), "fmuia")
    ov.save_model(ir, str(tmp_path / "old.xml"), compress_to_fp16=False)
    for path in (old, str(tmp_path / "old.xml")):
        assert main(["predict", "--checkpoint", path, "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: exported by an earlier fmuia, without decoded outputs"), err
        assert "export it again from its checkpoint" in err and err.count("\n") == 1


def test_openvino_cache_keeps_the_compiled_model_and_the_same_submission(tmp_path, fp32_xml, one_thread, capsys):
    root, cache = str(tmp_path / "data"), tmp_path / "cache"
    materialise(root, valid_rows())
    for run in ("first", "second"):
        assert main(["predict", "--checkpoint", fp32_xml, "--data", root, "--out", str(tmp_path / run), "--workers", "0",
                     "--openvino-cache", str(cache), "--no-progress"]) == 0
        if run == "first":
            written = sorted(p.name for p in cache.iterdir())
            assert any(name.endswith(".blob") for name in written), written
    assert sorted(p.name for p in cache.iterdir()) == written  # the second run loaded it, compiled nothing new
    assert_same_submission(str(tmp_path / "first"), str(tmp_path / "second"))
    capsys.readouterr()
    assert main(["predict", "--checkpoint", tiny_checkpoint(), "--data", root, "--out", str(tmp_path / "torch"),
                 "--openvino-cache", str(cache), "--no-progress"]) == 2
    assert "error: an OpenVINO cache folder applies to --backend openvino, not torch" in capsys.readouterr().err


def test_the_model_compiles_while_the_data_is_read_and_a_failure_names_the_file(fp32_xml, monkeypatch):
    """``OpenVinoBackend`` compiles on a thread of its own; the first batch waits for it,
    and a compiler failure reaches the caller as one line naming the model file."""
    from fmuia.errors import CheckpointError
    from fmuia.predict import openvino_graph

    backend = OpenVinoBackend(fp32_xml, "cpu")
    images = _images(2, 64).numpy()
    assert set(backend.decoded(images, ["organ_cls", "FUGC"])) == {"organ_cls", "FUGC"}

    def failing(*args):
        def compile_now():
            raise RuntimeError("Exception from src/plugins/intel_cpu: out of memory\n  at node 17\n")
        return compile_now

    monkeypatch.setattr(openvino_graph, "compiler", failing)
    broken = OpenVinoBackend(fp32_xml, "cpu")  # returns at once: compiling has not failed yet
    with pytest.raises(CheckpointError, match=r"model.xml: cannot compile the OpenVINO model \(RuntimeError: .*out of memory\)$"):
        broken.decoded(images, ["organ_cls", "FUGC"])


def test_a_data_error_while_compiling_exits_with_one_line(tmp_path, fp32_xml):
    """The command fails on the data before the model has compiled: one error line, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "fmuia", "predict", "--checkpoint", fp32_xml, "--data",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
