"""CamExplainer: Grad-CAM for raw frames, on the PyTorch reference, with the heat map at frame resolution.

    with CamExplainer("runs/train/x/best.pt") as cam:      # builds the model + GradCAM in this thread
        r = cam.explain(frame_rgb)                          # (H, W, 3) uint8 RGB, any size
        r.heatmap                                           # (H, W) float32 in [0, 1]
        overlay(frame_rgb, r.heatmap)                       # models.gradcam.overlay

Grad-CAM needs gradients, so it always runs on the PyTorch checkpoint (fp32), whatever backend serves
the predictions.  The model sees the centre crop of the resized frame (see
:mod:`models.preprocess`); the heat map is placed back onto that region of the frame and is zero
outside it.

Class names, preprocessing and the target layer (``models.registry.model_info(arch).cam_layer``) come
from the checkpoint.  Not thread-safe: activate and use it in one thread (the GUI's CAM worker).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pawlens.errors import InputError
from pawlens.models.preprocess import PreprocessConfig, crop_box, preprocess_numpy, resized_shape

from .formats import ENGINE, ONNX
from .predictor import softmax


@dataclass
class CamResult:
    heatmap: np.ndarray  # (H, W) float32 in [0, 1], frame resolution
    class_index: int
    label: str
    probs: np.ndarray  # (C,) float32, the reference model's probabilities
    ms: float  # preprocessing + Grad-CAM + mapping back, milliseconds
    extra: dict[str, Any] = field(default_factory=dict)


def heat_to_frame(heat: np.ndarray, frame_hw: tuple[int, int], cfg: PreprocessConfig) -> np.ndarray:
    """Map a model-input heat map ``(S, S)`` back onto the frame ``(H, W)`` it was cropped from.

    The frame was resized (shorter side -> ``cfg.resize_size``) and centre-cropped to S x S; the heat
    map is placed at the crop's position in the resized frame (zeros elsewhere), then resized to the
    frame with bilinear interpolation.
    """
    import cv2

    h, w = int(frame_hw[0]), int(frame_hw[1])
    s = cfg.input_size
    nh, nw = resized_shape(h, w, cfg)
    y0, x0 = crop_box(nh, nw, s)
    canvas = np.zeros((nh, nw), dtype=np.float32)
    hs = heat if heat.shape == (s, s) else cv2.resize(heat.astype(np.float32), (s, s), interpolation=cv2.INTER_LINEAR)
    canvas[y0 : y0 + s, x0 : x0 + s] = hs
    out = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else canvas
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


#: Below this many multiply-adds per frame, ``threads="auto"`` explains with one PyTorch thread (see :class:`CamExplainer`).
LIGHT_MACS = 1e9


class CamExplainer:
    """Grad-CAM explanations of raw frames with the PyTorch reference checkpoint.

    Args:
        checkpoint: a pawlens checkpoint path, or a checkpoint dict from ``load_checkpoint``.
        device: ``cpu`` (default), ``cuda`` or ``auto``.
        target_layer: override the registry's ``cam_layer`` (a dotted module path).
        threads: PyTorch's intra-op threads for the calling thread's work (``torch.set_num_threads`` in
            :meth:`activate`); ``None`` keeps PyTorch's default; ``"auto"`` (what the desktop app passes on the CPU):
            one thread for a light model (under :data:`LIGHT_MACS` multiply-adds per frame), else the default.  Beside the
            deployed model's inference a light model's ops are too small to split across threads without losing more to
            their synchronisation than they gain, while a heavy one still gains from a second thread (``pawlens
            bench-gui`` measures both; README, "Figures behind design choices").

        trace: run the model up to the Grad-CAM layer as one traced, frozen TorchScript call
            (:meth:`models.gradcam.GradCAM.trace_trunk`: seconds more in :meth:`activate`, checked against the eager
            model there).  Worth it for many frames: pawlens-predict passes True.  ``"background"`` (the desktop app):
            :meth:`activate` returns with the eager model, the trunk is traced on a copy of the model on a thread of
            its own, and the first :meth:`explain` after it is ready checks it and switches to it, so the first heat
            map does not wait for the trace.  :attr:`mode` says which path runs.

    On the CPU the model runs channels_last where its registry entry says that is faster (``channels_last_cpu``).
    """

    def __init__(self, checkpoint, *, device: str = "cpu", target_layer: str | None = None, threads: int | str | None = None,
                 trace: bool | str = False):
        from pawlens.models.checkpoint import load_checkpoint, preprocess_from_checkpoint
        from pawlens.models.registry import model_info

        if isinstance(checkpoint, dict):
            self.ckpt = checkpoint
        else:
            p = os.fspath(checkpoint)
            if p.lower().endswith((ONNX, ENGINE)):
                raise InputError(f"{p}: Grad-CAM needs the PyTorch checkpoint (.pt) the model was exported from; pass it with --reference")
            self.ckpt = load_checkpoint(p)
        self.arch: str = self.ckpt["arch"]
        self.class_names: list[str] = list(self.ckpt["class_names"])
        self.preprocess: PreprocessConfig = preprocess_from_checkpoint(self.ckpt)
        info = model_info(self.arch)
        self.target_layer = target_layer or info.cam_layer
        self.cam_head = info.cam_head if self.target_layer == info.cam_layer else None  # the head after the registry's layer
        if trace not in (True, False, "background"):
            raise InputError(f"[cam] trace must be True, False or 'background', got {trace!r}")
        self.trace = trace
        self._traced = None  # the background trace's result (a trunk, or why not), until explain() adopts it
        self._tracer: threading.Thread | None = None
        self.mode = "eager"  # how the Grad-CAM runs once active (GradCAM.mode)
        self.channels_last_cpu = bool(info.channels_last_cpu)
        if threads not in (None, "auto") and (not isinstance(threads, int) or threads < 1):
            raise InputError(f"[cam] threads must be >= 1, 'auto' or None (PyTorch's default), got {threads!r}")
        self.threads = threads
        self.device_requested = device
        self.device = device
        self.model = None
        self._cam = None
        self._channels_last = False

    # -- lifetime ---------------------------------------------------------------------------
    def activate(self) -> "CamExplainer":
        """Build the model and open the Grad-CAM hooks, in the calling thread."""
        if self._cam is not None:
            return self
        import torch

        from pawlens.models.checkpoint import model_from_checkpoint
        from pawlens.models.device import resolve_device
        from pawlens.models.gradcam import GradCAM

        self.device = resolve_device(self.device_requested)
        self.model = model_from_checkpoint(self.ckpt).to(self.device)
        on_cpu = str(self.device).startswith("cpu")
        threads = self.threads
        if threads == "auto":  # CPU threads only matter on the CPU
            from .ceiling import count_macs

            threads = 1 if on_cpu and count_macs(self.model, self.preprocess.input_size) < LIGHT_MACS else None
        if threads is not None:
            torch.set_num_threads(threads)
        self._channels_last = self.channels_last_cpu and on_cpu
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._cam = GradCAM(self.model, self.target_layer, head=self.cam_head).open()
        s = self.preprocess.input_size
        self._example = torch.zeros(1, 3, s, s, device=self.device)
        if self._channels_last:
            self._example = self._example.contiguous(memory_format=torch.channels_last)
        if self.trace == "background":
            self._traced = None
            # Not a daemon: a process that exits while the trace runs waits for it, so no torch code is still running
            # in a thread when the interpreter finalizes (a daemon thread there can abort the process).
            self._tracer = threading.Thread(target=self._trace_copy, args=(self._cam,), name="pawlens-cam-trace", daemon=False)
            self._tracer.start()
            self.mode = "eager (tracing the trunk in the background)"
            return self
        if self.trace:
            self._cam.trace_trunk(self._example)
        self.mode = self._cam.mode
        return self

    def _trace_copy(self, cam) -> None:
        """The background trace: a second copy of the model (no hooks, same device and layout) traced for ``cam``."""
        import torch

        from pawlens.models.checkpoint import model_from_checkpoint

        try:
            model = model_from_checkpoint(self.ckpt).to(self.device)
            if self._channels_last:
                model.to(memory_format=torch.channels_last)
            result = cam.build_trunk(self._example, model=model)
        except Exception as e:  # noqa: BLE001  (the eager path goes on; mode says why)
            result = f"eager (tracing failed: {type(e).__name__}: {e})"[:200]
        if self._cam is cam:  # still the same activation
            self._traced = result

    def adopt_trace(self) -> bool:
        """If a background trace has finished, check it against the eager model and use it from now on (:attr:`mode`
        says whether it was kept); True when that happened now.  :meth:`explain` calls it; call it from the same thread
        when idle, so a still image's reference does not stay eager."""
        if self._traced is None or self._cam is None:
            return False
        traced, self._traced = self._traced, None
        self.mode = self._cam.adopt_trunk(traced, self._example)
        self._tracer = None
        return True

    def wait_for_trace(self, timeout: float | None = None) -> bool:
        """Wait for a background trace to finish (True when none is running); the next :meth:`explain` adopts it."""
        t = self._tracer
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()

    def deactivate(self) -> None:
        """Release the model; a background trace still running finishes on its own copy and is dropped."""
        if self._cam is not None:
            self._cam.release()
        self._cam = None
        self.model = None
        self._traced = self._tracer = None

    @property
    def is_active(self) -> bool:
        return self._cam is not None

    def __enter__(self) -> "CamExplainer":
        return self.activate()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.deactivate()

    def __del__(self):
        try:
            self.deactivate()
        except Exception:
            pass

    # -- work -------------------------------------------------------------------------------
    def _prepared(self, prepared) -> np.ndarray | None:
        """``prepared``'s input as ``(1, 3, S, S)`` float32 when it was made with this reference's preprocessing, else None."""
        if prepared is None:
            return None
        x, cfg = prepared
        s = self.preprocess.input_size
        if cfg != self.preprocess or not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape[-3:] != (3, s, s):
            return None
        return x.reshape(1, 3, s, s)

    def explain(self, frame_rgb: np.ndarray, class_index: int | None = None, *, prepared=None) -> CamResult:
        """Grad-CAM of one raw frame.

        Args:
            frame_rgb: ``(H, W, 3)`` uint8 RGB (grayscale ``(H, W)`` and RGBA are accepted too).
            class_index: the class to explain; ``None`` explains the reference's top-1 class.
            prepared: ``(x, config)``: this frame already preprocessed, ``x`` ``(3, S, S)`` float32 made by
                ``preprocess_numpy`` with ``config`` (the deployed model's input, in the desktop app).  Used only when
                ``config`` equals this reference's preprocessing, so the result is the same as without it; otherwise
                the frame is preprocessed here.  Preprocessing a large frame is a real share of a heat map's time once
                the app's other threads compete for the cores, so it is done once per frame.
        """
        import torch

        if self._cam is None:
            raise InputError("[cam] CamExplainer is not active; call activate() or use it as a context manager")
        f = np.asarray(frame_rgb)
        if f.ndim not in (2, 3) or f.shape[0] < 1 or f.shape[1] < 1:
            raise InputError(f"[cam] expected an (H, W, 3) uint8 RGB frame, got shape {f.shape}")
        if class_index is not None and not 0 <= int(class_index) < len(self.class_names):
            raise InputError(f"[cam] class_index {class_index} out of range; the model has {len(self.class_names)} classes")
        self.adopt_trace()
        t0 = time.perf_counter()
        x = self._prepared(prepared)
        if x is None:
            x = preprocess_numpy([f], self.preprocess)
        x = torch.from_numpy(x).to(self.device)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        heat, logits = self._cam(x, class_index=class_index)
        full = heat_to_frame(heat, f.shape[:2], self.preprocess)
        probs = softmax(logits[None].astype(np.float32))[0]
        idx = int(probs.argmax()) if class_index is None else int(class_index)
        ms = (time.perf_counter() - t0) * 1e3
        return CamResult(full, idx, self.class_names[idx], probs, ms, extra={"logits": logits, "input_heatmap": heat})
