"""The main window: widgets and wiring only.  Models come in from outside (``gui/app.py`` or a test).

    win = MainWindow(loader=RuntimeLoader(), options=WindowOptions(alpha=0.4))
    win.set_model("model.onnx"); win.set_reference("best.pt"); win.open_source("cat.mp4")

or, in a test, with fakes and no ML framework at all::

    win = MainWindow(predictor=FakePredictor(), explainer=FakeCam())

The window never runs a model: predictions and Grad-CAM come from :mod:`gui.workers` through
queued signals, every one tagged with the frame it belongs to.  Which CAM is drawn on which frame
(exact, stale or none), when a CAM must be asked for and what the caption says is decided by
:class:`gui.session.GuiSession`, which has no Qt; this module builds the widgets and wires the
workers, the session and the widgets together.  The theme, the widgets and the snapshot live in
``theme.py``, ``widgets.py`` and ``snapshot.py``.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from pawlens.models.preprocess import IMAGE_EXTENSIONS
from pawlens.runtime import formats
from pawlens.runtime.formats import CHECKPOINT

from .overlay import model_view_or_none
from .session import CamOutput, Frame, GuiSession, pct
from .snapshot import SnapshotContent, compose_snapshot, write_png
from .sources import VIDEO_EXTENSIONS, ImageSource, SourceError, list_cameras, open_source
from .theme import STYLESHEET, apply_theme
from .widgets import Banner, FrameView, ProbBars, section
from .workers import (
    CamWorker,
    CaptureWorker,
    Heartbeat,
    InferenceWorker,
    LatestSlot,
    RateMeter,
    WorkerThread,
    one_line,
)

#: The reference checkpoint's kind in the formats table (Grad-CAM runs on it); every other loadable kind is a model.
CHECKPOINT_KIND = CHECKPOINT
#: The panel's line when a source gave no frame (a bad file, no camera): it stops waiting for one.
NO_FRAMES = "No frames from this source · open another (File, or drop it here)"


def _patterns(exts) -> str:
    return " ".join(f"*{e}" for e in exts)


def model_file_filter() -> str:
    """The Open Model dialog's filter: every file the runtime loads (:func:`runtime.formats.file_filter`)."""
    return formats.file_filter()


def reference_file_filter() -> str:
    """The Open Reference dialog's filter: the checkpoint kind and its aliases, from the formats table."""
    exts = [CHECKPOINT_KIND] + [a for a, k in formats.ALIASES.items() if k == CHECKPOINT_KIND]
    return f"PyTorch checkpoints ({_patterns(exts)});;All files (*)"


def media_file_filter() -> str:
    """The Open dialog's filter: the images and videos ``gui.sources`` opens."""
    return f"Images and videos ({_patterns(dict.fromkeys(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS))});;All files (*)"


def backend_name(key: Any) -> str:
    b = formats.BACKENDS.get(str(key))
    return b.name if b else str(key if key is not None else "?")


@dataclass
class WindowOptions:
    """Defaults of the window's controls (the CLI sets them)."""

    cam_enabled: bool = True
    alpha: float = 0.6
    loop: bool = False
    interval_s: float = 2.0
    stale_ms: float = 1500.0  # stale overlays (marked as such) older than this are hidden
    stale_hold_ms: float = 1000.0  # the stale warning stays at least this long (no flicker between exact and stale frames)
    sync_cam: bool = False
    interactive: bool = True  # ask for class names in a dialog (False: refuse with a message)
    probe_cameras: bool = True


class _Relay(QtCore.QObject):
    """Carries results from plain Python threads (snapshot writer, camera probe) to the UI thread."""

    snapshot_done = QtCore.Signal(str, str)  # path, error ("" when saved)
    cameras_found = QtCore.Signal(object)


# ----------------------------------------------------------------------------- the window


class MainWindow(QtWidgets.QMainWindow):
    """Pawlens main window.

    Args:
        loader: builds predictors and explainers from files (``load_predictor(path, class_names)``,
            ``load_explainer(path)``); ``gui.app.RuntimeLoader`` in the app.  Called in the workers' threads.
        predictor: an already-built predictor to use (e.g. a test fake); activated in the inference thread.
        explainer: an already-built Grad-CAM explainer (e.g. a test fake); activated in the CAM thread.
        options: the controls' defaults.
    """

    prediction_shown = QtCore.Signal(int)  # frame id
    cam_shown = QtCore.Signal(int)  # frame id of the CAM result received
    model_ready = QtCore.Signal(object)
    reference_ready = QtCore.Signal(object)
    source_ended = QtCore.Signal(str)
    snapshot_saved = QtCore.Signal(str)
    problem = QtCore.Signal(str)  # every error shown to the person

    def __init__(self, *, loader: Any = None, predictor: Any = None, explainer: Any = None, options: WindowOptions | None = None,
                 parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        apply_theme()
        self.setStyleSheet(STYLESHEET)
        self.loader = loader
        self.opts = options or WindowOptions()
        self.setWindowTitle("Pawlens")
        self.resize(1280, 800)
        self.setMinimumSize(760, 480)
        self.setAcceptDrops(True)
        self.ask_class_names: Callable[[str, str], list[str] | None] = self._ask_class_names_dialog

        self._gens = iter(range(1, 1 << 30))
        self._infer_slot = LatestSlot()
        self._cam_slot = LatestSlot()
        self._display_slot = LatestSlot()
        self._capture: WorkerThread | None = None
        self._cap_gen = 0
        self._source_spec: str | int | None = None
        self._inference: WorkerThread | None = None
        self._inf_gen = 0
        self.model_path: str | None = None
        self.model_info: dict[str, Any] | None = None
        self.model_classes_override: list[str] | None = None
        self._cam: WorkerThread | None = None
        self._cam_gen = 0
        self.reference_path: str | None = None
        self.ref_info: dict[str, Any] | None = None

        # which frame, prediction and CAM go together, and what to draw: no Qt in there (gui/session.py)
        self.session = GuiSession(stale_ms=self.opts.stale_ms, stale_hold_ms=self.opts.stale_hold_ms,
                                  cam_enabled=self.opts.cam_enabled, sync_cam=self.opts.sync_cam)
        self.display_meter = RateMeter()
        self.infer_meter = RateMeter()
        self.cam_meter = RateMeter()
        self.frames_displayed = 0
        self.frames_inferred = 0
        self.e2e_ms: float | None = None
        self.cams_done = 0
        self.errors: list[str] = []
        self.cameras: list[int] = []
        self.auto_open_camera = False  # open the first camera found (the app does this when no --source is given)
        self._relay = _Relay()
        self._relay.snapshot_done.connect(self._on_snapshot_done)
        self._relay.cameras_found.connect(self._on_cameras_found)
        self._view_box_key: tuple | None = None
        self._view_box: tuple[float, float, float, float] | None = None
        self.last_dir: str | None = None  # the folder of the last file chosen in a dialog (they start there, else in the cwd)

        self._build_ui()
        self.heartbeat = Heartbeat(10, self)
        self.heartbeat.start()
        self._loading: set[str] = set()  # "model" / "reference" while their workers build them

        self._fig_timer = QtCore.QTimer(self)
        self._fig_timer.setInterval(250)
        self._fig_timer.timeout.connect(self._update_figures)
        self._fig_timer.start()
        self._update_model_panel()
        self._update_cam_controls()

        if predictor is not None:
            self.set_model(predictor=predictor)
        if explainer is not None:
            self.set_reference(explainer=explainer)
        if self.opts.probe_cameras:
            self.refresh_cameras()
        else:
            self._fill_cameras([], probed=False)

    # The session's state, read-only here (tests, the self-check and the benchmark read it).
    frame = property(lambda self: self.session.frame, doc="the newest frame of the current source")
    prediction = property(lambda self: self.session.prediction, doc="the deployed model's newest prediction")
    prediction_frame = property(lambda self: self.session.prediction_frame, doc="the frame of that prediction")
    cam_out = property(lambda self: self.session.cam_out, doc="the newest Grad-CAM result (CamOutput)")
    cam_enabled = property(lambda self: self.session.cam_enabled, doc="the overlay switch")
    cam_target = property(lambda self: self.session.cam_target, doc="the class to explain (None: the predicted one)")
    paused = property(lambda self: self.session.paused, doc="paused by the person, or a video that ended")

    # ------------------------------------------------------------------ UI construction
    def _build_ui(self) -> None:
        st = self.style()
        sp = QtWidgets.QStyle.StandardPixmap

        def act(text, slot, shortcut=None, icon=None, checkable=False, tip=None):
            a = QtGui.QAction(text, self)
            if icon is not None:
                a.setIcon(st.standardIcon(icon))
            if shortcut:
                a.setShortcut(QtGui.QKeySequence(shortcut))
            a.setCheckable(checkable)
            if tip:
                a.setToolTip(tip)
            a.triggered.connect(slot)
            return a

        self.act_open = act("Open…", self._menu_open_file, "Ctrl+O", sp.SP_DialogOpenButton, tip="Open an image or a video (Ctrl+O)")
        self.act_open_folder = act("Open Folder…", self._menu_open_folder, "Ctrl+Shift+O", sp.SP_DirOpenIcon)
        self.act_open_stream = act("Open Network Stream…", self._menu_open_stream, "Ctrl+N",
                                   tip="A network camera or stream: rtsp://, http(s):// (MJPEG, HLS) or udp:// (Ctrl+N)")
        self.act_pause = act("Pause", lambda: self.set_paused(not self.paused), "Space", sp.SP_MediaPause, tip="Pause / play (Space)")
        self.act_step = act("Step", self.step, "Right", sp.SP_MediaSeekForward, tip="One frame forward while paused (→)")
        self.act_loop = act("Loop", lambda checked=False: self.set_loop(checked), None, sp.SP_BrowserReload, True, "Replay a video when it ends")
        self.act_loop.setChecked(self.opts.loop)
        self.act_snapshot = act("Snapshot…", self._menu_snapshot, "Ctrl+S", sp.SP_DialogSaveButton,
                                tip="Save a PNG of the frame, the overlay, the label and the figures (Ctrl+S)")
        self.act_quit = act("Quit", self.close, "Ctrl+Q")
        self.act_open_model = act("Open Model (ONNX / engine)…", self._menu_open_model, "Ctrl+M")
        self.act_open_ref = act("Open Reference Checkpoint…", self._menu_open_reference, "Ctrl+R")
        self.act_classes = act("Set Class Names…", self._menu_set_classes)
        self.act_cam = act("Grad-CAM Overlay", lambda checked=False: self.set_cam_enabled(checked), "C", None, True)
        self.act_refresh_cams = act("Refresh Camera List", self.refresh_cameras)

        mb = self.menuBar()
        m = mb.addMenu("&File")
        for a in (self.act_open, self.act_open_folder, self.act_open_stream):
            m.addAction(a)
        self.camera_menu = m.addMenu("Camera")
        m.addSeparator()
        m.addAction(self.act_snapshot)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Model")
        for a in (self.act_open_model, self.act_open_ref, self.act_classes):
            m.addAction(a)
        m = mb.addMenu("&View")
        for a in (self.act_pause, self.act_step, self.act_loop, self.act_cam):
            m.addAction(a)

        tb = QtWidgets.QToolBar("Main")
        tb.setMovable(False)
        tb.setIconSize(QtCore.QSize(18, 18))
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(tb)
        tb.addAction(self.act_open)
        self.camera_combo = QtWidgets.QComboBox()
        self.camera_combo.setMinimumWidth(150)
        self.camera_combo.setToolTip("Webcams OpenCV can open")
        self.camera_combo.activated.connect(self._camera_chosen)
        tb.addWidget(self.camera_combo)
        tb.addSeparator()
        tb.addAction(self.act_pause)
        tb.addAction(self.act_step)
        tb.addAction(self.act_loop)
        tb.addSeparator()
        tb.addAction(self.act_snapshot)

        central = QtWidgets.QWidget()
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.banner = Banner()
        bwrap = QtWidgets.QWidget()
        bl = QtWidgets.QVBoxLayout(bwrap)
        bl.setContentsMargins(8, 6, 8, 0)
        bl.addWidget(self.banner)
        outer.addWidget(bwrap)
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.view = FrameView()
        self.view.opacity = float(self.opts.alpha)
        self.view.on_new_frame_painted = self._on_painted
        row.addWidget(self.view, 1)
        scroll = QtWidgets.QScrollArea()  # the panel scrolls instead of squeezing when the window is short
        scroll.setObjectName("SidebarScroll")
        scroll.setWidget(self._build_sidebar())
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(332)
        row.addWidget(scroll, 0)
        outer.addLayout(row, 1)
        self.setCentralWidget(central)

        sb = self.statusBar()
        self.status_source = QtWidgets.QLabel("no source")
        self.status_frames = QtWidgets.QLabel("")
        sb.addPermanentWidget(self.status_source)
        sb.addPermanentWidget(self.status_frames)

    def _build_sidebar(self) -> QtWidgets.QWidget:
        side = QtWidgets.QWidget()
        side.setObjectName("Sidebar")
        side.setFixedWidth(320)
        lay = QtWidgets.QVBoxLayout(side)
        lay.setContentsMargins(18, 12, 18, 12)
        lay.setSpacing(6)

        lay.addWidget(section("Prediction"))
        top = QtWidgets.QHBoxLayout()
        self.label_big = QtWidgets.QLabel("—")
        self.label_big.setObjectName("BigLabel")
        self.label_conf = QtWidgets.QLabel("")
        self.label_conf.setObjectName("Confidence")
        top.addWidget(self.label_big, 1)
        top.addWidget(self.label_conf, 0, QtCore.Qt.AlignmentFlag.AlignBottom)
        lay.addLayout(top)
        self.label_sub = QtWidgets.QLabel("No model loaded")
        self.label_sub.setObjectName("Muted")
        self.label_sub.setWordWrap(True)
        lay.addWidget(self.label_sub)
        self.bars = ProbBars()
        lay.addWidget(self.bars)

        lay.addSpacing(6)
        lay.addWidget(section("Performance"))
        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(3)
        self.fig: dict[str, QtWidgets.QLabel] = {}
        for i, (key, title) in enumerate((("latency", "Inference latency"), ("e2e", "Capture → label"), ("ifps", "Inference FPS"),
                                          ("dfps", "Display FPS"), ("dropped", "Dropped (stale)"), ("cam", "Grad-CAM"))):
            t = QtWidgets.QLabel(title)
            t.setObjectName("Muted")
            v = QtWidgets.QLabel("–")
            v.setObjectName("FigValue")
            v.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(t, i, 0)
            grid.addWidget(v, i, 1)
            self.fig[key] = v
        lay.addLayout(grid)

        lay.addSpacing(6)
        lay.addWidget(section("Model"))
        badges = QtWidgets.QHBoxLayout()
        badges.setSpacing(6)
        self.badge_backend = QtWidgets.QLabel("")
        self.badge_backend.setObjectName("Badge")
        self.badge_device = QtWidgets.QLabel("")
        self.badge_device.setObjectName("Badge")
        self.badge_precision = QtWidgets.QLabel("")
        self.badge_precision.setObjectName("Badge")
        for b in (self.badge_backend, self.badge_device, self.badge_precision):
            badges.addWidget(b)
        badges.addStretch(1)
        lay.addLayout(badges)
        self.badge_fallback = QtWidgets.QLabel("")
        self.badge_fallback.setObjectName("WarnBadge")
        self.badge_fallback.setWordWrap(True)
        self.badge_fallback.hide()
        lay.addWidget(self.badge_fallback)
        self.model_text = QtWidgets.QLabel("")
        self.model_text.setObjectName("Muted")
        self.model_text.setWordWrap(True)
        lay.addWidget(self.model_text)

        lay.addSpacing(6)
        lay.addWidget(section("Grad-CAM (reference model)"))
        self.cam_check = QtWidgets.QCheckBox("Show overlay")
        self.cam_check.setChecked(self.session.cam_enabled)
        self.cam_check.toggled.connect(self.set_cam_enabled)
        lay.addWidget(self.cam_check)
        orow = QtWidgets.QHBoxLayout()
        olab = QtWidgets.QLabel("Opacity")
        olab.setObjectName("Muted")
        self.alpha_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setValue(int(round(self.opts.alpha * 100)))
        self.alpha_slider.valueChanged.connect(lambda v: self.set_alpha(v / 100.0))
        self.alpha_value = QtWidgets.QLabel(f"{int(round(self.opts.alpha * 100))}%")
        self.alpha_value.setObjectName("FigValue")
        self.alpha_value.setMinimumWidth(38)
        orow.addWidget(olab)
        orow.addWidget(self.alpha_slider, 1)
        orow.addWidget(self.alpha_value)
        lay.addLayout(orow)
        trow = QtWidgets.QHBoxLayout()
        tlab = QtWidgets.QLabel("Explain")
        tlab.setObjectName("Muted")
        self.target_combo = QtWidgets.QComboBox()
        self.target_combo.addItem("Predicted class", None)
        self.target_combo.currentIndexChanged.connect(lambda _i: self.set_cam_target(self.target_combo.currentData()))
        trow.addWidget(tlab)
        trow.addWidget(self.target_combo, 1)
        lay.addLayout(trow)
        self.sync_check = QtWidgets.QCheckBox("Sync video to CAM (exact, slower)")
        self.sync_check.setChecked(self.opts.sync_cam)
        self.sync_check.toggled.connect(self.set_sync_cam)
        lay.addWidget(self.sync_check)
        self.cam_text = QtWidgets.QLabel("")
        self.cam_text.setObjectName("Muted")
        self.cam_text.setWordWrap(True)
        lay.addWidget(self.cam_text)
        lay.addStretch(1)
        return side

    # ------------------------------------------------------------------ messages
    def report(self, text: str, level: str = "error") -> None:
        """Show a problem in the banner and the status bar (never a modal box: nothing blocks)."""
        if level == "error":
            self.errors.append(text)
            self.problem.emit(text)
        self.banner.show_message(text, level)
        self.statusBar().showMessage(text, 15000)

    def status(self, text: str, ms: int = 6000) -> None:
        self.statusBar().showMessage(text, ms)

    # ------------------------------------------------------------------ sources
    def open_path(self, path: str) -> None:
        """Open whatever a dropped or chosen path is: a model, a reference checkpoint, or a source."""
        kind = formats.suffix_kind(path)  # the formats table's loadable kinds; anything else is a source
        if kind == CHECKPOINT_KIND:
            self.set_reference(path)
        elif kind is not None:
            self.set_model(path)
        else:
            self.open_source(path)

    def open_source(self, spec: str | int | None = None, *, source: Any = None) -> bool:
        """Start showing a camera index, image, video or folder (or an already-made FrameSource)."""
        if source is None:
            try:
                source = open_source(spec, loop=self.act_loop.isChecked(), interval_s=self.opts.interval_s)
            except SourceError as e:
                self.report(str(e))
                if self.frame is None and self.model_info is not None:
                    self.label_sub.setText(NO_FRAMES)
                return False
        self._stop_capture()
        self._source_spec = spec if spec is not None else source
        self._cap_gen = next(self._gens)
        self._display_slot = LatestSlot()
        self._infer_slot.clear()
        self._cam_slot.clear()
        self.session.new_source(self._cap_gen, still=bool(getattr(source, "still", False)))  # nothing of the previous source stays
        desc = getattr(source, "describe", lambda: str(spec))()
        self.view.set_frame(None)
        self.view.set_overlay(None, "none")
        self.view.placeholder = f"Opening {desc}…"
        self.label_big.setText("—")
        self.label_conf.setText("")
        if self.model_info is not None:
            self.label_sub.setText("Waiting for the first frame…")
            self.bars.set_probs(self.model_info["class_names"], None)
        self.reset_figures()  # counters are per source: nothing of the previous one carries over
        for slot in (self._infer_slot, self._cam_slot):
            slot.dropped = 0
        self.e2e_ms = None
        self.status_source.setText(desc)
        w = CaptureWorker(source, self._display_slot, self._infer_slot, gen=self._cap_gen, paused=False)
        w.opened.connect(self._on_source_opened)
        w.frame_ready.connect(self._on_frame_ready)
        w.ended.connect(self._on_source_ended)
        w.error.connect(self._on_source_error)
        w.note.connect(self._on_source_note)
        w.stream_state.connect(self._on_stream_state)
        self._capture = WorkerThread(w).start()
        movable = not isinstance(source, ImageSource)
        self.act_pause.setEnabled(movable)
        self.act_step.setEnabled(movable)
        self.set_paused(False)
        return True

    def _stop_capture(self) -> None:
        if self._capture is not None:
            self._capture.stop()
            self._capture = None

    def set_loop(self, on: bool) -> None:
        self.act_loop.setChecked(bool(on))
        self.opts.loop = bool(on)
        if self._capture is not None and hasattr(self._capture.worker.source, "loop"):
            if self._capture.worker.source.kind == "video":
                self._capture.worker.source.loop = bool(on)

    def set_paused(self, paused: bool) -> None:
        s = self.session
        if not paused and s.ended and not s.still and isinstance(self._source_spec, (str, int)):
            s.paused = False
            self.open_source(self._source_spec)  # Play after the end: start it again
            return
        s.paused = bool(paused)
        self._show_play_button(s.paused)
        self.view.paused = s.paused
        self.view.update()
        if self._capture is not None:
            self._capture.worker.set_paused(s.paused)
        self._kick_cam()  # a paused frame gets its own CAM

    def _show_play_button(self, play: bool) -> None:
        self.act_pause.setText("Play" if play else "Pause")
        self.act_pause.setIcon(self.style().standardIcon(
            QtWidgets.QStyle.StandardPixmap.SP_MediaPlay if play else QtWidgets.QStyle.StandardPixmap.SP_MediaPause))

    def step(self) -> None:
        """One frame forward (pauses first if playing)."""
        if not self.paused:
            self.set_paused(True)
        if self._capture is not None and not self.session.ended:
            self._capture.worker.step()

    def refresh_cameras(self) -> None:
        """List the webcams OpenCV can open (probed in a background thread; opening a camera can take a while)."""
        def probe():
            try:
                found = list_cameras()
            except Exception:  # noqa: BLE001 - no OpenCV video backend: no cameras
                found = []
            self._relay.cameras_found.emit(found)

        self.camera_combo.clear()
        self.camera_combo.addItem("Looking for cameras…", None)
        threading.Thread(target=probe, name="camera-probe", daemon=True).start()

    def _fill_cameras(self, found: list[int], *, probed: bool) -> None:
        self.camera_combo.clear()
        self.camera_menu.clear()
        if found:
            self.camera_combo.addItem("Choose a camera…", None)
            for i in found:
                self.camera_combo.addItem(f"Camera {i}", i)
                self.camera_menu.addAction(f"Camera {i}", lambda i=i: self.open_source(i))
        else:
            self.camera_combo.addItem("No camera found" if probed else "Camera…", None)
            a = self.camera_menu.addAction("No camera found" if probed else "(not probed yet)")
            a.setEnabled(False)
        self.camera_combo.addItem("Look for cameras", -1)
        self.camera_menu.addSeparator()
        self.camera_menu.addAction(self.act_refresh_cams)

    def _on_cameras_found(self, found: list[int]) -> None:
        self.cameras = list(found)
        self._fill_cameras(self.cameras, probed=True)
        if not found:
            if self._capture is None:
                self.status("No camera found: open an image, a video or a folder (or drop one onto the window)", 12000)
        elif self.auto_open_camera and self._capture is None:
            self.open_source(found[0])

    def _camera_chosen(self, idx: int) -> None:
        data = self.camera_combo.itemData(idx)
        if data == -1:
            self.refresh_cameras()
        elif data is not None:
            self.open_source(int(data))

    # ------------------------------------------------------------------ capture signals
    def _on_source_opened(self, gen: int, desc: str) -> None:
        if gen == self._cap_gen:
            self.status_source.setText(desc)
            self.status(f"Playing {desc}", 4000)

    def _on_source_note(self, gen: int, msg: str) -> None:
        if gen == self._cap_gen:
            self.status(msg, 8000)

    def _on_stream_state(self, gen: int, state: str, msg: str) -> None:
        """A network stream dropped (banner and status while it reconnects; the last frame stays) or is back."""
        if gen != self._cap_gen or self._capture is None:  # a signal still queued from a capture stopped since
            return
        source = self._capture.worker.source  # a StreamSource: only it sends these
        self.status_source.setText(source.describe())
        if state == "reconnecting":
            self.report(f"stream: {source.name}: {msg}; the last frame stays on screen", "warn")
        elif state == "live":
            if self.banner.level == "warn" and "stream dropped" in self.banner.text():
                self.banner.hide()
            outages = source.stream.outages
            took = f" after {outages[-1]:.1f} s" if outages else ""
            self.status(f"{source.describe()}: stream back{took}", 8000)

    def _on_frame_skipped(self, gen: int, msg: str) -> None:
        """A frame the model could not take (e.g. a strip): a status line; inference goes on with the next frame."""
        if gen == self._inf_gen:
            self.status(msg, 8000)

    def _on_source_ended(self, gen: int, msg: str) -> None:
        if gen != self._cap_gen:
            return
        s = self.session
        s.ended = True
        self.status(msg, 15000)
        self.source_ended.emit(msg)
        if not s.still:  # an image stays on screen; there is nothing to play
            self._show_play_button(True)
            s.paused = True
        self._kick_cam()

    def _on_source_error(self, gen: int, msg: str) -> None:
        if gen != self._cap_gen:
            return
        self.session.ended = True
        if self.frame is None:
            self.view.placeholder = "Cannot show this source:\n" + msg.split("] ", 1)[-1].replace("; ", ";\n")
            self.view.update()
            if self.model_info is not None:  # no frame is coming: the panel stops waiting for one
                self.label_sub.setText(NO_FRAMES)
        self.report(msg)  # the last frame (if any) stays on screen; the rest of the app keeps working

    def _on_frame_ready(self, gen: int) -> None:
        slot = self._display_slot
        frame = slot.take_nowait()
        if frame is None or gen != self._cap_gen or frame.session != self._cap_gen:
            return
        job = self.session.on_frame(frame)
        if job is not None:
            self._cam_slot.put(job)
        self._refresh_view()

    def _on_painted(self, _frame_id: int) -> None:
        self.display_meter.tick()
        self.frames_displayed += 1

    # ------------------------------------------------------------------ model
    def set_model(self, path: str | None = None, *, predictor: Any = None, class_names: Sequence[str] | None = None) -> None:
        """Load the deployed model (path via the loader, or a ready predictor) in a fresh inference thread."""
        if predictor is None and path is None:
            return
        if predictor is None and self.loader is None:
            self.report("no model loader configured (start the app with pawlens-gui)")
            return
        self._stop_inference()
        self.model_path = path if path is not None else getattr(predictor, "path", None)
        self.model_classes_override = list(class_names) if class_names else None
        self.model_info = None
        self.session.forget_predictions()
        self.infer_meter.reset()
        self.session.reference_ready = False  # paired again once the model is ready
        if predictor is not None:
            def build(p=predictor):
                return p
        else:
            def build(p=path, c=self.model_classes_override):
                return self.loader.load_predictor(p, c)
        self._inf_gen = next(self._gens)
        w = InferenceWorker(build, self._infer_slot, gen=self._inf_gen, forward=self._cam_slot)
        w.ready.connect(self._on_model_ready)
        w.result.connect(self._on_prediction)
        w.error.connect(self._on_model_error)
        w.needs_class_names.connect(self._on_model_needs_class_names)
        w.skipped.connect(self._on_frame_skipped)
        self._begin_loading("model")
        self._inference = WorkerThread(w).start()
        name = os.path.basename(self.model_path) if self.model_path else "model"
        self.label_sub.setText(f"Loading {name}…")
        self._update_model_panel()
        if self.frame is not None and self.frame.session == self._cap_gen:
            self._infer_slot.put(self.frame)  # classify what is on screen (matters for a still image)

    def _stop_inference(self) -> None:
        if self._inference is not None:
            self._inference.stop()
            self._inference = None

    def _model_active(self) -> bool:
        return self.session.model_ready

    def _on_model_ready(self, gen: int, info: dict) -> None:
        if gen != self._inf_gen:
            return
        self._end_loading("model")
        self.model_info = info
        self.session.model_ready = True
        d = info.get("describe", {})
        self.label_sub.setText(f"Ready: {os.path.basename(self.model_path) if self.model_path else d.get('backend', 'model')}")
        self.bars.set_probs(info["class_names"], None)
        self._update_model_panel()
        self._check_pair()
        self._set_targets()
        self._refresh_view()
        self.model_ready.emit(info)
        choice = info.get("backend_choice") or ""
        self.status(f"Model ready: {self._backend_line(d)}" + (f" ({choice})" if choice else "")
                    + f", loaded in {info.get('load_ms', 0):.0f} ms", 12000)

    def _model_failed(self) -> None:
        self._end_loading("model")
        self._inference = None
        self.model_info = None
        self.session.model_ready = False
        self._update_model_panel()

    def _on_model_error(self, gen: int, msg: str) -> None:
        if gen != self._inf_gen:
            return
        self._model_failed()
        self.label_sub.setText("Model failed: see the message above")
        self.report(f"Model: {msg}")

    def _on_model_needs_class_names(self, gen: int, msg: str) -> None:
        """The model file has no pawlens metadata (MissingMetadata): ask for its class names, or refuse."""
        if gen != self._inf_gen:
            return
        self._model_failed()
        path = self.model_path
        if path and self.model_classes_override is None and self.opts.interactive:
            names = self.ask_class_names(path, msg)
            if names:
                self.set_model(path, class_names=names)
                return
        self.label_sub.setText("Model refused: no class names")
        self.report(f"{msg} (refused: start with --classes NAME,NAME or use Model ▸ Set Class Names…)")

    def _on_prediction(self, gen: int, frame: Frame, pred: Any) -> None:
        if gen != self._inf_gen or not self.session.on_prediction(frame, pred):
            return
        self.infer_meter.tick(float(getattr(pred, "infer_ms", 0.0)))
        self.e2e_ms = (time.perf_counter() - frame.t) * 1e3
        self.frames_inferred += 1
        self.label_big.setText(str(pred.label))
        self.label_conf.setText(pct(pred.probs[pred.index]))
        lag = (self.frame.id - frame.id) if self.frame is not None else 0
        when = "on screen" if lag <= 0 else f"{lag} behind"
        self.label_sub.setText(f"Deployed model · frame {frame.index} ({when})")
        self.bars.set_probs(pred.class_names, pred.probs)
        self._kick_cam()  # a still / paused frame whose classification came after the CAM was ready
        self._refresh_view()  # the CAM may have come first: now the two models can be compared
        self.prediction_shown.emit(frame.id)

    # ------------------------------------------------------------------ reference / CAM
    def set_reference(self, path: str | None = None, *, explainer: Any = None) -> None:
        """Load the PyTorch reference for Grad-CAM in a fresh CAM thread."""
        if explainer is None and path is None:
            return
        if explainer is None and self.loader is None:
            self.report("no reference loader configured (start the app with pawlens-gui)")
            return
        self._stop_cam()
        self.reference_path = path if path is not None else getattr(explainer, "path", None)
        self.ref_info = None
        self.session.forget_cams()
        self.cam_meter.reset()
        if explainer is not None:
            def build(e=explainer):
                return e
        else:
            def build(p=path):
                return self.loader.load_explainer(p)
        self._cam_gen = next(self._gens)
        w = CamWorker(build, self._cam_slot, gen=self._cam_gen, path=path)
        w.target_class = self.cam_target
        w.ready.connect(self._on_reference_ready)
        w.result.connect(self._on_cam)
        w.mode.connect(self._on_cam_mode)
        w.error.connect(self._on_reference_error)
        self._begin_loading("reference")
        self._cam = WorkerThread(w).start()
        self.cam_text.setText(f"Loading {os.path.basename(self.reference_path or 'reference')}…")
        self._update_cam_controls()

    def _stop_cam(self) -> None:
        if self._cam is not None:
            self._cam.stop()
            self._cam = None
        self.session.reference_ready = False
        self._sync_forwarding()

    def _sync_forwarding(self) -> None:
        """The inference worker passes classified frames on to the CAM worker exactly while CAMs are active."""
        if self._inference is not None:
            if self.session.cam_active:
                self._inference.worker.forward_enabled.set()
            else:
                self._inference.worker.forward_enabled.clear()

    def _on_reference_ready(self, gen: int, info: dict) -> None:
        if gen != self._cam_gen:
            return
        self._end_loading("reference")
        self.ref_info = info
        self._check_pair()
        self._set_targets()
        self.reference_ready.emit(info)

    def _reference_gone(self, text: str, msg: str) -> None:
        self.ref_info = None
        self.session.forget_cams()
        self._update_cam_controls()
        self.cam_text.setText(text)
        self.report(msg)
        self._refresh_view()

    def _on_reference_error(self, gen: int, msg: str) -> None:
        if gen != self._cam_gen:
            return
        self._end_loading("reference")
        self._cam = None
        self._reference_gone("No reference: Grad-CAM is off", f"Reference: {msg}")

    def _refuse_reference(self, msg: str) -> None:
        self._stop_cam()
        self._reference_gone("Reference refused: Grad-CAM is off", msg)

    def _check_pair(self) -> None:
        """Refuse a reference whose classes (or architecture) differ from the deployed model's."""
        ref, mod = self.ref_info, self.model_info
        if ref is None or self._cam is None:
            self.session.reference_ready = False
            self._update_cam_controls()
            return
        rname = os.path.basename(self.reference_path or "reference")
        if mod is not None:
            mname = os.path.basename(self.model_path or "the model")
            if list(ref["class_names"]) != list(mod["class_names"]):
                self._refuse_reference(f"Reference {rname} refused: its classes [{', '.join(ref['class_names'])}] differ from "
                                       f"{mname}'s [{', '.join(mod['class_names'])}]. Open the checkpoint the model was exported from.")
                return
            ra, ma = ref.get("arch"), mod.get("arch")
            if ra and ma and "unknown" not in (ra, ma) and ra != ma:
                self._refuse_reference(f"Reference {rname} refused: it is a {ra} but {mname} is a {ma}; its heat maps would "
                                       "explain a different network. Open the checkpoint the model was exported from.")
                return
            rs, ms = ref.get("sha256"), mod.get("source_sha256")
            if rs and ms and rs != ms:
                self.report(f"Reference {rname} is not the checkpoint {mname} was exported from (sha256 differs): the overlay "
                            "shows the reference's reasons, which may differ from the deployed model's.", "warn")
        self.session.reference_ready = True
        self._sync_forwarding()
        self._update_cam_controls()
        self._show_reference()
        self._kick_cam()

    def _on_cam_mode(self, gen: int, mode: str) -> None:
        """The CAM worker switched paths (a background trace was checked and adopted, or refused and why)."""
        if gen == self._cam_gen and self.ref_info is not None:
            self.ref_info["mode"] = mode
            self._show_reference()

    def _show_reference(self) -> None:
        ref = self.ref_info or {}
        mode = ref.get("mode") or ""
        self.cam_text.setText(f"{os.path.basename(self.reference_path or 'reference')} · {ref.get('arch') or ''} · "
                              f"loaded in {ref.get('load_ms', 0):.0f} ms" + (f" · {mode}" if mode else ""))
        self.cam_text.setToolTip("traced: the network up to the Grad-CAM layer runs as one frozen TorchScript call, checked "
                                 "against the eager model before use; eager: every layer runs from Python")

    def _set_targets(self) -> None:
        names = (self.model_info or self.ref_info or {}).get("class_names", [])
        cur = self.target_combo.currentData()
        self.target_combo.blockSignals(True)
        self.target_combo.clear()
        self.target_combo.addItem("Predicted class", None)
        for i, n in enumerate(names):
            self.target_combo.addItem(f"“{n}”", i)
        k = self.target_combo.findData(cur) if cur is not None else 0
        self.target_combo.setCurrentIndex(max(0, k))
        self.target_combo.blockSignals(False)
        self.set_cam_target(self.target_combo.currentData())

    def set_cam_enabled(self, on: bool) -> None:
        self.session.cam_enabled = bool(on)
        for w in (self.cam_check, self.act_cam):
            if w.isChecked() != self.session.cam_enabled:
                w.blockSignals(True)
                w.setChecked(self.session.cam_enabled)
                w.blockSignals(False)
        self._sync_forwarding()
        if not self.session.cam_enabled:
            self._cam_slot.clear()
        else:
            self._kick_cam()
        self._refresh_view()

    def set_alpha(self, alpha: float) -> None:
        a = float(min(1.0, max(0.0, alpha)))
        self.view.opacity = a
        self.opts.alpha = a
        self.alpha_value.setText(f"{int(round(a * 100))}%")
        if self.alpha_slider.value() != int(round(a * 100)):
            self.alpha_slider.setValue(int(round(a * 100)))
        self.view.update()

    def set_cam_target(self, class_index: int | None) -> None:
        """Explain another class; a paused or still frame is explained again at once."""
        target = None if class_index is None else int(class_index)
        if self._cam is not None:
            self._cam.worker.target_class = target  # before the job: the worker reads it when it takes one
        job = self.session.set_target(target, self._queued_cam_frame_id())
        if job is not None:
            self._cam_slot.put(job)
        k = self.target_combo.findData(target) if target is not None else 0
        if k >= 0 and self.target_combo.currentIndex() != k:
            self.target_combo.setCurrentIndex(k)
        self._refresh_view()

    def set_sync_cam(self, on: bool) -> None:
        self.opts.sync_cam = self.session.sync_cam = bool(on)
        if self.sync_check.isChecked() != bool(on):
            self.sync_check.setChecked(bool(on))
        self._refresh_view()

    def _queued_cam_frame_id(self) -> int | None:
        queued = self._cam_slot.peek()
        return queued[0].id if queued is not None else None

    def _kick_cam(self) -> None:
        """Ask for the CAM of the frame on screen when the session says no new frame will bring one."""
        job = self.session.cam_job(self._queued_cam_frame_id())
        if job is not None:
            self._cam_slot.put(job)

    def _on_cam(self, gen: int, out: CamOutput) -> None:
        if gen != self._cam_gen or not self.session.on_cam(out):
            return
        self.cam_meter.tick(out.ms)
        self.cams_done += 1
        self._kick_cam()  # e.g. the class to explain changed while this one was computed
        self._refresh_view()
        self.cam_shown.emit(out.frame.id)

    # ------------------------------------------------------------------ view composition
    def _refresh_view(self) -> None:
        shown = self.session.view(self.view.frame)
        self.view.set_frame(shown.frame)
        self.view.set_overlay(shown.cam, shown.state, shown.caption, shown.level)
        self.view.set_model_view(self._model_view(shown.frame))

    def _model_view(self, frame: Frame | None) -> tuple[float, float, float, float] | None:
        """The crop the deployed model (else the paired reference) sees on ``frame``, in frame pixels; None if unknown."""
        if frame is None:
            return None
        cfg = (self.model_info or {}).get("preprocess")
        if cfg is None and self.session.reference_ready:
            cfg = (self.ref_info or {}).get("preprocess")
        key = (cfg, frame.rgb.shape[:2])  # compared by value
        if self._view_box_key != key:
            self._view_box_key, self._view_box = key, model_view_or_none(frame.rgb.shape[:2], cfg)
        return self._view_box

    # ------------------------------------------------------------------ panels
    @staticmethod
    def _backend_line(d: dict) -> str:
        b = backend_name(d.get("backend"))
        prov = d.get("providers") or []
        dev = str(d.get("device", "?")).upper()
        return f"{b} · {prov[0] if prov else dev} · {d.get('precision', '?')}"

    def _update_model_panel(self) -> None:
        info = self.model_info
        if info is None:
            for b in (self.badge_backend, self.badge_device, self.badge_precision):
                b.hide()
            self.badge_fallback.hide()
            self.model_text.setText("Model ▸ Open Model… (or drop a .onnx here)" if self._inference is None else "Loading…")
            if self._inference is None:
                self.label_big.setText("—")
                self.label_conf.setText("")
                self.bars.set_probs([], None)
            return
        d = info.get("describe", {})
        self.badge_backend.setText(backend_name(d.get("backend")))
        choice, note = info.get("backend_choice") or "", info.get("backend_note") or ""
        why = " · ".join(x for x in (choice, note) if x)
        self.badge_backend.setToolTip(f"Why this backend: {why}" if why else "")
        prov = d.get("providers") or []
        self.badge_device.setText(str(prov[0]).replace("ExecutionProvider", "") if prov else str(d.get("device", "?")).upper())
        self.badge_device.setToolTip("Active providers: " + ", ".join(prov) if prov else f"device: {d.get('device')}")
        self.badge_precision.setText(str(d.get("precision", "?")))
        for b in (self.badge_backend, self.badge_device, self.badge_precision):
            b.show()
        if d.get("fallback"):
            req = ", ".join(d.get("providers_requested") or ["CUDA"])
            self.badge_fallback.setText(f"⚠ CUDA was requested ({req}) but ONNX Runtime is running on the CPU")
            self.badge_fallback.show()
        else:
            self.badge_fallback.hide()
        name = os.path.basename(self.model_path) if self.model_path else "injected predictor"
        classes = ", ".join(info["class_names"])
        extra = " (class names given by hand)" if self.model_classes_override else ""
        self.model_text.setText(f"{name}\nclasses: {classes}{extra}" + (f"\nbackend ({choice}): {note}" if note else
                                                                         f"\nbackend: {choice}" if choice else ""))

    def _update_cam_controls(self) -> None:
        ok = self._cam is not None and self.session.reference_ready
        for w in (self.alpha_slider, self.target_combo, self.sync_check):
            w.setEnabled(ok)
        self.cam_check.setEnabled(ok)
        self.act_cam.setEnabled(ok)
        if self._cam is None and self.ref_info is None:
            self.cam_text.setText("Model ▸ Open Reference Checkpoint… to see where the reference model looks")
            self.cam_check.setToolTip("Needs the PyTorch reference checkpoint")

    # The event-loop latency is booked in two accounts: while a model is being built (its first import
    # and graph optimisation can hold the GIL) and the rest of the time (playing).
    def _begin_loading(self, what: str) -> None:
        self._loading.add(what)
        self.heartbeat.account = "loading"

    def _end_loading(self, what: str) -> None:
        self._loading.discard(what)
        if not self._loading:
            self.heartbeat.account = "playing"

    def reset_figures(self) -> None:
        """Start the meters afresh (the benchmark calls this after its warm-up)."""
        for m in (self.display_meter, self.infer_meter, self.cam_meter):
            m.reset()
        self.heartbeat.reset()
        self.frames_displayed = self.frames_inferred = self.cams_done = 0

    def figures(self) -> dict[str, Any]:
        """Every figure the window shows (and a few more), for the self-check and the benchmark."""
        d = (self.model_info or {}).get("describe", {})
        cap = self._capture.worker if self._capture else None
        return {
            "frames_captured": cap.captured.count if cap else 0,
            "frames_displayed": self.frames_displayed,
            "frames_inferred": self.frames_inferred,
            "frames_dropped_stale": self._infer_slot.dropped,
            "display_dropped": self._display_slot.dropped,
            "display_fps": round(self.display_meter.rate(), 2),
            "display_fps_mean": round(self.display_meter.mean_rate(), 2),
            "inference_fps": round(self.infer_meter.rate(), 2),
            "inference_fps_mean": round(self.infer_meter.mean_rate(), 2),
            "infer_ms_last": round(float(getattr(self.prediction, "infer_ms", 0.0) or 0.0), 2),
            "infer_ms_p50": self.infer_meter.percentile(50),
            "infer_ms_p95": self.infer_meter.percentile(95),
            "total_ms_last": round(float(getattr(self.prediction, "total_ms", 0.0) or 0.0), 2) if self.prediction is not None else None,
            "cam_count": self.cams_done,
            "cam_fps_mean": round(self.cam_meter.mean_rate(), 2),
            "cam_ms_p50": self.cam_meter.percentile(50),
            "cam_dropped": self._cam_slot.dropped,
            "ui_latency_max_ms": round(self.heartbeat.maxima["playing"], 2),
            "ui_latency_loading_max_ms": round(self.heartbeat.maxima["loading"], 2),
            "ui_latency_p99_ms": round(self.heartbeat.percentile(99), 2),
            "ui_latency_samples": len(self.heartbeat.samples["playing"]),
            "backend": d.get("backend"),
            "providers": d.get("providers"),
            "precision": d.get("precision"),
            "fallback": bool(d.get("fallback", False)),
        }

    def _update_figures(self) -> None:
        f = self.figures()
        s = self.session
        state = s.playback  # playing | paused | ended | still: rates are live figures, shown only while playing

        def rate(value: float, count: int) -> str:
            if state == "playing":
                return f"{value:.1f}" if count > 1 else "–"
            if self.frame is None:  # a source that never showed a frame (no camera, a bad file) did not end: it never ran
                return "–"
            return state if state in ("paused", "ended") else "–"

        self.fig["latency"].setText(f"{f['infer_ms_last']:.1f} ms" if self.prediction is not None else "–")
        self.fig["e2e"].setText(f"{self.e2e_ms:.0f} ms" if self.e2e_ms is not None else "–")
        self.fig["ifps"].setText(rate(f["inference_fps"], self.infer_meter.count) if self._model_active() else "–")
        self.fig["dfps"].setText(rate(f["display_fps"], self.display_meter.count))
        self.fig["dropped"].setText(f"{f['frames_dropped_stale']}")
        if not s.cam_enabled:
            self.fig["cam"].setText("off")
        elif s.cam_active and s.cam_out is not None:
            r = self.cam_meter.rate() if state == "playing" else 0.0
            self.fig["cam"].setText((f"{r:.1f} fps · " if r else "") + f"{s.cam_out.ms:.0f} ms")
        else:
            self.fig["cam"].setText("–")
        if self.frame is not None:
            self.status_frames.setText(f"frame {self.frame.index}")

    # ------------------------------------------------------------------ snapshot
    def compose_snapshot(self) -> QtGui.QImage:
        """The displayed frame with its overlay (if any) and a footer with the label, bars and figures."""
        frame = self.view.frame
        if frame is None:
            raise SourceError("nothing to snapshot yet: open an image, a video, a folder or a camera first")
        cam, state = self.view.cam, self.view.overlay_state
        drawn = cam is not None and state != "none" and cam.heat.shape[:2] == frame.rgb.shape[:2]
        self._update_figures()
        shown = [(t, self.fig[k].text()) for k, t in (("latency", "inference"), ("e2e", "capture → label"), ("ifps", "inference fps"),
                                                       ("dfps", "display fps"), ("dropped", "dropped"))]
        idle = ("–", "", "paused", "ended")  # a snapshot lists measured figures only
        lines = [" · ".join(f"{t} {v}" for t, v in shown[:3] if v not in idle),
                 " · ".join(f"{t} {v}" for t, v in shown[3:] if v not in idle)]
        lines = [ln for ln in lines if ln]
        d = (self.model_info or {}).get("describe", {})
        if d:
            lines.append(self._backend_line(d) + ("  ·  CUDA requested, running on CPU" if d.get("fallback") else ""))
        lines.append(f"{frame.source} · frame {frame.index} · {_dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}")
        content = SnapshotContent(rgb=frame.rgb, layer=cam.colour if drawn else None, opacity=self.view.opacity,
                                  prediction=self.prediction, lines=lines, caption=self.view.caption if state != "none" else "",
                                  caption_level=self.view.caption_level, model_view=self._model_view(frame))
        return compose_snapshot(content, self.font())

    def save_snapshot(self, path: str, *, background: bool = True) -> threading.Thread | None:
        """Write the snapshot PNG atomically (in a background thread unless told otherwise)."""
        try:
            img = self.compose_snapshot()
        except SourceError as e:
            self.report(str(e))
            return None
        path = os.fspath(path)
        if not path.lower().endswith(".png"):
            path += ".png"

        def write():
            try:
                write_png(img, path)
                self._relay.snapshot_done.emit(path, "")
            except OSError as e:
                self._relay.snapshot_done.emit(path, " ".join(str(e).split()))

        if not background:
            write()
            return None
        t = threading.Thread(target=write, name="snapshot", daemon=True)
        t.start()
        return t

    def _on_snapshot_done(self, path: str, err: str) -> None:
        if err:
            self.report(f"[output] {path}: snapshot not saved ({err}); choose another folder")
        else:
            self.status(f"Snapshot saved: {path}", 8000)
            self.snapshot_saved.emit(path)

    # ------------------------------------------------------------------ menu handlers (dialogs)
    def _dialog_dir(self) -> str:
        """Where a file dialog starts: the folder last used in one, else the current working directory."""
        return self.last_dir if self.last_dir and os.path.isdir(self.last_dir) else os.getcwd()

    def _remember_dir(self, path: str, *, is_dir: bool = False) -> None:
        self.last_dir = os.path.abspath(path if is_dir else os.path.dirname(path))

    def _menu_open_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open image or video", self._dialog_dir(), media_file_filter())
        if path:
            self._remember_dir(path)
            self.open_path(path)

    def _menu_open_stream(self) -> None:
        url, ok = QtWidgets.QInputDialog.getText(self, "Open network stream", "Stream URL (rtsp://, http(s)://, udp://):",
                                                 text=getattr(self, "_last_url", "rtsp://"))
        if ok and url.strip():
            self._last_url = url.strip()
            self.open_source(url.strip())

    def _menu_open_folder(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a folder of images (slideshow)", self._dialog_dir())
        if path:
            self._remember_dir(path, is_dir=True)
            self.open_source(path)

    def _menu_open_model(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open model", self._dialog_dir(), model_file_filter())
        if path:
            self._remember_dir(path)
            self.set_model(path)

    def _menu_open_reference(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open reference checkpoint", self._dialog_dir(), reference_file_filter())
        if path:
            self._remember_dir(path)
            self.set_reference(path)

    def _menu_set_classes(self) -> None:
        if not self.model_path:
            self.report("open a model first (Model ▸ Open Model…)", "warn")
            return
        names = self._ask_class_names_dialog(self.model_path, "")
        if names:
            self.set_model(self.model_path, class_names=names)

    def _menu_snapshot(self) -> None:
        if self.view.frame is None:
            self.report("nothing to snapshot yet: open an image, a video, a folder or a camera first", "warn")
            return
        name = f"pawlens-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.png"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save snapshot", os.path.join(self._dialog_dir(), name), "PNG image (*.png)")
        if path:
            self._remember_dir(path)
            self.save_snapshot(path)

    def _ask_class_names_dialog(self, path: str, msg: str) -> list[str] | None:
        text, ok = QtWidgets.QInputDialog.getText(
            self, "Class names needed",
            f"{os.path.basename(path)} carries no class names.\nEnter them in the model's output order, comma-separated:",
            text="cat,dog")
        if not ok:
            return None
        names = [n.strip() for n in text.split(",") if n.strip()]
        return names if len(names) >= 2 else None

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        md = ev.mimeData()
        if md.hasUrls() and any(u.isLocalFile() for u in md.urls()):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if not paths:
            ev.ignore()
            return
        ev.acceptProposedAction()
        for p in paths[:3]:  # e.g. a model and a video dropped together
            self.open_path(p)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop every worker and wait for their threads (only here does the UI thread wait)."""
        self.heartbeat.stop()
        self._fig_timer.stop()
        workers = [w for w in (self._capture, self._inference, self._cam) if w is not None]
        self._capture = self._inference = self._cam = None
        for w in workers:
            w.worker.stop()
        deadline = time.perf_counter() + timeout_ms / 1e3
        for w in workers:
            w.stop(wait=True, timeout_ms=max(100, int((deadline - time.perf_counter()) * 1e3)))
        WorkerThread.stop_all(timeout_ms=max(100, int((deadline - time.perf_counter()) * 1e3)))

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(ev)


__all__ = ["FrameView", "MainWindow", "ProbBars", "WindowOptions", "apply_theme", "one_line"]
