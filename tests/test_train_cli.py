"""pawlens-train / pawlens-eval in-process: help, YAML config, every bad input (one line, exit 2, nothing half-written), Ctrl-C and resume."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, synthetic_image, write_image_folder
from PIL import Image

from pawlens.models.checkpoint import load_checkpoint
from pawlens.train.cli import eval_main, train_main

FAST = ["--img-size", "32", "--batch-size", "8", "--num-workers", "0"]


def _run(main, capsys, *argv):
    logging.getLogger("pawlens").handlers.clear()  # log to this test's captured stderr
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _error_line(err: str, prog: str = "pawlens-train") -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{prog}: error:")]
    assert len(lines) == 1, err
    assert err.rstrip().splitlines()[-1] == lines[0], err  # nothing (no traceback) after it
    return lines[0]


@pytest.fixture
def data(tmp_path):
    return write_image_folder(tmp_path / "data", n_per_class=10, size=40)


def test_help_states_defaults_groups_and_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        train_main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for s in ("Dataset parameters", "Training parameters", "Runtime parameters", "(default: 32)", "default: the model's", "examples:",
              "torchrun --nproc_per_node"):
        assert s in out, s
    with pytest.raises(SystemExit):
        eval_main(["--help"])
    assert "--checkpoint" in capsys.readouterr().out


def test_yaml_config_flags_override_and_resolved_config_is_written(data, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nbatch-size: 4\nimg_size: 32\nnum_workers: 0\nlr: 0.002\nlabel_smoothing: 0.1\n")
    rc, out, err = _run(train_main, capsys, "-c", cfg, "--data", data, "--out", tmp_path / "o", "--batch-size", "8")
    assert rc == 0, err
    saved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["batch_size"] == 8 and saved["lr"] == 0.002 and saved["label_smoothing"] == 0.1
    assert "accuracy" in out


def test_yaml_unknown_key_is_one_line_listing_valid_keys(data, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    rc, _, err = _run(train_main, capsys, "-c", cfg, "--data", data, "--out", tmp_path / "o")
    line = _error_line(err)
    assert rc == 2 and "[input]" in line and "learning_rate" in line and "valid keys: accumulate, amp," in line
    assert not (tmp_path / "o").exists()
    (tmp_path / "bad.yaml").write_text("epochs: [1\n")
    rc, _, err = _run(train_main, capsys, "-c", tmp_path / "bad.yaml", "--data", data)
    assert rc == 2 and "not valid YAML" in _error_line(err)


def _one_class(tmp):
    return write_image_folder(tmp / "one", 5, 32, classes=("cat",))


def _unreadable(tmp):
    for c in ("cat", "dog"):
        (tmp / "u" / c).mkdir(parents=True)
        (tmp / "u" / c / "a.jpg").write_bytes(b"")
        (tmp / "u" / c / "b.jpg").write_text("not an image")
    return tmp / "u"


def _wrong_arch_weights(tmp):
    import torch

    p = tmp / "small.pt"
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3)}, p)
    return p


BAD = {
    "missing-folder": (lambda t, d: ["--data", t / "nope"], "[data]", "data folder not found"),
    "empty-folder": (lambda t, d: ["--data", (t / "empty").mkdir() or t / "empty"], "[data]", "no images found"),
    "one-class": (lambda t, d: ["--data", _one_class(t)], "[data]", "only one class"),
    "all-unreadable": (lambda t, d: ["--data", _unreadable(t)], "[data]", "none of the 4 images can be read"),
    "no-data": (lambda t, d: [], "[input]", "no data"),
    "weights-missing": (lambda t, d: ["--data", d, "--weights", t / "nope.pth"], "[weights]", "weights file not found"),
    "weights-other-arch": (lambda t, d: ["--data", d, "--weights", _wrong_arch_weights(t)], "[weights]", "another architecture"),
    "bad-unfreeze": (lambda t, d: ["--data", d, "--model", "resnet50", "--weights", "none", "--unfreeze", "layer9"], "[input]", "--unfreeze"),
    "resume-missing": (lambda t, d: ["--resume", t / "gone" / "last.pt"], "[checkpoint]", "checkpoint not found"),
    "bad-epochs": (lambda t, d: ["--data", d, "--epochs", "0"], "[input]", "--epochs must be at least 1"),
    "cuda-missing": (lambda t, d: ["--data", d, "--device", "cuda"], "[backend]", "no CUDA GPU"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_leaves_no_checkpoint(case, data, tmp_path, capsys):
    if case == "cuda-missing":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    make, component, text = BAD[case]
    out = tmp_path / "out"
    rc, _, err = _run(train_main, capsys, *make(tmp_path, data), "--out", out, *FAST)
    line = _error_line(err)
    assert rc == 2, err
    assert component in line and text in line, line
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_kaggle_flat_and_presplit_layouts_train_end_to_end(tmp_path, capsys):
    from test_data import _flat

    flat = _flat(tmp_path / "flat", 8)
    rc, _, err = _run(train_main, capsys, "--data", flat, "--out", tmp_path / "o1", "--epochs", "1", *FAST)
    assert rc == 0, err
    s1 = json.loads((tmp_path / "o1" / "split.json").read_text())
    assert s1["layout"] == "kaggle-flat" and s1["counts"]["test"] == {"cat": 1, "dog": 1}
    ps = tmp_path / "ps"
    for sub, n in (("train", 5), ("val", 2), ("test", 2)):
        write_image_folder(ps / sub, n, 32, seed=n)
    rc, _, err = _run(train_main, capsys, "--data", ps, "--out", tmp_path / "o2", "--epochs", "1", *FAST)
    assert rc == 0, err
    s2 = json.loads((tmp_path / "o2" / "split.json").read_text())
    assert s2["layout"] == "presplit" and s2["split_source"] == "folders" and s2["splits"]["test"][0][0].startswith("test/")
    assert json.loads((tmp_path / "o2" / "metrics.json").read_text())["n"] == 4


def test_out_folder_holding_a_run_is_refused(data, tmp_path, capsys):
    rc, _, err = _run(train_main, capsys, "--data", data, "--out", tmp_path / "o", "--epochs", "1", *FAST)
    assert rc == 0, err
    before = (tmp_path / "o" / "best.pt").stat().st_mtime_ns
    rc, _, err = _run(train_main, capsys, "--data", data, "--out", tmp_path / "o", "--epochs", "1", *FAST)
    assert rc == 2 and "[output]" in _error_line(err) and "--resume" in err
    assert (tmp_path / "o" / "best.pt").stat().st_mtime_ns == before
    (tmp_path / "o" / "last.pt").unlink()  # best.pt alone: nothing to resume, so the message names no last.pt
    rc, _, err = _run(train_main, capsys, "--data", data, "--out", tmp_path / "o", "--epochs", "1", *FAST)
    line = _error_line(err)
    assert rc == 2 and "best.pt, no last.pt to resume from" in line and "--resume" not in line
    assert (tmp_path / "o" / "best.pt").stat().st_mtime_ns == before


def test_bad_and_odd_images_are_skipped_or_converted_and_training_goes_on(data, tmp_path, capsys):
    (data / "cat" / "zero.jpg").write_bytes(b"")
    (data / "dog" / "readme.jpg").write_text("I am a text file")
    good = (data / "cat" / "cat.0.jpg").read_bytes()
    (data / "dog" / "half.jpg").write_bytes(good[: len(good) // 2])
    rgb = synthetic_image(0, 40, np.random.default_rng(5))
    Image.fromarray(rgb).convert("L").save(data / "cat" / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(data / "cat" / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(data / "cat" / "cmyk.jpg")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(data / "cat" / "deep16.png")
    rc, _, err = _run(train_main, capsys, "--data", data, "--out", tmp_path / "o", "--epochs", "1", *FAST)
    assert rc == 0, err
    split = json.loads((tmp_path / "o" / "split.json").read_text())
    assert sorted(os.path.basename(p) for p, _ in split["skipped"]) == ["half.jpg", "readme.jpg", "zero.jpg"]
    assert "skipped 3 of 27 images" in err
    used = {os.path.basename(p) for v in split["splits"].values() for p, _ in v}
    assert {"gray.png", "rgba.png", "cmyk.jpg", "deep16.png"} <= used
    h = json.loads((tmp_path / "o" / "history.json").read_text())
    assert h["skipped_images"] == 3 and h["epochs"][0]["skipped"] == 0


def test_ctrl_c_mid_epoch_exits_130_and_resume_continues(data, tmp_path, capsys, monkeypatch):
    from pawlens.train import loop

    real = loop.evaluate
    calls = {"n": 0}

    def interrupted_in_epoch_2(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 2, after its training batches, before its checkpoint
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "evaluate", interrupted_in_epoch_2)
    out = tmp_path / "o"
    rc, _, err = _run(train_main, capsys, "--data", data, "--out", out, "--epochs", "3", *FAST)
    assert rc == 130 and "interrupted" in err and f"--resume {out / 'last.pt'}" in err
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 1
    assert load_checkpoint(out / "best.pt")["metrics"]["epoch"] == 1
    assert [f for f in os.listdir(out) if ".tmp-" in f] == []
    monkeypatch.setattr(loop, "evaluate", real)
    rc, _, err = _run(train_main, capsys, "--resume", out / "last.pt", "--num-workers", "0")
    assert rc == 0, err
    h = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in h["epochs"]] == [1, 2, 3]
    assert "resumed from" in err and (out / "metrics.json").is_file()
    rc, _, err = _run(train_main, capsys, "--resume", out / "last.pt", "--img-size", "64")
    assert rc == 2 and "differs from the run being resumed" in _error_line(err)


@pytest.mark.slow
def test_real_sigint_keeps_last_checkpoint_loadable(data, tmp_path):
    """A real Ctrl-C (SIGINT) to a running pawlens-train process: exit 130, last.pt loads, --resume works."""
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pawlens.train.cli", "--data", str(data), "--out", str(out), "--epochs", "500", "--patience", "500", *FAST]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not (out / "last.pt").exists() and time.time() - t0 < 90 and p.poll() is None:
            time.sleep(0.2)
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err[-2000:]
    assert "interrupted" in err
    done = load_checkpoint(out / "last.pt")["train_state"]["epoch"]
    assert done >= 1
    from pawlens.train.loop import train

    res = train({"resume": str(out / "last.pt"), "epochs": done + 1})
    assert len(res.history["epochs"]) == done + 1 == len(json.loads((out / "history.json").read_text())["epochs"])


# ----------------------------------------------------------------------------- pawlens-eval


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pawlens.train.loop import train

    tmp = tmp_path_factory.mktemp("evalrun")
    d = write_image_folder(tmp / "data", n_per_class=10, size=40)
    res = train({"data": str(d), "out": str(tmp / "run"), "img_size": 32, "batch_size": 8, "num_workers": 0, "epochs": 1})
    return d, Path(res.best_ckpt), tmp


def test_eval_uses_the_runs_test_list_or_all_images(trained, capsys, tmp_path):
    d, ckpt, _ = trained
    rc, out, err = _run(eval_main, capsys, "--checkpoint", ckpt, "--data", d, "--out", tmp_path / "e1", "--num-workers", "0")
    assert rc == 0, err
    m = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    assert "split.json" in m["evaluated_on"] and m["n"] == 4
    for f in ("confusion_matrix.png", "errors.png"):
        assert (tmp_path / "e1" / f).is_file()
    assert "macro F1" in out and "cat P" in out
    rc, _, err = _run(eval_main, capsys, "--checkpoint", ckpt, "--data", d, "--split", "all", "--out", tmp_path / "e2", "--num-workers", "0")
    assert rc == 0, err
    m2 = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    assert m2["n"] == 20 and m2["evaluated_on"].startswith("all 20 images")


def test_eval_on_a_presplit_folder_uses_its_test_split(trained, capsys, tmp_path):
    _, ckpt, _ = trained
    root = tmp_path / "ps"
    for s, n in (("train", 3), ("val", 2), ("test", 3)):
        write_image_folder(root / s, n, 32, seed=n)
    rc, _, err = _run(eval_main, capsys, "--checkpoint", ckpt, "--data", root, "--out", tmp_path / "e", "--num-workers", "0")
    assert rc == 0, err
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n"] == 6 and "test split of" in m["evaluated_on"]


def test_eval_bad_inputs(trained, capsys, tmp_path):
    d, ckpt, _ = trained
    rc, _, err = _run(eval_main, capsys, "--checkpoint", tmp_path / "none.pt", "--data", d)
    assert rc == 2 and "[checkpoint]" in _error_line(err, "pawlens-eval")
    other = write_image_folder(tmp_path / "other", 3, 32, classes=("cat", "bird"))
    rc, _, err = _run(eval_main, capsys, "--checkpoint", ckpt, "--data", other, "--out", tmp_path / "e")
    assert rc == 2 and "'bird' is unknown to the checkpoint" in _error_line(err, "pawlens-eval")
    rc, _, err = _run(eval_main, capsys, "--checkpoint", ckpt, "--data", d, "--split", "test", "--out", tmp_path / "e3")
    assert rc == 0  # split.json next to the checkpoint provides the test list


@pytest.mark.realdata
def test_train_and_eval_on_real_photos(real_photos, tmp_path, capsys):
    root = tmp_path / "real"
    for p in real_photos:
        cls = Path(p).parent.name
        (root / cls).mkdir(parents=True, exist_ok=True)
        os.symlink(p, root / cls / Path(p).name)
    rc, _, err = _run(train_main, capsys, "--data", root, "--out", tmp_path / "o", "--epochs", "1", *FAST)
    assert rc == 0, err
    rc, _, err = _run(eval_main, capsys, "--checkpoint", tmp_path / "o" / "best.pt", "--data", root, "--split", "all",
                      "--out", tmp_path / "e", "--num-workers", "0")
    assert rc == 0, err
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n"] == 16 and m["skipped"] == 0 and sum(m["per_class"][c]["support"] for c in ("cat", "dog")) == 16
