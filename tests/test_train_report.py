"""train.report: metrics against hand-computed values, the plots, the error grid and its ordering."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pawlens.train.report import (
    classification_metrics,
    confident_errors,
    confusion_matrix,
    evaluate_samples,
    model_crop,
    phase_switches,
    plot_curves,
    plot_errors,
    robust_limits,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_metrics_match_hand_computed_values():
    y_true = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    y_pred = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    m = classification_metrics(y_true, y_pred, ["cat", "dog"])
    assert m["confusion_matrix"] == [[3, 1], [2, 4]]
    assert m["accuracy"] == pytest.approx(0.7)
    cat, dog = m["per_class"]["cat"], m["per_class"]["dog"]
    assert cat["precision"] == pytest.approx(3 / 5) and cat["recall"] == pytest.approx(3 / 4) and cat["support"] == 4
    assert dog["precision"] == pytest.approx(4 / 5) and dog["recall"] == pytest.approx(4 / 6) and dog["support"] == 6
    f_cat, f_dog = 2 * 0.6 * 0.75 / 1.35, 2 * 0.8 * (2 / 3) / (0.8 + 2 / 3)
    assert cat["f1"] == pytest.approx(f_cat) and m["macro_f1"] == pytest.approx((f_cat + f_dog) / 2)


def test_undefined_precision_is_zero_not_nan():
    m = classification_metrics([0, 0, 1], [0, 0, 0], ["a", "b"])
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert confusion_matrix([2, 0], [2, 2], 3).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 1]]


class _Fixed:
    """A 'model' returning preset logits per image, by the red channel value of its centre pixel."""

    def __init__(self, logits_by_key):
        import torch

        self.torch = torch
        self.table = logits_by_key

    def eval(self):
        return self

    def __call__(self, x):
        keys = [round(float(v), 1) for v in x[:, 0, x.shape[2] // 2, x.shape[3] // 2]]
        return self.torch.tensor([self.table[k] for k in keys], dtype=self.torch.float32)


def test_errors_grid_shows_the_most_confidently_wrong_first(tmp_path):
    from pawlens.models.preprocess import PreprocessConfig, torch_eval_transform

    pre = PreprocessConfig.for_size(32)
    tf = torch_eval_transform(pre)
    samples, table = [], {}
    # 4 images, all true class 0; predicted logits make image 2 wrong with p~0.99, image 3 wrong with p~0.73
    for i, (grey, logits) in enumerate([(20, [3.0, 0.0]), (70, [2.0, 0.0]), (120, [0.0, 5.0]), (170, [0.0, 1.0])]):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((32, 32, 3), grey, np.uint8)).save(p)
        samples.append((str(p), 0))
        table[round(float(tf(np.full((32, 32, 3), grey, np.uint8))[0, 16, 16]), 1)] = logits
    m = evaluate_samples(_Fixed(table), samples, ["cat", "dog"], pre, str(tmp_path), errors_grid=8)
    assert m["confusion_matrix"] == [[2, 2], [0, 0]] and m["errors_shown"] == 2
    assert [e["path"].rsplit("/", 1)[1] for e in m["errors"]] == ["img2.png", "img3.png"]
    assert m["errors"][0]["confidence"] == pytest.approx(1 / (1 + np.exp(-5)), rel=1e-4) and m["errors"][0]["pred"] == "dog"
    for f in ("metrics.json", "confusion_matrix.png", "errors.png"):
        assert (tmp_path / f).read_bytes()[:8] == PNG or f.endswith(".json")
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == 0.5


def test_confident_errors_order_and_limit():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95], [0.7, 0.3]])
    labels = np.array([0, 0, 0, 0, 1])
    assert confident_errors(probs, labels, 10).tolist() == [3, 1, 4, 2]
    assert confident_errors(probs, labels, 2).tolist() == [3, 1]
    assert confident_errors(probs[:1], labels[:1], 5).tolist() == []


def test_curves_with_a_phase_boundary(tmp_path):
    ep = [{"epoch": i + 1, "phase": "head" if i < 2 else "finetune", "train_loss": 1 / (i + 1), "val_loss": 1.1 / (i + 1),
           "train_acc": 0.5 + i / 10, "val_acc": 0.5 + i / 12} for i in range(4)]
    plot_curves({"model": "resnet50", "epochs": ep, "phase_boundaries": [3], "best_epoch": 4}, str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    assert Image.open(tmp_path / "c.png").size[0] > 400


def _epochs(n, phase=lambda i: "scratch", spike=None):
    return [{"epoch": i + 1, "phase": phase(i), "train_loss": 0.7 / (1 + 0.2 * i), "val_loss": 9.0 if i == spike else 0.75 / (1 + 0.15 * i),
             "train_acc": 0.5 + i / 40, "val_acc": 0.5 + i / 45} for i in range(n)]


def test_a_phase_line_only_where_the_phase_really_changed():
    two = _epochs(6, lambda i: "head" if i < 2 else "finetune")
    assert phase_switches({"epochs": two, "phase_boundaries": [3]}) == [3]
    assert phase_switches({"epochs": _epochs(6), "phase_boundaries": [3]}) == []  # recorded, but the phase stayed the same
    assert phase_switches({"epochs": two[:2], "phase_boundaries": [3]}) == []  # the run ended before the new phase began
    assert phase_switches({"epochs": _epochs(6), "phase_boundaries": []}) == []


def test_an_early_val_loss_spike_is_clipped_and_said_so(tmp_path):
    ep = _epochs(12, spike=1)
    lo, hi = robust_limits([e[k] for e in ep for k in ("train_loss", "val_loss")])
    assert hi < 1.0 and lo < min(e["train_loss"] for e in ep)  # every point but the spike is inside
    assert robust_limits([e[k] for e in _epochs(12) for k in ("train_loss", "val_loss")]) is None  # no outlier: matplotlib's own range
    assert robust_limits([0.7, 9.0, 0.5]) is None  # too few epochs to call anything an outlier
    notes = plot_curves({"model": "baseline", "epochs": ep, "phase_boundaries": [], "best_epoch": 11}, str(tmp_path / "c.png"))
    assert len(notes) == 1 and "clipped" in notes[0] and "val loss 9 at epoch 2" in notes[0]
    assert plot_curves({"model": "baseline", "epochs": _epochs(12), "best_epoch": 11}, str(tmp_path / "d.png")) == []


def test_errors_grid_shows_the_models_crop_in_uniform_tiles(tmp_path):
    """Photos of three shapes, each red in its centre square and blue around it: every tile is the same red square."""
    from pawlens.models.preprocess import PreprocessConfig

    cfg = PreprocessConfig.for_size(64)
    items = []
    for i, (h, w) in enumerate([(300, 600), (600, 300), (200, 200), (375, 500)]):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 2] = 255
        s = min(h, w)
        img[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2] = (255, 0, 0)
        Image.fromarray(img).save(tmp_path / f"p{i}.png")
        items.append((str(tmp_path / f"p{i}.png"), "cat", "dog", 0.9 - i / 10))
    crop = model_crop(np.asarray(Image.open(tmp_path / "p0.png")), cfg, 128)
    assert crop.shape == (128, 128, 3) and (crop[..., 0] > 200).all() and (crop[..., 2] < 50).all()
    plot_errors(items, str(tmp_path / "errors.png"), n_wrong=4, preprocess=cfg)
    png = np.asarray(Image.open(tmp_path / "errors.png").convert("RGB")).astype(int)
    assert not ((png[..., 2] > 200) & (png[..., 0] < 50)).any()  # no blue: nothing outside the crops is shown
    red = (png[..., 0] > 200) & (png[..., 1] < 50) & (png[..., 2] < 50)
    rows, cols = np.nonzero(red.any(1))[0], np.nonzero(red.any(0))[0]
    runs = np.split(cols, np.nonzero(np.diff(cols) > 1)[0] + 1)  # one run of columns per tile
    widths = [len(r) for r in runs]
    assert len(runs) == 4 and max(widths) - min(widths) <= 1, widths
    assert abs((rows[-1] - rows[0] + 1) - widths[0]) <= 1  # square tiles
    assert rows[0] < 0.45 * widths[0]  # the title and captions sit right above: no empty band
    assert png.shape[0] - rows[-1] < 0.1 * widths[0]


def test_eval_with_non_utf8_file_names_draws_its_plots(tiny_checkpoint, tmp_path):
    """Photos named in non-UTF-8 bytes: matplotlib refused the raw names in errors.png (TypeError, exit 1 after the work)."""
    import os

    from conftest import write_image_folder

    from pawlens.train.report import evaluate_checkpoint

    data = write_image_folder(tmp_path / "data", n_per_class=8, size=40)
    for i, f in enumerate(sorted((data / "cat").iterdir()) + sorted((data / "dog").iterdir())):
        os.rename(os.fsencode(f), os.fsencode(f.parent) + b"/caf\xe9_%d.png" % i)
    out = tmp_path / "eval"
    m = evaluate_checkpoint(str(tiny_checkpoint), str(data), str(out), split="all")
    assert m["n"] == 16 and m["accuracy"] < 1.0, "the untrained model gets some wrong: their names are drawn"
    assert (out / "errors.png").stat().st_size > 0 and (out / "confusion_matrix.png").is_file()
