"""The Grad-CAM overlay in NumPy: heat map -> premultiplied RGBA layer, and blending it onto a frame.

    layer = colourise(shrink(heat, OVERLAY_MAX_SIDE))    # (h, w, 4) uint8, what the view draws scaled up
    rgb = blend(frame_rgb, layer_at_frame_size, 0.6)      # what the view shows, as an image (the snapshot)

No Qt here: the CAM worker makes the layer in its thread, the view and the snapshot draw it.
"""

from __future__ import annotations

import numpy as np

#: Exponent of the per-pixel overlay alpha: alpha = heat ** ALPHA_GAMMA (cold regions stay clear).
ALPHA_GAMMA = 0.75


def colourise(heat: np.ndarray) -> np.ndarray:
    """(H, W) heat in [0, 1] -> (H, W, 4) uint8 premultiplied RGBA for drawing over the frame.

    Colours come from ``models.gradcam.heat_colours`` (OpenCV's JET, the same as ``pawlens-predict``'s
    overlays); the alpha of each pixel is ``heat ** ALPHA_GAMMA``, so the parts of the frame the model
    does not use stay readable, and the window's opacity slider scales the whole layer.  Premultiplied,
    so Qt draws it without converting.
    """
    from pawlens.models.gradcam import heat_colours

    h = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    a = h ** ALPHA_GAMMA
    out = np.empty(h.shape + (4,), dtype=np.uint8)
    out[..., :3] = (heat_colours(h).astype(np.float32) * a[..., None] + 0.5).astype(np.uint8)
    out[..., 3] = (a * 255.0 + 0.5).astype(np.uint8)
    return out


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


def blend(rgb: np.ndarray, rgba: np.ndarray, opacity: float) -> np.ndarray:
    """Draw a premultiplied RGBA layer over an RGB frame at ``opacity``: what the view's painter does, in NumPy.

    ``out = rgb * (1 - opacity * a) + opacity * rgba_rgb`` (source-over with premultiplied colours).
    """
    if rgb.shape[:2] != rgba.shape[:2]:
        raise ValueError(f"overlay {rgba.shape[:2]} and frame {rgb.shape[:2]} differ in size")
    k = float(min(1.0, max(0.0, opacity)))
    a = rgba[..., 3:4].astype(np.float32) * (k / 255.0)
    out = rgb.astype(np.float32) * (1.0 - a) + rgba[..., :3].astype(np.float32) * k
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


__all__ = ["ALPHA_GAMMA", "OVERLAY_MAX_SIDE", "blend", "colourise", "shrink"]
