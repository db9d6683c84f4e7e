"""train.report: metrics against hand-computed values, the plots, the error grid and its ordering."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pawlens.train.report import classification_metrics, confident_errors, confusion_matrix, evaluate_samples, plot_curves
from PIL import Image

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
