"""The Python API: a few thin calls into the stages, for scripts and notebooks.

    import pawlens

    model = pawlens.load("runs/export/lite0/best.int8.onnx")   # any artifact: .pt, .onnx, .engine
    p = model.predict("cat.jpg")                               # a path, an (H, W, 3) uint8 RGB array, or a list of them
    p.label, p.confidence
    cam = model.explain("cat.jpg")                             # Grad-CAM on the PyTorch checkpoint it was exported from
    picture = pawlens.overlay(pawlens.load_image("cat.jpg"), cam.heatmap)

    result = pawlens.fit(data="photos/", model="efficientnet_lite0", out="runs/train/mine")  # pawlens train's options
    report = pawlens.load(result.best_ckpt).export(formats=("onnx", "int8"))                 # gated as pawlens export

``import pawlens`` stays light: these names are imported on first use (``pawlens.__getattr__``).  Errors are the
commands' own (:class:`pawlens.errors.PawlensError`, one line each).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from pawlens.errors import InputError
from pawlens.models.gradcam import overlay
from pawlens.models.preprocess import load_image
from pawlens.runtime.formats import CHECKPOINT

__all__ = ["Model", "load", "fit", "overlay", "load_image"]

def _frame(x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (str, os.PathLike)):
        return load_image(x)
    raise InputError(f"expected an image path or an (H, W, 3) uint8 RGB array, got {type(x).__name__}")


def _many(source) -> tuple[list[np.ndarray], bool]:
    """(frames, whether one was given)."""
    if isinstance(source, (str, os.PathLike, np.ndarray)):
        return [_frame(source)], True
    if not isinstance(source, (list, tuple)):
        raise InputError(f"expected an image path, an (H, W, 3) uint8 RGB array or a list of them, got {type(source).__name__}")
    frames = [_frame(x) for x in source]
    if not frames:
        raise InputError("no images given")
    return frames, False


class Model:
    """One artifact, loaded for prediction (ONNX Runtime, OpenVINO, TensorRT or PyTorch, as ``backend`` says).

    Args:
        path: a pawlens checkpoint (``.pt``), ONNX file or TensorRT engine.  Treat files from elsewhere as untrusted:
            checkpoints load with ``weights_only``, but a runtime parses a graph or engine in full.
        backend, device: as ``pawlens predict --backend/--device`` (``auto`` picks the fastest measured here).
        reference: the ``.pt`` Grad-CAM runs on; found by sha256 beside an export when not given.
        class_names: for an ONNX file without pawlens metadata.
    """

    def __init__(self, path: str | os.PathLike, *, backend: str = "auto", device: str = "auto",
                 reference: str | os.PathLike | None = None, class_names: Sequence[str] | None = None):
        from pawlens.runtime.factory import make_predictor

        self.path = os.fspath(path)
        self._predictor = make_predictor(self.path, backend=backend, device=device, class_names=class_names)
        self._reference = os.fspath(reference) if reference is not None else None
        self._cam = None

    @property
    def class_names(self) -> list[str]:
        return list(self._predictor.class_names)

    def describe(self) -> dict[str, Any]:
        """What runs the model: backend, device, precision, threads (the runner's own account)."""
        return self._pred().describe()

    def _pred(self):
        if not self._predictor.is_active:
            self._predictor.activate()
        return self._predictor

    def predict(self, source, *, bgr: bool = False):
        """Classify an image path or an ``(H, W, 3)`` uint8 array (RGB; BGR with ``bgr=True``), or a list of them.

        Returns one :class:`~pawlens.runtime.predictor.Prediction` for one image, else a list (``.label``,
        ``.confidence``, ``.probs``)."""
        frames, one = _many(source)
        out = self._pred().predict_batch(frames, bgr=bgr)
        return out[0] if one else out

    def explain(self, source, class_index: int | None = None):
        """Grad-CAM of one image on the PyTorch reference: a :class:`~pawlens.runtime.cam.CamResult` whose ``heatmap``
        is ``(H, W)`` in [0, 1] at the image's resolution (draw it with :func:`overlay`)."""
        frames, one = _many(source)
        if not one:
            raise InputError("explain() takes one image (a path or an (H, W, 3) uint8 RGB array)")
        if self._cam is None:
            from pawlens.runtime.cam import CamExplainer
            from pawlens.runtime.reference import resolve_reference

            ref = resolve_reference(self.path, getattr(self._predictor.runner, "meta", None), self._reference)
            self._cam = CamExplainer(ref, trace=False).activate()
        return self._cam.explain(frames[0], class_index)

    def export(self, formats: Sequence[str] | str = ("onnx", "int8"), **options):
        """``pawlens export`` of this checkpoint: each format built and gated against PyTorch; returns the
        :class:`~pawlens.export.pipeline.ExportReport` (``.passed``, ``.artifacts``, ``.parity_md``).

        ``options`` are :func:`~pawlens.export.pipeline.export_all`'s (``out_dir``, ``parity_images``, ``calib``,
        ``exist_ok``...)."""
        from pawlens.runtime.factory import file_kind

        if file_kind(self.path) != CHECKPOINT:
            raise InputError(f"{self.path}: export starts from the PyTorch checkpoint (.pt), not an exported artifact")
        from pawlens.export.pipeline import export_all

        return export_all(self.path, formats=formats, **options)

    def close(self) -> None:
        if self._predictor.is_active:
            self._predictor.deactivate()
        if self._cam is not None:
            self._cam.deactivate()
            self._cam = None

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"pawlens.Model({self.path!r}, classes={self.class_names})"


def load(path: str | os.PathLike, **kw) -> Model:
    """:class:`Model` of any artifact (``backend``, ``device``, ``reference``, ``class_names`` as there)."""
    return Model(path, **kw)


def fit(**options):
    """``pawlens train`` from Python: ``options`` are its config keys (``data``, ``model``, ``epochs``, ``out``... see
    ``pawlens train --help``); returns the :class:`~pawlens.train.loop.TrainResult` (``best_ckpt``, ``metrics``)."""
    from pawlens.train.config import DEFAULTS
    from pawlens.train.loop import train

    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise InputError(f"fit(): unknown option(s) {', '.join(unknown)}; the options are pawlens train's: {', '.join(sorted(DEFAULTS))}")
    return train(dict(options))
