"""The Grad-CAM overlay in NumPy: heat map -> premultiplied RGBA layer, and blending it onto a frame.

    box = model_view_box(720, 1280, cfg)         # (x, y, w, h): the centre crop the model sees, in frame pixels
    small = shrink(heat, OVERLAY_MAX_SIDE)
    layer = colourise(small, box=scale_box(box, 1280, small.shape[1]))   # (h, w, 4) uint8, feathered at the box
    rgb = blend(frame_rgb, layer_at_frame_size, 0.6)  # what the view shows, as an image (the snapshot)

The model sees only the centre crop of the resized frame (``models.preprocess``), so the heat map covers
only that box; its alpha fades to zero over the box's last :data:`FEATHER` of a side (no hard edge), and
the view draws the box itself, labelled.  No Qt here: the CAM worker makes the layer in its thread, the
view and the snapshot draw it.
"""

from __future__ import annotations

import numpy as np

from pawlens.models.gradcam import ALPHA_GAMMA, blend, heat_rgba

#: Box = (x, y, width, height) in pixels (floats).
Box = tuple[float, float, float, float]

#: The heat map's alpha fades out over this fraction of the model's view (each side), towards its edges.
FEATHER = 0.12

def model_view_box(h: int, w: int, cfg) -> Box:
    """The part of an ``h`` x ``w`` frame the model sees, (x, y, width, height) in frame pixels.

    ``cfg``: the model's ``PreprocessConfig`` (shorter side resized to ``resize_size``, centre crop of ``input_size``).
    """
    from pawlens.models.preprocess import crop_box, resized_shape

    nh, nw = resized_shape(int(h), int(w), cfg)
    s = cfg.input_size
    y0, x0 = crop_box(nh, nw, s)
    sx, sy = w / nw, h / nh
    return x0 * sx, y0 * sy, s * sx, s * sy


def model_view_or_none(hw: tuple[int, int], cfg) -> Box | None:
    """:func:`model_view_box`, or None where it is unknown (no config, e.g. a test fake) or the frame cannot be taken."""
    from pawlens.errors import PawlensError

    if cfg is None:
        return None
    try:
        return model_view_box(hw[0], hw[1], cfg)
    except (PawlensError, AttributeError, TypeError, ValueError):
        return None


def scale_box(box: Box, from_w: int, to_w: int) -> Box:
    """A box in an image ``from_w`` wide, in the same image scaled to ``to_w`` wide."""
    k = to_w / from_w
    return box[0] * k, box[1] * k, box[2] * k, box[3] * k


def feather(shape: tuple[int, int], box: Box, fraction: float = FEATHER) -> np.ndarray:
    """(H, W) float32 weights: 1 well inside ``box``, a smooth ramp to 0 over ``fraction`` of its side at its edges, 0 outside."""
    h, w = int(shape[0]), int(shape[1])
    x, y, bw, bh = box

    def ramp(n: int, start: float, size: float) -> np.ndarray:
        c = np.arange(n, dtype=np.float32) + 0.5  # pixel centres
        d = np.minimum(c - start, start + size - c)  # distance to the nearer edge (negative outside)
        t = np.clip(d / max(1e-6, fraction * size), 0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)  # smoothstep

    return np.outer(ramp(h, y, bh), ramp(w, x, bw)).astype(np.float32)


def colourise(heat: np.ndarray, box: Box | None = None) -> np.ndarray:
    """(H, W) heat in [0, 1] -> (H, W, 4) uint8 premultiplied RGBA for drawing over the frame.

    :func:`pawlens.models.gradcam.heat_rgba` (OpenCV's JET, alpha ``heat ** ALPHA_GAMMA``: the same colouring as
    ``pawlens-predict``'s and the demo's overlays), so the parts of the frame the model does not use stay readable, and
    the window's opacity slider scales the whole layer.  Premultiplied, so Qt draws it without converting.

    ``box``: the model's view in ``heat``'s pixels; the alpha is feathered to zero at its edges (:func:`feather`).
    """
    h = np.asarray(heat, dtype=np.float32)
    return heat_rgba(h, None if box is None else feather(h.shape[:2], box))


#: The colour layer is made at most this many pixels on its longer side: a Grad-CAM map is smooth (7x7
#: cells for ResNet50), so drawing it scaled up looks the same and costs the UI thread far less per frame.
OVERLAY_MAX_SIDE = 480


def shrink(heat: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = heat.shape[:2]
    s = max_side / max(h, w)
    if s >= 1.0:
        return heat
    return cv2.resize(heat, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


__all__ = ["ALPHA_GAMMA", "Box", "FEATHER", "OVERLAY_MAX_SIDE", "blend", "colourise", "feather", "model_view_box",
           "model_view_or_none", "scale_box", "shrink"]
