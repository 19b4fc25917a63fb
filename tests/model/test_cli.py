from fmuia.cli.main import main


def test_model_summary_on_a_config(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("model:\n  encoder: resnet18\n  image_size: 64\n  pretrained: imagenet\n")
    assert main(["model", "summary", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "encoder (resnet18)" in out and "decoder (FPN)" in out and "27 tasks" in out
    for kind in ("segmentation heads", "classification heads", "detection heads", "keypoints heads"):
        assert kind in out
    encoder_line = next(line for line in out.splitlines() if line.startswith("encoder (resnet18)"))
    assert "11,176,512" in encoder_line  # resnet18 without its classifier
    assert "x96 for" not in out
    cfg.write_text("model:\n  encoder: resnet18\n  image_size: 64\n  input_scale: {keypoints: 1.5}\n")
    assert main(["model", "summary", "--config", str(cfg)]) == 0
    assert "  96x96 for 3 task(s): FUGC, IUGC, fetal_femur" in capsys.readouterr().out


def test_model_summary_errors_are_clean(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  encoder: resnet18\n  colour: blue\n")
    assert main(["model", "summary", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {cfg}: ") and "model.colour" in err
    assert main(["model", "summary", "--encoder", "resnet18", "--image-size", "50"]) == 2
    assert "image_size" in capsys.readouterr().err
