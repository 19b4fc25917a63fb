import pytest
import torch

from fmuia.errors import ConfigError
from fmuia.model import ModelConfig, build_model, group_indices, resolve_routes
from fmuia.model.network import scaled_size, task_input_sizes
from fmuia.tasks import fmuia2026

from model_helpers import SIZE, images, tiny_config

TASK_IDS = ["kp", "seg", "cls", "det", "seg", "cls2", "kp", "cls"]


def test_output_shapes_of_every_kind(tiny_model):
    out = tiny_model(images(len(TASK_IDS)), TASK_IDS)
    assert list(out) == ["kp", "seg", "cls", "det", "cls2"]  # first appearance
    assert out["seg"].shape == (2, 3, SIZE, SIZE)
    assert out["cls"].shape == (2, 4)
    assert out["cls2"].shape == (1, 2)
    assert out["det"].shape == (1, 5, SIZE // 4, SIZE // 4)
    assert out["kp"].shape == (2, 6)
    assert all(v.dtype == torch.float32 for v in out.values())


def test_decode_gives_normalised_predictions(tiny_model):
    dec = tiny_model.decode(tiny_model(images(len(TASK_IDS)), TASK_IDS))
    assert torch.allclose(dec["seg"].sum(1), torch.ones(2, SIZE, SIZE), atol=1e-5)
    assert torch.allclose(dec["cls"].sum(1), torch.ones(2), atol=1e-5)
    assert dec["kp"].shape == (2, 3, 2) and dec["kp"].min() >= 0 and dec["kp"].max() <= 1
    box = dec["det"]
    assert box.shape == (1, 5) and box.min() >= 0 and box.max() <= 1
    assert (box[:, 0] <= box[:, 2]).all() and (box[:, 1] <= box[:, 3]).all()


def test_detection_decode_takes_the_best_cell(tiny_model):
    raw = torch.full((1, 5, 4, 4), -5.0)
    raw[0, 4, 2, 1] = 3.0  # best cell
    raw[0, :4, 2, 1] = torch.tensor([-1.0, -2.0, 1.0, 2.0])
    x1, y1, x2, y2, score = tiny_model.head("det").decode(raw)[0].tolist()
    expected = torch.sigmoid(torch.tensor([-1.0, -2.0, 1.0, 2.0, 3.0])).tolist()
    assert [x1, y1, x2, y2, score] == pytest.approx(expected, abs=1e-6)


def test_mixed_batch_equals_per_task_forwards(tiny_model):
    x = images(len(TASK_IDS))
    groups = group_indices(TASK_IDS)
    assert groups == {"kp": [0, 6], "seg": [1, 4], "cls": [2, 7], "det": [3], "cls2": [5]}
    with torch.no_grad():
        mixed = tiny_model(x, TASK_IDS)
        for task_id, rows in groups.items():
            alone = tiny_model(x[rows], [task_id] * len(rows))[task_id]
            torch.testing.assert_close(mixed[task_id], alone, rtol=1e-5, atol=1e-5)


def _count_calls(module):
    calls = []
    handle = module.register_forward_hook(lambda m, i, o: calls.append(i[0][0].shape[0]))
    return calls, handle


def test_global_tasks_read_the_top_stage_and_skip_the_fpn(tiny_model):
    calls, handle = _count_calls(tiny_model.decoder)
    try:
        with torch.no_grad():
            tiny_model(images(3), ["cls", "kp", "cls2"])
            assert calls == []
            tiny_model(images(4), ["cls", "seg", "kp", "det"])
            assert calls == [2]  # once, over the two dense samples only
    finally:
        handle.remove()
    assert tiny_model.routes == {"seg": "fpn", "cls": "top", "cls2": "top", "det": "fpn", "kp": "top"}
    assert tiny_model.head("cls").linear.in_features == tiny_model.encoder.feature_info.channels()[-1]


def test_routing_overrides_per_task_and_kind(small_registry):
    routes = resolve_routes(small_registry, {"classification": "fpn", "cls2": "top"})
    assert routes["cls"] == "fpn" and routes["cls2"] == "top" and routes["seg"] == "fpn"
    model = build_model(tiny_config(routing={"cls": "fpn"}), small_registry).eval()
    assert model.head("cls").linear.in_features == model.config.decoder_out_channels
    calls, handle = _count_calls(model.decoder)
    with torch.no_grad():
        assert model(images(1), ["cls"])["cls"].shape == (1, 4)
    handle.remove()
    assert calls == [1]
    with pytest.raises(ConfigError, match="nope"):
        resolve_routes(small_registry, {"nope": "top"})
    with pytest.raises(ConfigError, match="middle"):
        resolve_routes(small_registry, {"cls": "middle"})


def test_head_type_chosen_by_config(small_registry):
    with pytest.raises(ConfigError, match="unknown head type 'no_such_head'"):
        build_model(tiny_config(heads={"keypoints": "no_such_head"}), small_registry)
    with pytest.raises(ConfigError, match="not a kind"):
        build_model(tiny_config(heads={"points": "regression"}), small_registry)
    model = build_model(tiny_config(heads={"keypoints": "regression", "detection": "grid"}), small_registry)
    assert model.head_types[model.registry["kp"].kind] == "regression"


def test_model_config_from_dict_rejects_unknown_and_bad_values():
    assert ModelConfig.from_dict({"encoder": "resnet18", "precision": "bf16"}).encoder == "resnet18"
    with pytest.raises(ConfigError, match="unknown key.*encoder_name"):
        ModelConfig.from_dict({"encoder_name": "resnet18"})
    with pytest.raises(ConfigError, match="precision"):
        ModelConfig.from_dict({"precision": "int8"})
    with pytest.raises(ConfigError, match="image_size"):
        ModelConfig.from_dict({"image_size": 100})
    with pytest.raises(ConfigError, match="not a timm model"):
        build_model({"encoder": "no_such_net", "pretrained": "none"}, fmuia2026())


def test_bad_inputs_raise_clear_errors(tiny_model):
    with pytest.raises(KeyError, match="unknown task"):
        tiny_model(images(1), ["nope"])
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny_model(images(1, size=48), ["cls"])
    with pytest.raises(ValueError, match="2 images but 1 task ids"):
        tiny_model(images(2), ["cls"])


def test_channels_last_and_bf16_match_fp32(small_registry, tiny_model):
    model = build_model(tiny_config(channels_last=True), small_registry).eval()
    model.load_state_dict(tiny_model.state_dict())
    x = images(len(TASK_IDS))
    with torch.no_grad():
        ref = tiny_model(x, TASK_IDS)
        cl = model(x, TASK_IDS)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = model(x, TASK_IDS)
    for task_id in ref:
        torch.testing.assert_close(cl[task_id], ref[task_id], rtol=1e-4, atol=1e-4)
        assert bf[task_id].dtype == torch.float32
        scale = ref[task_id].abs().mean().item() + 1e-6
        assert (bf[task_id] - ref[task_id]).abs().mean().item() / scale < 0.1


def test_training_step_backpropagates_to_every_used_head(small_registry):
    model = build_model(tiny_config(), small_registry).train()
    out = model(images(4), ["seg", "cls", "det", "kp"])
    sum(v.float().mean() for v in out.values()).backward()
    for task_id in ["seg", "cls", "det", "kp"]:
        assert all(p.grad is not None for p in model.head(task_id).parameters())
    assert all(p.grad is None for p in model.head("cls2").parameters())


def test_default_b4_config_builds_with_27_tasks():
    model = build_model({"pretrained": "none"}, fmuia2026())
    assert model.config.encoder == "efficientnet_b4"
    assert len(model.heads) == 27
    assert model.encoder.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert 19_000_000 < sum(p.numel() for p in model.parameters()) < 20_000_000


def test_fine_decoder_stage_doubles_the_dense_maps(small_registry):
    torch.manual_seed(0)
    model = build_model(tiny_config(decoder_stride=2, heads={"keypoints": "heatmap", "detection": "centernet"}),
                        small_registry).eval()
    ids = ["seg", "det", "kp", "cls"]
    out = model(images(len(ids)), ids)
    assert out["seg"].shape == (1, 3, SIZE, SIZE)
    assert out["det"].shape[-2:] == (SIZE // 2, SIZE // 2)
    assert out["kp"].shape[-2:] == (SIZE // 2, SIZE // 2)  # one heatmap per point
    assert out["cls"].shape == (1, 4)
    # the stride-2 features reach the output: changing them changes the segmentation
    feats = model.encoder(images(1))
    base = model.decoder(feats)
    feats[model.decoder.fine_level] = feats[model.decoder.fine_level] + 1.0
    assert not torch.allclose(base, model.decoder(feats))


def test_decoder_stride_is_checked():
    assert ModelConfig.from_dict({"decoder_stride": 2}).decoder_stride == 2
    for bad in (3, 8, True, "2"):
        with pytest.raises(ConfigError, match="decoder_stride"):
            ModelConfig.from_dict({"decoder_stride": bad})


def test_input_scale_gives_each_task_its_input_side(small_registry):
    config = tiny_config(input_scale={"segmentation": 1.5, "cls2": 2.0, "keypoints": 1.2})
    model = build_model(config, small_registry)
    size = config.image_size
    expected = {"seg": scaled_size(size, 1.5), "cls2": 2 * size, "kp": scaled_size(size, 1.2)}
    assert {t: s for t, s in model.input_sizes.items() if s != size} == expected
    assert all(s % 32 == 0 for s in model.input_sizes.values())
    assert [scaled_size(128, f) for f in (1.0, 1.5, 1.2, 0.5, 1.26)] == [128, 192, 160, 64, 192]
    assert task_input_sizes(small_registry, ModelConfig(image_size=64)) == {t.task_id: 64 for t in small_registry}
    with pytest.raises(ConfigError, match="model.input_scale: 'nope' is neither a task id nor a kind"):
        build_model(tiny_config(input_scale={"nope": 2.0}), small_registry)
    for bad in (0.1, 5, True, "2", None):
        with pytest.raises(ConfigError, match="model.input_scale.seg: expected a factor between 0.25 and 4"):
            ModelConfig.from_dict({"input_scale": {"seg": bad}})
    with pytest.raises(ConfigError, match="model.input_scale: expected a mapping"):
        ModelConfig.from_dict({"input_scale": [1.5]})
    # one set of weights serves every size: a larger input gives a larger mask
    model.eval()
    with torch.no_grad():
        assert model(images(1, size=expected["seg"]), ["seg"])["seg"].shape[-2:] == (expected["seg"],) * 2
