"""Regression: PySide6-Essentials 6.12.0 on Python 3.11 drops a reference to None on every void-returning call.

After a few thousand UI calls the process aborts with ``Fatal Python error: none_dealloc``; 6.11.3 is
clean and 6.12.0 is excluded in pyproject.toml.  This makes 10,000 such calls (in chunks, so a leak
fails the test before it can kill the process) and checks that ``sys.getrefcount(None)`` does not fall.
"""

from __future__ import annotations

import gc
import sys

import pytest

pytest.importorskip("PySide6")

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal on Python 3.12+: its refcount cannot show the leak")
def test_10000_void_ui_calls_keep_none_alive(qtbot):
    import PySide6

    label = QtWidgets.QLabel()
    slider = QtWidgets.QSlider()
    qtbot.addWidget(label)
    qtbot.addWidget(slider)
    label.show()
    img = QtGui.QImage(16, 16, QtGui.QImage.Format.Format_RGB888)
    img.fill(QtGui.QColor("#336699"))
    pm = QtGui.QPixmap.fromImage(img)
    canvas = QtGui.QImage(32, 32, QtGui.QImage.Format.Format_RGB32)
    gc.collect()
    start = sys.getrefcount(None)
    calls = 0
    for _chunk in range(10):
        for i in range(250):  # 4 void calls each: setText, setPixmap, setValue, update (+ painter calls below)
            label.setText(str(i))
            label.setPixmap(pm)
            slider.setValue(i % 100)
            label.update()
            calls += 4
        p = QtGui.QPainter(canvas)
        for _ in range(50):
            p.drawImage(QtCore.QPointF(0, 0), img)
            calls += 1
        p.end()
        QtWidgets.QApplication.processEvents()
        gc.collect()
        now = sys.getrefcount(None)
        assert now >= start - 200, (f"PySide6 {PySide6.__version__}: sys.getrefcount(None) fell by {start - now} after "
                                    f"{calls} UI calls (the 6.12.0 none_dealloc bug); use PySide6-Essentials 6.11.3")
    assert calls >= 10_000
