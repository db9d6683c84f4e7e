"""Grad-CAM on the PyTorch reference model, and a pure NumPy/OpenCV overlay (the one colouring of a heat map).

    with GradCAM(model, "layer4") as cam:                 # hooks live only inside the block
        heat, logits = cam(x)                             # x: (1, 3, S, S) float tensor
    rgb = overlay(frame_rgb, heat, alpha=0.6)             # uint8 RGB, heat resized to the frame; cold parts untouched

How it is computed (Selvaraju et al., 2017): the class score's gradient with respect to the target
layer's activations ``A`` (K channels), averaged over space, weights the channels; the heat map is
``relu(sum_k w_k * A_k)``, upsampled bilinearly to the input size and divided by its maximum.

Only the part of the network after the target layer is differentiated: a forward hook detaches the
layer's output and marks it as requiring a gradient, the parameters' ``requires_grad`` is switched
off while the block is open, and ``torch.autograd.grad(score, activations)`` replaces a full
``backward()``.  On this CPU that is about one forward pass plus 5-20 ms, against ~3x that for the
classic hook-and-backward version, with the same heat maps.

The target layer for each architecture is ``models.registry.model_info(arch).cam_layer``
(``layer4`` for ResNet50, ``features.block4`` for the baseline).

A traced trunk, for many frames of one size (the desktop app)::

    cam = GradCAM(model, "bn2", head=lambda m, a: m.forward_head(a)).open()
    cam.trace_trunk(torch.randn(1, 3, 224, 224))          # -> "traced" or "eager (why)"

``head`` is the part of the network after the target layer (the registry's ``cam_head``).  The part before it is
traced and frozen with TorchScript (BatchNorm folded into the convolutions, the weights constants) and runs as one
call; only ``head`` runs eagerly, with autograd.  The frozen trunk skips the per-op dispatch and the separate
BatchNorm passes (README, "Figures behind design choices", has the speed-up measured), and one call does not hand
the interpreter lock back and forth ~150 times, which other Python threads (a GUI)
otherwise make slow.  A trace holds for its input shape only (other shapes take the eager path), and it is checked
against the eager model on a random input before it is used.  ``torch.jit`` is deprecated in favour of
``torch.compile``, which needs a C++ compiler and tens of seconds on a CPU; where tracing fails, the eager path stays.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from typing import Any, Callable

import numpy as np

from pawlens.errors import InputError, one_line

__all__ = ["GradCAM", "blend", "heat_rgba", "overlay", "resolve_layer"]


def resolve_layer(model, target_layer) -> Any:
    """Return the module ``target_layer`` names (a dotted path such as ``"layer4"``) or is."""
    from torch import nn

    if isinstance(target_layer, nn.Module):
        if not any(m is target_layer for m in model.modules()):
            raise InputError("[gradcam] the target layer is not a sub-module of the model")
        return target_layer
    if not isinstance(target_layer, str):
        raise InputError(f"[gradcam] target_layer must be a module path or an nn.Module, got {type(target_layer).__name__}")
    try:
        return model.get_submodule(target_layer)
    except AttributeError:
        names = [n for n, m in model.named_children()]
        raise InputError(f"[gradcam] the model has no layer {target_layer!r}; top-level layers: {', '.join(names)}") from None


class GradCAM:
    """Gradient-weighted class activation maps for one target layer of a classifier.

    Args:
        model: an ``nn.Module`` returning ``(N, C)`` logits.  It is put in eval mode.
        target_layer: dotted module path (``"layer4"``) or the module itself.

        head: ``head(model, activations) -> logits``, the part of the network after the target layer; it enables
            :meth:`trace_trunk`.

    Use it as a context manager: the forward hook is registered on ``__enter__`` and removed on
    ``__exit__`` (and in ``__del__`` as a safety net); the parameters' ``requires_grad`` flags are
    switched off inside the block and restored afterwards.  Not thread-safe: one instance per thread.
    """

    #: a traced trunk must give the eager model's logits within this (times max(1, their largest magnitude))
    TRACE_TOLERANCE = 1e-3
    #: ... and its heat map (values in [0, 1]) within this
    TRACE_HEAT_TOLERANCE = 1e-2

    def __init__(self, model, target_layer, head: Callable | None = None):
        self.model = model.eval()
        self.layer = resolve_layer(model, target_layer)
        self.target_layer = target_layer if isinstance(target_layer, str) else type(target_layer).__name__
        self.head = head
        self._handle = None
        self._saved_requires_grad: list[tuple[Any, bool]] = []
        self._capture = False
        self._acts = None
        self._trunk = None  # frozen TorchScript of the model up to the target layer (trace_trunk)
        self._trunk_key: tuple | None = None  # (shape, dtype, device, memory format) it was traced for
        #: how __call__ computes: "eager" (hooks on the whole model) or "traced" (see trace_trunk); with the reason
        self.mode = "eager (not traced)"

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> "GradCAM":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # never swallows the exception
        self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass

    def open(self) -> "GradCAM":
        """Register the hook and freeze the parameters (what ``__enter__`` does)."""
        if self._handle is not None:
            return self
        self._saved_requires_grad = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in self._saved_requires_grad:
            p.requires_grad_(False)
        ref = weakref.ref(self)  # the hook must not keep the GradCAM alive (so __del__ can run)

        def hook(_module, _inp, out):
            cam = ref()
            if cam is None or not cam._capture:
                return None
            acts = out.detach().requires_grad_(True)
            cam._acts = acts
            return acts.clone()  # a non-leaf, so an in-place op after the layer cannot hit the leaf

        self._handle = self.layer.register_forward_hook(hook)
        return self

    def release(self) -> None:
        """Remove the hook and restore ``requires_grad``; safe to call twice."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        for p, flag in self._saved_requires_grad:
            p.requires_grad_(flag)
        self._saved_requires_grad = []
        self._acts = None
        self._trunk = None
        self._trunk_key = None
        self.mode = "eager (not traced)"

    # -- the traced trunk -------------------------------------------------------------------
    @staticmethod
    def _key(x) -> tuple:
        import torch

        cl = x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return tuple(x.shape), x.dtype, x.device, cl

    def trace_trunk(self, example) -> str:
        """Trace and freeze the model up to the target layer for inputs like ``example``; returns :attr:`mode`.

        ``example``: a ``(1, 3, S, S)`` tensor of the shape, dtype, device and memory format later calls use (its values
        do not matter: the check uses random values of that kind).  The traced path is kept only when it gives the
        eager model's logits (:attr:`TRACE_TOLERANCE`) and heat map (:attr:`TRACE_HEAT_TOLERANCE`); otherwise, or when
        tracing fails, every call stays eager and :attr:`mode` says why.  The same in two steps, the slow one on another
        thread: :meth:`build_trunk` (on a copy of the model), then :meth:`adopt_trunk`.
        """
        if self._handle is None:
            raise InputError("[gradcam] open the GradCAM (or use it as a context manager) before trace_trunk()")
        return self.adopt_trunk(self.build_trunk(example), example)

    def _probe(self, example):
        import torch

        gen = torch.Generator().manual_seed(0)
        probe = torch.randn(tuple(example.shape), generator=gen).to(dtype=example.dtype, device=example.device)
        return probe.contiguous(memory_format=torch.channels_last) if self._key(example)[3] else probe

    def build_trunk(self, example, model=None):
        """The frozen TorchScript of ``model`` (default: this GradCAM's) up to the target layer, or a ``str`` saying why
        there is none.  Reads nothing of this GradCAM's state but its settings, so with ``model`` a separate copy (same
        weights, device and memory format) it can run on another thread while this one explains eagerly."""
        import torch

        if self.head is None:
            return "eager (no head function for this architecture)"
        probe = self._probe(example)
        try:
            m = self.model if model is None else model.eval()
            wrapper = _trunk_module(m, self.layer if model is None else resolve_layer(m, self.target_layer))
            _quiet_tracer()
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # torch.jit's deprecation notice and tracer warnings: the check decides
                trunk = torch.jit.freeze(torch.jit.trace(wrapper.eval(), probe, check_trace=False))
                for _ in range(2):  # the profiling executor optimises the graph on the first calls
                    trunk(probe)
        except Exception as e:  # noqa: BLE001  (any failure of the tracer leaves the eager path)
            return f"eager (tracing failed: {one_line(e, 160)})"
        return trunk

    def adopt_trunk(self, trunk, example) -> str:
        """Use ``trunk`` (from :meth:`build_trunk`) from now on if it gives the eager model's logits and heat map on a
        random input like ``example``; returns :attr:`mode` (``traced``, or ``eager (...)`` with the reason)."""
        if self._handle is None:
            raise InputError("[gradcam] open the GradCAM (or use it as a context manager) before adopt_trunk()")
        self._trunk, self._trunk_key = None, None
        if isinstance(trunk, str):
            self.mode = trunk
            return self.mode
        probe = self._probe(example)
        heat_e, logits_e = self(probe, class_index=0)  # one class for both: random logits may tie
        self._trunk, self._trunk_key = trunk, self._key(probe)
        try:
            heat_t, logits_t = self(probe, class_index=0)
        except Exception as e:  # noqa: BLE001
            self._trunk, self._trunk_key = None, None
            self.mode = f"eager (the traced path failed: {one_line(e, 160)})"
            return self.mode
        scale = max(1.0, float(np.abs(logits_e).max()))
        d_logits = float(np.abs(logits_t - logits_e).max())
        d_heat = float(np.abs(heat_t - heat_e).max())
        if not (d_logits <= self.TRACE_TOLERANCE * scale and d_heat <= self.TRACE_HEAT_TOLERANCE):
            self._trunk, self._trunk_key = None, None
            self.mode = f"eager (the traced trunk differs from the model: logits by {d_logits:.2g}, heat by {d_heat:.2g})"
            return self.mode
        self.mode = "traced"
        return self.mode

    # -- computation ------------------------------------------------------------------------
    def __call__(self, x, class_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Heat map and logits for one image.

        Args:
            x: ``(1, 3, S, S)`` float tensor (already preprocessed), on the model's device.
            class_index: the class to explain; ``None`` explains the predicted (top-1) class.

        Returns:
            ``(heat, logits)``: heat ``(S, S)`` float32 in [0, 1] (all zeros when no location
            supports the class), logits ``(C,)`` float32.
        """
        import torch
        import torch.nn.functional as F

        if self._handle is None:
            raise InputError("[gradcam] use GradCAM inside 'with GradCAM(model, layer) as cam:' (hooks are not registered)")
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise InputError(f"[gradcam] expected a (1, 3, S, S) tensor, got {shape}")
        param = next(self.model.parameters(), None)
        if param is not None:
            x = x.to(device=param.device, dtype=param.dtype)
        traced = self._trunk is not None and self._key(x) == self._trunk_key
        self._capture = not traced
        try:
            with torch.inference_mode(False):
                x = x.detach().clone()  # a normal tensor even if the caller made it under inference_mode
                if traced:
                    with torch.no_grad():
                        acts = self._trunk(x)
                    acts = acts.detach().requires_grad_(True)
                with torch.enable_grad():
                    logits = self.head(self.model, acts) if traced else self.model(x)
                    acts = acts if traced else self._acts
                    if acts is None:
                        raise InputError(f"[gradcam] the target layer {self.target_layer!r} did not run in the forward pass")
                    n_classes = logits.shape[1]
                    idx = int(logits[0].argmax()) if class_index is None else int(class_index)
                    if not 0 <= idx < n_classes:
                        raise InputError(f"[gradcam] class_index {class_index} out of range; the model has {n_classes} classes")
                    (grads,) = torch.autograd.grad(logits[0, idx], acts)
            with torch.no_grad():
                weights = grads.mean(dim=(2, 3), keepdim=True)
                cam = torch.relu((weights * acts).sum(dim=1, keepdim=True))
                cam = F.interpolate(cam.float(), size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
                peak = float(cam.max())
                heat = (cam / peak) if peak > 0 else torch.zeros_like(cam)
                heat = heat.clamp_(0.0, 1.0).cpu().numpy().astype(np.float32, copy=False)
                out = logits[0].detach().float().cpu().numpy()
        finally:
            self._capture = False
            self._acts = None
        return heat, out


class _Stop(Exception):
    """Raised by the trunk's hook (:func:`_trunk_module`) once the target layer has run: the rest is not needed."""


def _quiet_tracer() -> None:
    """Ignore torch.jit's deprecation notices and tracer warnings for good (the trace is checked against the eager model
    instead).  ``catch_warnings`` alone is not enough when the trace runs on a background thread: the filters are
    process-wide, and another thread leaving its own ``catch_warnings`` restores them mid-trace."""
    import torch

    warnings.filterwarnings("ignore", message=r"`torch\.jit\.(freeze|trace|script)` is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)


def _trunk_module(model, layer):
    from torch import nn

    class Trunk(nn.Module):
        """``model`` run up to ``layer``; returns that layer's output (what :meth:`GradCAM.trace_trunk` traces)."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            box = []

            def stop(_module, _inp, out):
                box.append(out)
                raise _Stop

            handle = layer.register_forward_hook(stop)
            try:
                self.model(x)
            except _Stop:
                pass
            finally:
                handle.remove()
            if not box:
                raise InputError("[gradcam] the target layer did not run in the forward pass")
            return box[0]

    return Trunk()


#: Exponent of the per-pixel overlay alpha: alpha = heat ** ALPHA_GAMMA, so the parts of the picture the model does not
#: use stay as they are (a uniform blend would tint them dark blue, JET's colour for 0).
ALPHA_GAMMA = 0.75


@functools.lru_cache(maxsize=1)
def _rgba_table() -> np.ndarray:
    """(256, 1, 4) uint8: for each 8-bit heat level, JET's colour premultiplied by its alpha, and the alpha (``cv2.LUT``'s table)."""
    import cv2

    levels = np.arange(256, dtype=np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(levels[:, None], cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)[:, 0].astype(np.float32)
    a = (levels.astype(np.float32) / 255.0) ** ALPHA_GAMMA
    table = np.concatenate([rgb * a[:, None], a[:, None] * 255.0], axis=1)
    return (table + 0.5).astype(np.uint8).reshape(256, 1, 4)


def heat_rgba(heat: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """(H, W) heat in [0, 1] -> (H, W, 4) uint8 premultiplied RGBA: OpenCV's JET colours, alpha ``heat ** ALPHA_GAMMA``.

    The one colouring of a heat map: :func:`overlay` (predict, the demo's grid) and the desktop app's layer use it.
    ``weight``: an optional (H, W) factor in [0, 1] on the whole layer (the desktop app feathers the map at the edges of
    the model's view).  The heat is taken in 8-bit levels and looked up in one table (``cv2.LUT``), the weight applied
    in 8 bits: several times faster than the same blend in float (it runs on the UI thread for every frame), within
    2/255 of the float result.
    """
    import cv2

    h = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    h8 = (h * 255.0 + 0.5).astype(np.uint8)
    out = cv2.LUT(cv2.merge([h8, h8, h8, h8]), _rgba_table())
    if weight is not None:
        w8 = (np.clip(np.asarray(weight, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        out = cv2.multiply(out, cv2.merge([w8, w8, w8, w8]), scale=1.0 / 255.0)  # rounds; rgb <= alpha still holds
    return out


def blend(rgb: np.ndarray, rgba: np.ndarray, opacity: float) -> np.ndarray:
    """Draw a premultiplied RGBA layer over an RGB frame at ``opacity`` (source-over, as a Qt painter does).

    ``out = rgb * (1 - opacity * a) + opacity * rgba_rgb``.
    """
    if rgb.shape[:2] != rgba.shape[:2]:
        raise ValueError(f"overlay {rgba.shape[:2]} and frame {rgb.shape[:2]} differ in size")
    k = float(min(1.0, max(0.0, opacity)))
    a = rgba[..., 3:4].astype(np.float32) * (k / 255.0)
    out = rgb.astype(np.float32) * (1.0 - a) + rgba[..., :3].astype(np.float32) * k
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def blend_weights(rgba: np.ndarray, opacity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`blend` prepared for many frames of one layer: ``(colour, w_frame, w_colour)`` for :func:`blend_fast`."""
    k = float(min(1.0, max(0.0, opacity)))
    a = rgba[..., 3].astype(np.float32) / 255.0
    w = (k * a).astype(np.float32)
    colour = np.clip(rgba[..., :3].astype(np.float32) / np.maximum(a, 1e-6)[..., None] + 0.5, 0, 255).astype(np.uint8)
    return colour, (1.0 - w).astype(np.float32), w


def blend_fast(rgb: np.ndarray, weights: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """:func:`blend` with :func:`blend_weights` made once (OpenCV's per-pixel weighted sum; within 1 level of it)."""
    import cv2

    colour, w_frame, w_colour = weights
    return cv2.blendLinear(np.ascontiguousarray(rgb), colour, w_frame, w_colour)


def overlay(rgb_uint8: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heat map onto an RGB image: :func:`heat_rgba` drawn over it at ``alpha`` (cold regions stay untouched).

    :param rgb_uint8: ``(H, W, 3)`` uint8 RGB image.
    :param heat: ``(h, w)`` float heat map with values in [0, 1], any size (resized bilinearly to H x W).
    :param alpha: opacity of the colour layer where the heat is 1, in [0, 1] (0 = the image only).
    :returns: ``(H, W, 3)`` uint8 RGB.
    :raises InputError: wrong shapes, dtypes or ranges.
    """

    img = np.asarray(rgb_uint8)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError(f"[gradcam] overlay needs an (H, W, 3) uint8 RGB image, got {img.dtype} {img.shape}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"[gradcam] alpha must lie in [0, 1], got {alpha}")
    return blend(img, overlay_layer(heat, img.shape[:2]), alpha)


def overlay_layer(heat: np.ndarray, shape: tuple[int, int]):
    """The colour layer :func:`overlay` draws for ``heat`` on an image of ``shape`` (H, W): checked, resized, coloured.
    Made once, it can be blended onto several frames of that size (:func:`blend`), as an annotated video's frames
    between two heat maps are."""
    import cv2

    h = np.asarray(heat, dtype=np.float32)
    if h.ndim != 2 or h.shape[0] < 1 or h.shape[1] < 1:
        raise InputError(f"[gradcam] overlay needs a 2-D heat map, got shape {h.shape}")
    if not np.isfinite(h).all():
        raise InputError("[gradcam] the heat map contains NaN or infinity")
    if h.min() < -1e-6 or h.max() > 1 + 1e-6:
        raise InputError(f"[gradcam] heat map values must lie in [0, 1], got [{h.min():.3g}, {h.max():.3g}]")
    H, W = shape
    if h.shape != (H, W):
        h = cv2.resize(h, (W, H), interpolation=cv2.INTER_LINEAR)
    return heat_rgba(h)
