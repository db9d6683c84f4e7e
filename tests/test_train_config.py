"""train.config (defaults, checks, resume merge) and bench.train_speed (the interleaved throughput table)."""

from __future__ import annotations

import pytest

from pawlens.errors import InputError
from pawlens.train.config import DEFAULTS, load_yaml_config, merge_for_resume, resolve_config


def test_defaults_fill_in_and_types_are_coerced():
    cfg = resolve_config({"data": "d", "epochs": "3", "lr": "0.01", "deterministic": "false", "unfreeze": "layer3, layer4"})
    assert cfg["epochs"] == 3 and cfg["lr"] == 0.01 and cfg["deterministic"] is False and cfg["unfreeze"] == ["layer3", "layer4"]
    assert set(cfg) == set(DEFAULTS) and cfg["batch_size"] == 32 and cfg["seed"] == 42 and cfg["num_workers"] == 2


@pytest.mark.parametrize("bad, match", [
    ({"epochs": 0}, "--epochs must be at least 1"),
    ({"epochs": 2.5}, "epochs: expected int"),
    ({"amp": "fp8"}, "--amp 'fp8' is not one of"),
    ({"device": "tpu"}, "--device 'tpu'"),
    ({"val_frac": 0.0}, "--val-frac"),
    ({"label_smoothing": 1.0}, "--label-smoothing"),
    ({"img_size": 8}, "--img-size must be at least 16"),
    ({"colour": 1}, "unknown key\\(s\\) colour; valid keys: accumulate"),
])
def test_bad_values_are_one_line_input_errors(bad, match):
    with pytest.raises(InputError, match=match) as e:
        resolve_config({"data": "d", **bad})
    assert "\n" not in str(e.value)


def test_yaml_keys_accept_dashes(tmp_path):
    (tmp_path / "c.yaml").write_text("img-size: 96\nmax_images: 100\n")
    assert load_yaml_config(str(tmp_path / "c.yaml")) == {"img_size": 96, "max_images": 100}
    (tmp_path / "l.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_yaml_config(str(tmp_path / "l.yaml"))
    with pytest.raises(InputError, match="config file not found"):
        load_yaml_config(str(tmp_path / "none.yaml"))


def test_resume_merge_keeps_saved_config_and_guards_frozen_keys():
    saved = resolve_config({"data": "/d", "model": "baseline", "img_size": 64, "epochs": 5, "out": "/old/run"})
    m = merge_for_resume(saved, {"epochs": 8, "num_workers": 0}, "/new/run/last.pt")
    assert m["epochs"] == 8 and m["num_workers"] == 0 and m["img_size"] == 64 and m["resume"] == "/new/run/last.pt"
    assert m["out"] is None  # defaults to the checkpoint's folder, wherever the run was moved
    assert merge_for_resume(saved, {"img_size": 64}, "x")["img_size"] == 64  # same value: fine
    with pytest.raises(InputError, match="--img-size 96 differs from the run being resumed"):
        merge_for_resume(saved, {"img_size": 96}, "x")


def test_speed_table_runs_every_configuration(capsys):
    from pawlens.bench import train_speed as speed

    assert speed.main(["--model", "baseline", "--img-size", "32", "--batch-size", "2", "--steps", "1", "--rounds", "2",
                       "--warmup", "1", "--configs", "fp32,fp32-cl", "--trainable", "all"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("config") and lines[2].startswith("fp32 ") and lines[3].startswith("fp32-cl")
    assert "1.00x" in lines[2] and "2 timed steps" in out
    assert speed.main(["--configs", "fp99"]) == 2


def test_per_model_recipes_and_augment_choice():
    b = resolve_config({"data": "d"})
    assert (b["model"], b["epochs"], b["augment"], b["schedule"], b["label_smoothing"]) == ("baseline", 30, "resized-crop", "cosine", 0.1)
    e = resolve_config({"data": "d", "model": "efficientnet_lite0"})
    assert e["augment"] == "light" and e["weight_decay"] == 1e-4 and e["label_smoothing"] == 0.0 and e["cache"] == "auto"
    assert resolve_config({"data": "d", "augment": "light", "weight_decay": 0.05})["augment"] == "light"
    for bad, match in (({"augment": "heavy"}, "--augment 'heavy' is not one of light, resized-crop"),
                       ({"cache": "disk"}, "--cache 'disk' is not one of auto, ram, off"),
                       ({"weight_decay": -1}, "--weight-decay must be >= 0")):
        with pytest.raises(InputError, match=match):
            resolve_config({"data": "d", **bad})


def test_a_run_saved_before_augment_existed_resumes_with_the_light_augmentation():
    saved = {k: v for k, v in resolve_config({"data": "/d"}).items() if k != "augment"}
    assert resolve_config(merge_for_resume(saved, {}, "x/last.pt"))["augment"] == "light"
