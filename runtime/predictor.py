"""Predictor: raw RGB frame(s) in, label + probabilities + timing out.

    runner = make_runner("model.onnx")               # runtime.factory
    with Predictor(runner) as pred:
        p = pred.predict(frame)                      # frame: (H, W, 3) uint8 RGB, any size
        p.label, p.probs, p.infer_ms, p.preprocess_ms

Class names and preprocessing come from the runner's artifact metadata unless given.  The
preprocessing is :func:`models.preprocess.preprocess_numpy`, the same definition training used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pawlens.errors import ArtifactError, MissingMetadata
from pawlens.models.preprocess import PreprocessConfig, preprocess_numpy

from .base import Runner


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Prediction:
    index: int
    label: str
    probs: np.ndarray  # (C,) float32, sums to 1
    logits: np.ndarray  # (C,) float32
    class_names: list[str]
    preprocess_ms: float
    infer_ms: float  # this frame's share of the batch's inference time
    postprocess_ms: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: the (3, S, S) float32 input the model saw, only with ``predict(..., keep_input=True)`` (the desktop app hands it to
    #: its Grad-CAM worker, which then need not preprocess the frame again); 600 KB at 224 px, so not kept by default
    input: np.ndarray | None = None

    @property
    def confidence(self) -> float:
        return float(self.probs[self.index])

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.infer_ms + self.postprocess_ms


class Predictor:
    """Wraps one Runner.  Not thread-safe; activate it in the thread that uses it."""

    def __init__(self, runner: Runner, *, class_names: Sequence[str] | None = None, preprocess: PreprocessConfig | None = None):
        self.runner = runner
        meta = getattr(runner, "meta", None)
        self.class_names = list(class_names) if class_names else (list(meta.class_names) if meta else None)
        self.preprocess = preprocess or (meta.preprocess if meta else None)
        if self.class_names is None or self.preprocess is None:
            raise MissingMetadata(
                f"{getattr(runner, 'path', runner.name)}: no class names / preprocessing in the model's metadata; "
                "export it with pawlens-export or pass them explicitly"
            )

    def activate(self) -> "Predictor":
        if not self.runner.is_active:
            self.runner.activate()
        return self

    def deactivate(self) -> None:
        self.runner.deactivate()

    def __enter__(self) -> "Predictor":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    @property
    def is_active(self) -> bool:
        return self.runner.is_active

    def describe(self) -> dict[str, Any]:
        return self.runner.describe()

    def predict(self, frame: np.ndarray, *, bgr: bool = False, keep_input: bool = False) -> Prediction:
        return self.predict_batch([frame], bgr=bgr, keep_input=keep_input)[0]

    def predict_batch(self, frames: Sequence[np.ndarray], *, bgr: bool = False, keep_input: bool = False) -> list[Prediction]:
        """Classify raw frames; ``keep_input``: each :class:`Prediction` keeps the preprocessed input it came from."""
        t0 = time.perf_counter()
        x = preprocess_numpy(list(frames), self.preprocess, bgr=bgr)
        t1 = time.perf_counter()
        logits = self.runner.infer(x)
        t2 = time.perf_counter()
        probs = softmax(logits.astype(np.float32))
        idx = probs.argmax(axis=1)
        t3 = time.perf_counter()
        n = len(frames)
        if logits.shape[1] != len(self.class_names):
            raise ArtifactError(f"{getattr(self.runner, 'path', self.runner.name)}: the model outputs {logits.shape[1]} classes but its metadata "
                                f"names {len(self.class_names)} ({', '.join(map(str, self.class_names))}); re-export it with pawlens-export")
        return [
            Prediction(int(idx[i]), self.class_names[int(idx[i])], probs[i], logits[i], self.class_names,
                       (t1 - t0) * 1e3 / n, (t2 - t1) * 1e3 / n, (t3 - t2) * 1e3 / n, input=x[i] if keep_input else None)
            for i in range(n)
        ]
