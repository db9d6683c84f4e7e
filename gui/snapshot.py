"""Snapshots: the displayed frame with its overlay, and a footer with the label, the bars and the figures, as a PNG.

    img = compose_snapshot(SnapshotContent(rgb=frame.rgb, layer=cam.colour, opacity=0.6, prediction=pred,
                                           lines=["inference 4.1 ms", "..."], caption="Grad-CAM ..."), font)
    write_png(img, "runs/gui/snap.png")        # atomic; OSError with the reason when it cannot be written

The window gathers what it shows into a :class:`SnapshotContent`; this module only draws and writes it
(``write_png`` is safe to call from a plain thread: QImage and QBuffer need no event loop).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui

from .overlay import blend
from .session import pct
from .theme import C_ACCENT, C_BAR, C_MUTED, C_PANEL, C_PANEL_2, C_TEXT, C_WARN


@dataclass
class SnapshotContent:
    """What a snapshot shows (all of it already decided by the window)."""

    rgb: np.ndarray  # (H, W, 3) uint8, the frame on screen
    layer: np.ndarray | None = None  # premultiplied RGBA overlay of any size (resized to the frame), or None
    opacity: float = 0.6
    prediction: Any = None  # the deployed model's Prediction shown with the frame, or None
    lines: list[str] = field(default_factory=list)  # figures, backend, source: one muted line each
    caption: str = ""  # the overlay's caption
    caption_level: str = "info"  # info | warn
    model_view: tuple[float, float, float, float] | None = None  # (x, y, w, h) in frame pixels: the crop the model sees


def _frame_with_overlay(c: SnapshotContent) -> np.ndarray:
    rgb = c.rgb
    if c.layer is not None:
        layer = c.layer
        if layer.shape[:2] != rgb.shape[:2]:
            import cv2

            layer = cv2.resize(layer, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        rgb = blend(rgb, layer, c.opacity)
    return np.ascontiguousarray(rgb)


def _wrapped_height(font: QtGui.QFont, s: str, width: float) -> float:
    fm = QtGui.QFontMetrics(font)
    flags = int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.TextFlag.TextWordWrap)
    return float(fm.boundingRect(QtCore.QRect(0, 0, max(1, int(width)), 100000), flags, s).height())


def compose_snapshot(c: SnapshotContent, font: QtGui.QFont) -> QtGui.QImage:
    """The frame (at least 960 px wide) over a footer with the label, up to four bars, the figures and the caption."""
    rgb = _frame_with_overlay(c)
    H, W = rgb.shape[:2]
    out_w = max(960, W)
    scale = out_w / W
    img_h = int(round(H * scale))
    fs = max(1.0, out_w / 1280.0)
    pad = 24 * fs
    fx = pad + 580 * fs  # the figures' column
    line_f = QtGui.QFont(font)
    line_f.setPointSizeF(10 * fs)
    line_hs = [_wrapped_height(line_f, s, out_w - fx - pad) + 4 * fs for s in c.lines]
    footer = int(max(170 * fs, pad + sum(line_hs) + (52 * fs if c.caption else pad)))  # wrapped figures never run into the caption
    canvas = QtGui.QImage(out_w, img_h + footer, QtGui.QImage.Format.Format_RGB888)
    canvas.fill(QtGui.QColor(C_PANEL))
    src = QtGui.QImage(rgb.data, W, H, rgb.strides[0], QtGui.QImage.Format.Format_RGB888)
    p = QtGui.QPainter(canvas)
    p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, True)
    p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
    p.drawImage(QtCore.QRectF(0, 0, out_w, img_h), src)
    if c.model_view is not None:
        x, y, w, h = (v * scale for v in c.model_view)
        p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        p.setPen(QtGui.QPen(QtGui.QColor(16, 18, 22, 170), 3 * fs))  # a dark rule under the dashes: seen on bright frames too
        p.drawRect(QtCore.QRectF(x, y, w, h))
        p.setPen(QtGui.QPen(QtGui.QColor(232, 233, 236, 220), 1.5 * fs, QtCore.Qt.PenStyle.DashLine))
        p.drawRect(QtCore.QRectF(x, y, w, h))
        f = QtGui.QFont(font)
        f.setPointSizeF(9 * fs)
        p.setFont(f)
        fm = QtGui.QFontMetricsF(f)
        label = QtCore.QRectF(x + 6 * fs, y + 6 * fs, fm.horizontalAdvance("model's view") + 12 * fs, fm.height() + 6 * fs)
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor(16, 18, 22, 200))  # a dark tag: readable on a bright photo as on a dark one
        p.drawRoundedRect(label, 3 * fs, 3 * fs)
        p.setPen(QtGui.QColor(C_TEXT))
        p.drawText(label, int(QtCore.Qt.AlignmentFlag.AlignCenter), "model's view")
    y0 = img_h + pad
    font = QtGui.QFont(font)

    def text(x, y, s, size, colour=C_TEXT, bold=False, w=None):
        font.setPointSizeF(size * fs)
        font.setBold(bold)
        p.setFont(font)
        p.setPen(QtGui.QColor(colour))
        fm = QtGui.QFontMetrics(font)
        rect = QtCore.QRectF(x, y, w or out_w, fm.height() * 6)
        p.drawText(rect, int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.TextFlag.TextWordWrap), s)
        return fm.height()

    pred = c.prediction
    if pred is not None:
        text(pad, y0 - 6 * fs, str(pred.label), 26, bold=True)
        text(pad, y0 + 44 * fs, f"{pct(pred.probs[pred.index])}  ·  deployed model", 11, C_ACCENT)
        bx, bw = pad + 240 * fs, 300 * fs
        for k, (name, prob) in enumerate(list(zip(pred.class_names, pred.probs))[:4]):
            y = y0 + k * 26 * fs
            text(bx, y, f"{name}", 10, C_MUTED, w=bw * 0.7)
            font.setPointSizeF(10 * fs)
            p.setFont(font)
            p.drawText(QtCore.QRectF(bx, y, bw, 20 * fs), int(QtCore.Qt.AlignmentFlag.AlignRight), pct(prob))
            p.setPen(QtCore.Qt.PenStyle.NoPen)
            p.setBrush(QtGui.QColor(C_PANEL_2))
            p.drawRoundedRect(QtCore.QRectF(bx, y + 18 * fs, bw, 5 * fs), 2, 2)
            p.setBrush(QtGui.QColor(C_ACCENT if k == pred.index else C_BAR))
            p.drawRoundedRect(QtCore.QRectF(bx, y + 18 * fs, max(4.0, bw * float(prob)), 5 * fs), 2, 2)
    else:
        text(pad, y0, "no prediction (no model loaded)", 14, C_MUTED)
    y = y0
    for s, h in zip(c.lines, line_hs):  # each line below the previous one as wrapped, never on top of it
        text(fx, y, s, 10, C_MUTED, w=out_w - fx - pad)
        y += h
    if c.caption:
        text(pad, img_h + footer - 44 * fs, c.caption.replace("\n", "  ·  "), 10, C_WARN if c.caption_level == "warn" else C_TEXT,
             w=out_w - 2 * pad)
    p.end()
    return canvas


def write_png(img: QtGui.QImage, path: str) -> None:
    """Encode ``img`` as PNG and write it atomically; OSError (one line) when the folder is missing or unwritable."""
    from pawlens.fs import atomic_write_bytes

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"folder {folder} does not exist")
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not img.save(buf, "PNG"):
        raise OSError("PNG encoding failed")
    atomic_write_bytes(path, bytes(buf.data()))


__all__ = ["SnapshotContent", "compose_snapshot", "write_png"]
