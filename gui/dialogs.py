"""What the File and Model menus do: the file dialogs (which start in the folder last used), the stream URL, the
class-names question, the snapshot's file name, and the camera list (probed in a background thread).  Each ends in
one call on the window (``open_path``, ``open_source``, ``set_model``...), so the window holds no dialog code.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading

from PySide6 import QtCore, QtWidgets

from pawlens.models.preprocess import IMAGE_EXTENSIONS
from pawlens.runtime import formats
from pawlens.runtime.formats import CHECKPOINT

from .sources import VIDEO_EXTENSIONS, list_cameras


def _patterns(exts) -> str:
    return " ".join(f"*{e}" for e in exts)


def model_file_filter() -> str:
    """The Open Model dialog's filter: every file the runtime loads (:func:`runtime.formats.file_filter`)."""
    return formats.file_filter()


def reference_file_filter() -> str:
    """The Open Reference dialog's filter: the checkpoint kind and its aliases, from the formats table."""
    exts = [CHECKPOINT] + [a for a, k in formats.ALIASES.items() if k == CHECKPOINT]
    return f"PyTorch checkpoints ({_patterns(exts)});;All files (*)"


def media_file_filter() -> str:
    """The Open dialog's filter: the images and videos ``gui.sources`` opens."""
    return f"Images and videos ({_patterns(dict.fromkeys(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS))});;All files (*)"


def ask_class_names(parent: QtWidgets.QWidget, path: str, _msg: str = "") -> list[str] | None:
    """Ask for a model's class names (a file without pawlens metadata); None when cancelled or fewer than two."""
    text, ok = QtWidgets.QInputDialog.getText(
        parent, "Class names needed",
        f"{os.path.basename(path)} carries no class names.\nEnter them in the model's output order, comma-separated:",
        text="cat,dog")
    if not ok:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names if len(names) >= 2 else None


class Dialogs(QtCore.QObject):
    """The menus' handlers for one window, and its camera list."""

    cameras_found = QtCore.Signal(object)  # from the probe thread to the UI thread

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.last_dir: str | None = None  # the folder of the last file chosen (dialogs start there, else in the cwd)
        self.last_url = "rtsp://"
        self.cameras: list[int] = []
        self.auto_open_camera = False  # open the first camera found (the app does this when no --source is given)
        self.cameras_found.connect(self._on_cameras_found)

    def _start_dir(self) -> str:
        return self.last_dir if self.last_dir and os.path.isdir(self.last_dir) else os.getcwd()

    def _chosen(self, path: str, *, is_dir: bool = False) -> str:
        if path:
            self.last_dir = os.path.abspath(path if is_dir else os.path.dirname(path))
        return path

    def _file(self, title: str, file_filter: str) -> str:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self.win, title, self._start_dir(), file_filter)
        return self._chosen(path)

    # ------------------------------------------------------------------ File and Model menus
    def open_file(self) -> None:
        if path := self._file("Open image or video", media_file_filter()):
            self.win.open_path(path)

    def open_stream(self) -> None:
        url, ok = QtWidgets.QInputDialog.getText(self.win, "Open network stream", "Stream URL (rtsp://, http(s)://, udp://):",
                                                 text=self.last_url)
        if ok and url.strip():
            self.last_url = url.strip()
            self.win.open_source(self.last_url)

    def open_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self.win, "Open a folder of images (slideshow)", self._start_dir())
        if self._chosen(path, is_dir=True):
            self.win.open_source(path)

    def open_model(self) -> None:
        if path := self._file("Open model", model_file_filter()):
            self.win.set_model(path)

    def open_reference(self) -> None:
        if path := self._file("Open reference checkpoint", reference_file_filter()):
            self.win.set_reference(path)

    def set_classes(self) -> None:
        win = self.win
        if not win.model_path:
            win.report("open a model first (Model ▸ Open Model…)", "warn")
            return
        names = ask_class_names(win, win.model_path)
        if names:
            win.set_model(win.model_path, class_names=names)

    def snapshot(self) -> None:
        win = self.win
        if win.view.frame is None:
            win.report("nothing to snapshot yet: open an image, a video, a folder or a camera first", "warn")
            return
        name = f"pawlens-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.png"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(win, "Save snapshot", os.path.join(self._start_dir(), name), "PNG image (*.png)")
        if self._chosen(path):
            win.save_snapshot(path)

    # ------------------------------------------------------------------ cameras
    def refresh_cameras(self) -> None:
        """List the webcams OpenCV can open (probed in a background thread; opening a camera can take a while)."""
        def probe():
            try:
                found = list_cameras()
            except Exception:  # noqa: BLE001 - no OpenCV video backend: no cameras
                found = []
            self.cameras_found.emit(found)

        self.win.camera_combo.clear()
        self.win.camera_combo.addItem("Looking for cameras…", None)
        threading.Thread(target=probe, name="camera-probe", daemon=True).start()

    def fill_cameras(self, found: list[int], *, probed: bool) -> None:
        combo, menu = self.win.camera_combo, self.win.camera_menu
        combo.clear()
        menu.clear()
        if found:
            combo.addItem("Choose a camera…", None)
            for i in found:
                combo.addItem(f"Camera {i}", i)
                menu.addAction(f"Camera {i}", lambda i=i: self.win.open_source(i))
        else:
            combo.addItem("No camera found" if probed else "Camera…", None)
            menu.addAction("No camera found" if probed else "(not probed yet)").setEnabled(False)
        combo.addItem("Look for cameras", -1)
        menu.addSeparator()
        menu.addAction(self.win.act_refresh_cams)

    def _on_cameras_found(self, found: list[int]) -> None:
        self.cameras = list(found)
        self.fill_cameras(self.cameras, probed=True)
        idle = self.win._capture is None
        if not found:
            if idle:
                self.win.status("No camera found: open an image, a video or a folder (or drop one onto the window)", 12000)
        elif self.auto_open_camera and idle:
            self.win.open_source(found[0])

    def camera_chosen(self, idx: int) -> None:
        data = self.win.camera_combo.itemData(idx)
        if data == -1:
            self.refresh_cameras()
        elif data is not None:
            self.win.open_source(int(data))
