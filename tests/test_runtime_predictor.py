"""Predictor: raw frames of any size and mode in, label + probabilities + timing out, as the training transform sees them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pawlens.errors import ArtifactError, InputError
from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_from_checkpoint
from pawlens.models.preprocess import load_image, torch_eval_transform
from pawlens.runtime.ort_runner import OrtRunner
from pawlens.runtime.predictor import Predictor, softmax
from pawlens.runtime.torch_runner import TorchRunner


def test_softmax_stable():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.5, 0.5]], atol=1e-6)


@pytest.mark.parametrize("shape", [(32, 32, 3), (480, 640, 3), (640, 480, 3), (7, 300, 3), (1, 1, 3), (50, 60), (40, 40, 4)])
def test_frames_of_any_size_and_mode(rt_tiny_onnx, shape):
    rng = np.random.default_rng(sum(shape))
    frame = rng.integers(0, 256, size=shape, dtype=np.uint8)
    with Predictor(OrtRunner(rt_tiny_onnx["fp32"])) as pred:
        p = pred.predict(frame)
    assert p.label in ("cat", "dog") and p.probs.shape == (2,) and abs(float(p.probs.sum()) - 1) < 1e-5
    assert p.confidence == pytest.approx(float(p.probs.max())) and p.class_names == ["cat", "dog"]
    assert p.preprocess_ms > 0 and p.infer_ms > 0 and p.total_ms >= p.infer_ms


def test_matches_the_training_transform(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    cfg = preprocess_from_checkpoint(ckpt)
    model = model_from_checkpoint(ckpt)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in ((45, 80, 3), (90, 33, 3), (32, 32, 3))]
    with Predictor(TorchRunner(ckpt)) as pred:
        preds = pred.predict_batch(frames)
    tf = torch_eval_transform(cfg)
    with torch.no_grad():
        ref = model(torch.stack([tf(f) for f in frames])).numpy()
    for p, r in zip(preds, ref):
        np.testing.assert_allclose(p.logits, r, atol=1e-4)
        assert p.index == int(r.argmax())


def test_bgr_frames_and_bad_input(rt_tiny_onnx):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    with Predictor(OrtRunner(rt_tiny_onnx["fp32"])) as pred:
        a = pred.predict(rgb)
        b = pred.predict(np.ascontiguousarray(rgb[..., ::-1]), bgr=True)
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
        with pytest.raises(InputError, match=r"\(H, W, 3\)"):
            pred.predict(np.zeros((4, 4, 5), np.uint8))


@pytest.mark.realdata
def test_real_photos_all_backends_agree(rt_trained_baseline):
    frames = [load_image(p) for p in rt_trained_baseline["photos"]]
    labels = {}
    for key in ("pt", "fp32"):
        from pawlens.runtime.factory import make_predictor

        with make_predictor(rt_trained_baseline[key]) as pred:
            labels[key] = [p.label for p in pred.predict_batch(frames)]
    assert labels["pt"] == labels["fp32"] and len(set(labels["pt"])) == 2


def test_predictor_needs_class_names():
    class _Bare(TorchRunner):
        pass

    r = _Bare(torch.nn.Linear(2, 2))
    with pytest.raises(ArtifactError, match="no class names"):
        Predictor(r)
