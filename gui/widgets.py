"""The window's own widgets: the frame view (with the Grad-CAM overlay and its caption), the probability bars, the banner.

    view = FrameView(); view.set_frame(frame); view.set_overlay(cam, "exact", "caption")
    bars = ProbBars(); bars.set_probs(["cat", "dog"], probs)
    banner = Banner(); banner.show_message("[artifact] m.onnx: ...", "error")

They draw what they are given and decide nothing: which overlay belongs to which frame is
:mod:`gui.session`'s business.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from .session import CamOutput, Frame, pct
from .theme import C_ACCENT, C_BAR, C_BG, C_ERROR, C_MUTED, C_PANEL_2, C_TEXT, C_WARN


class FrameView(QtWidgets.QWidget):
    """Draws the newest frame, large, aspect kept, on a dark-neutral ground, with the CAM overlay and its caption."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.frame: Frame | None = None
        self._img: QtGui.QImage | None = None
        self.cam: CamOutput | None = None
        self._ov_img: QtGui.QImage | None = None
        self._ov_for: CamOutput | None = None  # the result _ov_img was made from
        self.overlay_state = "none"  # none | exact | stale
        self.opacity = 0.6
        self.caption = ""
        self.caption_level = "info"  # info | warn
        self.paused = False
        self.model_view: tuple[float, float, float, float] | None = None  # (x, y, w, h) frame pixels: the crop the model sees
        self.placeholder = "Drop an image, a video or a folder here\nor choose a camera"
        self.painted_frame_id: int | None = None
        self.on_new_frame_painted: Callable[[int], None] | None = None

    @property
    def frame_id(self) -> int | None:
        return self.frame.id if self.frame else None

    @property
    def overlay_frame_id(self) -> int | None:
        return self.cam.frame.id if (self.cam is not None and self.overlay_state != "none") else None

    def set_frame(self, frame: Frame | None) -> None:
        if frame is self.frame:
            return
        self.frame = frame
        if frame is None:
            self._img = None
        else:
            a = frame.rgb
            self._img = QtGui.QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QtGui.QImage.Format.Format_RGB888)
        self.update()

    def set_overlay(self, cam: CamOutput | None, state: str, caption: str = "", level: str = "info") -> None:
        """Show ``cam`` in ``state`` with ``caption``; repaints only when one of them changed (the window calls this on
        every frame and every result: repainting each time doubled the paints and took CPU from Grad-CAM)."""
        before = (self.cam, self.overlay_state, self.caption, self.caption_level)
        if cam is None or state == "none":
            self.cam, self.overlay_state = (cam, "none")
        else:
            self.cam, self.overlay_state = cam, state
            if self._ov_for is not cam:  # per result, not per frame: another class explained on the same frame is a new map
                c = cam.colour
                self._ov_img = QtGui.QImage(c.data, c.shape[1], c.shape[0], c.strides[0], QtGui.QImage.Format.Format_RGBA8888_Premultiplied)
                self._ov_for = cam
        self.caption, self.caption_level = caption, level
        after = (self.cam, self.overlay_state, self.caption, self.caption_level)
        if after[0] is not before[0] or after[1:] != before[1:]:  # the result by identity, the texts by value
            self.update()

    def image_rect(self) -> QtCore.QRectF:
        if self._img is None:
            return QtCore.QRectF()
        w, h = self._img.width(), self._img.height()
        W, H = max(1, self.width() - 16), max(1, self.height() - 16)
        s = min(W / w, H / h)
        tw, th = w * s, h * s
        return QtCore.QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)

    def paintEvent(self, _ev: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor(C_BG))
        if self._img is None:
            p.setPen(QtGui.QColor(C_MUTED))
            f = p.font()
            f.setPointSizeF(13)
            p.setFont(f)
            p.drawText(self.rect().adjusted(40, 40, -40, -40),
                       int(QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap), self.placeholder)
            p.end()
            return
        r = self.image_rect()
        p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, True)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        p.drawImage(r, self._img)
        if self.overlay_state != "none" and self._ov_img is not None and self.opacity > 0:
            p.setOpacity(self.opacity)
            p.drawImage(r, self._ov_img)
            p.setOpacity(1.0)
        if self.model_view is not None:
            self._draw_model_view(p, r)
        if self.caption:
            self._draw_caption(p, r)
        if self.paused:
            self._pill(p, QtCore.QPointF(r.right() - 12, r.top() + 12), "PAUSED", C_TEXT, align_right=True)
        p.end()
        if self.frame is not None and self.painted_frame_id != self.frame.id:
            self.painted_frame_id = self.frame.id
            if self.on_new_frame_painted:
                self.on_new_frame_painted(self.frame.id)

    MODEL_VIEW_LABEL = "model's view"

    def set_model_view(self, box: tuple[float, float, float, float] | None) -> None:
        if box != self.model_view:
            self.model_view = box
            self.update()

    def _draw_model_view(self, p: QtGui.QPainter, r: QtCore.QRectF) -> None:
        """The centre crop the model sees, as a dashed box labelled "model's view" (the heat map lies inside it)."""
        x, y, w, h = self.model_view
        iw, ih = self._img.width(), self._img.height()
        if x <= 1 and y <= 1 and w >= iw - 2 and h >= ih - 2:
            return  # the whole frame: nothing to point out
        sx, sy = r.width() / iw, r.height() / ih
        box = QtCore.QRectF(r.left() + x * sx, r.top() + y * sy, w * sx, h * sy)
        # a 1 px dashed rectangle on the pixel grid, without antialiasing: an antialiased dashed one costs the UI thread enough
        # to slow the Grad-CAM thread beside it (pawlens bench-gui shows it)
        p.save()
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        p.setPen(QtGui.QPen(QtGui.QColor(232, 233, 236, 190), 1, QtCore.Qt.PenStyle.DashLine))
        p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        p.drawRect(box.toAlignedRect())
        p.restore()
        f = p.font()
        f.setPointSizeF(8.5)
        p.setFont(f)
        self._pill(p, QtCore.QPointF(box.left() + 6, box.top() + 6), self.MODEL_VIEW_LABEL, C_TEXT)

    def _pill(self, p: QtGui.QPainter, at: QtCore.QPointF, text: str, colour: str, *, align_right: bool = False) -> None:
        fm = QtGui.QFontMetrics(p.font())
        w, h = fm.horizontalAdvance(text) + 16, fm.height() + 8
        x = at.x() - w if align_right else at.x()
        box = QtCore.QRectF(x, at.y(), w, h)
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor(15, 16, 18, 200))
        p.drawRoundedRect(box, 6, 6)
        p.setPen(QtGui.QColor(colour))
        p.drawText(box, QtCore.Qt.AlignmentFlag.AlignCenter, text)

    def _draw_caption(self, p: QtGui.QPainter, r: QtCore.QRectF) -> None:
        f = p.font()
        f.setPointSizeF(10)
        p.setFont(f)
        margin = 10
        maxw = max(120.0, r.width() - 2 * margin)
        flags = int(QtCore.Qt.TextFlag.TextWordWrap)
        fm = QtGui.QFontMetrics(f)
        br = fm.boundingRect(QtCore.QRect(0, 0, int(maxw) - 20, 1000), flags, self.caption)
        box = QtCore.QRectF(r.left() + margin, r.bottom() - margin - br.height() - 12, br.width() + 20, br.height() + 12)
        box.moveTop(max(r.top() + margin, box.top()))
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor(15, 16, 18, 215))
        p.drawRoundedRect(box, 6, 6)
        if self.caption_level == "warn":
            p.setBrush(QtGui.QColor(C_WARN))
            p.drawRoundedRect(QtCore.QRectF(box.left(), box.top(), 4, box.height()), 2, 2)
        p.setPen(QtGui.QColor(C_WARN if self.caption_level == "warn" else C_TEXT))
        p.drawText(box.adjusted(10, 6, -10, -6), flags, self.caption)


class ProbBars(QtWidgets.QWidget):
    """One labelled probability bar per class (top class in the accent colour; the ten best when there are many)."""

    ROW = 30
    MAX_ROWS = 10

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.names: list[str] = []
        self.probs: np.ndarray | None = None
        self.setMinimumHeight(self.ROW * 2)

    def set_probs(self, names: Sequence[str], probs: np.ndarray | None) -> None:
        names = list(names)
        if names != self.names:
            self.names = names
            self.setMinimumHeight(self.ROW * max(2, min(len(names), self.MAX_ROWS)))
            self.updateGeometry()
        self.probs = None if probs is None else np.asarray(probs, dtype=np.float64)
        self.update()

    def rows(self) -> list[tuple[str, float | None, bool]]:
        if self.probs is None or len(self.probs) != len(self.names):
            return [(n, None, False) for n in self.names[: self.MAX_ROWS]]
        top = int(np.argmax(self.probs))
        order = list(range(len(self.names)))
        if len(order) > self.MAX_ROWS:
            order = sorted(order, key=lambda i: -self.probs[i])[: self.MAX_ROWS]
        return [(self.names[i], float(self.probs[i]), i == top) for i in order]

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API
        return QtCore.QSize(260, self.ROW * max(2, min(len(self.names), self.MAX_ROWS)))

    def paintEvent(self, _ev: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        w = self.width()
        fm = QtGui.QFontMetrics(p.font())
        for k, (name, prob, top) in enumerate(self.rows()):
            y = k * self.ROW
            p.setPen(QtGui.QColor(C_TEXT if top else C_MUTED))
            p.drawText(QtCore.QRectF(0, y, w * 0.7, fm.height()), QtCore.Qt.AlignmentFlag.AlignLeft, name)
            txt = "–" if prob is None else pct(prob)
            p.drawText(QtCore.QRectF(w * 0.5, y, w * 0.5, fm.height()), QtCore.Qt.AlignmentFlag.AlignRight, txt)
            bar = QtCore.QRectF(0, y + fm.height() + 3, w, 7)
            p.setPen(QtCore.Qt.PenStyle.NoPen)
            p.setBrush(QtGui.QColor(C_PANEL_2))
            p.drawRoundedRect(bar, 3.5, 3.5)
            if prob is not None and prob > 0:
                p.setBrush(QtGui.QColor(C_ACCENT if top else C_BAR))
                p.drawRoundedRect(QtCore.QRectF(bar.left(), bar.top(), max(7.0, bar.width() * min(1.0, prob)), bar.height()), 3.5, 3.5)
        p.end()


class Banner(QtWidgets.QFrame):
    """A dismissible message strip above the frame for things the person must not miss."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Banner")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QtWidgets.QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(close, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        self.level = "info"
        self.hide()

    def show_message(self, text: str, level: str = "error") -> None:
        colour = {"error": C_ERROR, "warn": C_WARN}.get(level, C_ACCENT)
        bg = {"error": "#3a1f22", "warn": "#3a3118"}.get(level, "#1f2b3a")
        self.setStyleSheet(f"#Banner {{ background: {bg}; border: 1px solid {colour}; }} QLabel {{ color: {colour}; }}")
        self.label.setText(text)
        self.level = level
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


def section(title: str) -> QtWidgets.QLabel:
    lab = QtWidgets.QLabel(title.upper())
    lab.setObjectName("SectionTitle")
    return lab


__all__ = ["Banner", "FrameView", "ProbBars", "section"]
