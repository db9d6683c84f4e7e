"""The window's widgets, built once: the actions, menus and toolbar, the frame view, the status bar and the
sidebar (:class:`Sidebar`: prediction, performance, model and Grad-CAM sections).  Like a Qt Designer ``setupUi``,
:func:`build_ui` puts every widget on the window under the name the window and the tests use (``win.view``,
``win.fig["dfps"]``, ``win.act_pause``...); the window wires them to the workers and the session.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from .panels import FIGURES, ModelPanel
from .widgets import Banner, FrameView, ProbBars, section


def _label(text: str = "", name: str = "", *, wrap: bool = False) -> QtWidgets.QLabel:
    w = QtWidgets.QLabel(text)
    if name:
        w.setObjectName(name)
    w.setWordWrap(wrap)
    return w


class Sidebar(QtWidgets.QWidget):
    """The panel at the right: what the deployed model says, the figures, which model runs, and the CAM controls.
    Its ``show_*`` methods put a panel model's texts (:mod:`gui.panels`) into the widgets."""

    def __init__(self, *, alpha: float, cam_enabled: bool, sync_cam: bool):
        super().__init__()
        self.setObjectName("Sidebar")
        self.setFixedWidth(320)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(18, 12, 18, 12)
        lay.setSpacing(6)

        lay.addWidget(section("Prediction"))
        top = QtWidgets.QHBoxLayout()
        self.label_big = _label("—", "BigLabel")
        self.label_conf = _label("", "Confidence")
        top.addWidget(self.label_big, 1)
        top.addWidget(self.label_conf, 0, QtCore.Qt.AlignmentFlag.AlignBottom)
        lay.addLayout(top)
        self.label_sub = _label("No model loaded", "Muted", wrap=True)
        lay.addWidget(self.label_sub)
        self.bars = ProbBars()
        lay.addWidget(self.bars)

        lay.addSpacing(6)
        lay.addWidget(section("Performance"))
        grid = QtWidgets.QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(3)
        self.fig: dict[str, QtWidgets.QLabel] = {}
        for i, (key, title, _snapshot_title) in enumerate(FIGURES):
            v = _label("–", "FigValue")
            v.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(_label(title, "Muted"), i, 0)
            grid.addWidget(v, i, 1)
            self.fig[key] = v
        lay.addLayout(grid)

        lay.addSpacing(6)
        lay.addWidget(section("Model"))
        badges = QtWidgets.QHBoxLayout()
        badges.setSpacing(6)
        self.badge_backend, self.badge_device, self.badge_precision = (_label("", "Badge") for _ in range(3))
        for b in (self.badge_backend, self.badge_device, self.badge_precision):
            badges.addWidget(b)
        badges.addStretch(1)
        lay.addLayout(badges)
        self.badge_fallback = _label("", "WarnBadge", wrap=True)
        self.badge_fallback.hide()
        lay.addWidget(self.badge_fallback)
        self.model_text = _label("", "Muted", wrap=True)
        lay.addWidget(self.model_text)

        lay.addSpacing(6)
        lay.addWidget(section("Grad-CAM (reference model)"))
        self.cam_check = QtWidgets.QCheckBox("Show overlay")
        self.cam_check.setChecked(cam_enabled)
        lay.addWidget(self.cam_check)
        orow = QtWidgets.QHBoxLayout()
        self.alpha_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setValue(int(round(alpha * 100)))
        self.alpha_value = _label(f"{int(round(alpha * 100))}%", "FigValue")
        self.alpha_value.setMinimumWidth(38)
        orow.addWidget(_label("Opacity", "Muted"))
        orow.addWidget(self.alpha_slider, 1)
        orow.addWidget(self.alpha_value)
        lay.addLayout(orow)
        trow = QtWidgets.QHBoxLayout()
        self.target_combo = QtWidgets.QComboBox()
        self.target_combo.addItem("Predicted class", None)
        trow.addWidget(_label("Explain", "Muted"))
        trow.addWidget(self.target_combo, 1)
        lay.addLayout(trow)
        self.sync_check = QtWidgets.QCheckBox("Sync video to CAM (exact, slower)")
        self.sync_check.setChecked(sync_cam)
        lay.addWidget(self.sync_check)
        self.cam_text = _label("", "Muted", wrap=True)
        lay.addWidget(self.cam_text)
        lay.addStretch(1)

    def show_model(self, panel: ModelPanel, *, clear_prediction: bool) -> None:
        badges = ((self.badge_backend, panel.backend, panel.backend_tip), (self.badge_device, panel.device, panel.device_tip),
                  (self.badge_precision, panel.precision, ""))
        for badge, text, tip in badges:
            badge.setText(text)
            badge.setToolTip(tip)
            badge.setVisible(bool(text))
        self.badge_fallback.setText(panel.fallback)
        self.badge_fallback.setVisible(bool(panel.fallback))
        self.model_text.setText(panel.text)
        if clear_prediction:
            self.label_big.setText("—")
            self.label_conf.setText("")
            self.bars.set_probs([], None)

    def show_figures(self, texts: dict[str, str]) -> None:
        for key, text in texts.items():
            self.fig[key].setText(text)

    def set_targets(self, names) -> None:
        """The classes the CAM can explain, keeping the current choice where it still exists (no signal on the way)."""
        cur = self.target_combo.currentData()
        self.target_combo.blockSignals(True)
        self.target_combo.clear()
        self.target_combo.addItem("Predicted class", None)
        for i, n in enumerate(names):
            self.target_combo.addItem(f"“{n}”", i)
        k = self.target_combo.findData(cur) if cur is not None else 0
        self.target_combo.setCurrentIndex(max(0, k))
        self.target_combo.blockSignals(False)

    def enable_cam(self, ok: bool, *, no_reference: bool) -> None:
        for w in (self.alpha_slider, self.target_combo, self.sync_check, self.cam_check):
            w.setEnabled(ok)
        if no_reference:
            self.cam_text.setText("Model ▸ Open Reference Checkpoint… to see where the reference model looks")
            self.cam_check.setToolTip("Needs the PyTorch reference checkpoint")

    def show_reference(self, text: str) -> None:
        self.cam_text.setText(text)
        self.cam_text.setToolTip("traced: the network up to the Grad-CAM layer runs as one frozen TorchScript call, checked "
                                 "against the eager model before use; eager: every layer runs from Python")


#: The window's attributes that are the sidebar's widgets (tests and the self-check read them on the window).
SIDEBAR_WIDGETS = ("label_big", "label_conf", "label_sub", "bars", "fig", "badge_backend", "badge_device", "badge_precision",
                   "badge_fallback", "model_text", "cam_check", "alpha_slider", "alpha_value", "target_combo", "sync_check",
                   "cam_text")


def build_ui(win, menus) -> None:
    """Every widget of ``win`` (a MainWindow): actions, menus, toolbar, the frame view, the sidebar and the status bar.
    ``menus``: the object whose methods the File and Model menus call (:class:`gui.dialogs.Dialogs`)."""
    st = win.style()
    sp = QtWidgets.QStyle.StandardPixmap

    def act(text, slot, shortcut=None, icon=None, checkable=False, tip=None):
        a = QtGui.QAction(text, win)
        if icon is not None:
            a.setIcon(st.standardIcon(icon))
        if shortcut:
            a.setShortcut(QtGui.QKeySequence(shortcut))
        a.setCheckable(checkable)
        if tip:
            a.setToolTip(tip)
        a.triggered.connect(slot)
        return a

    win.act_open = act("Open…", menus.open_file, "Ctrl+O", sp.SP_DialogOpenButton, tip="Open an image or a video (Ctrl+O)")
    win.act_open_folder = act("Open Folder…", menus.open_folder, "Ctrl+Shift+O", sp.SP_DirOpenIcon)
    win.act_open_stream = act("Open Network Stream…", menus.open_stream, "Ctrl+N",
                              tip="A network camera or stream: rtsp://, http(s):// (MJPEG, HLS) or udp:// (Ctrl+N)")
    win.act_pause = act("Pause", lambda: win.set_paused(not win.paused), "Space", sp.SP_MediaPause, tip="Pause / play (Space)")
    win.act_step = act("Step", win.step, "Right", sp.SP_MediaSeekForward, tip="One frame forward while paused (→)")
    win.act_loop = act("Loop", lambda checked=False: win.set_loop(checked), None, sp.SP_BrowserReload, True, "Replay a video when it ends")
    win.act_loop.setChecked(win.opts.loop)
    win.act_snapshot = act("Snapshot…", menus.snapshot, "Ctrl+S", sp.SP_DialogSaveButton,
                           tip="Save a PNG of the frame, the overlay, the label and the figures (Ctrl+S)")
    win.act_quit = act("Quit", win.close, "Ctrl+Q")
    win.act_open_model = act("Open Model (ONNX / engine)…", menus.open_model, "Ctrl+M")
    win.act_open_ref = act("Open Reference Checkpoint…", menus.open_reference, "Ctrl+R")
    win.act_classes = act("Set Class Names…", menus.set_classes)
    win.act_cam = act("Grad-CAM Overlay", lambda checked=False: win.cam.set_enabled(checked), "C", None, True)
    win.act_refresh_cams = act("Refresh Camera List", menus.refresh_cameras)

    mb = win.menuBar()
    m = mb.addMenu("&File")
    for a in (win.act_open, win.act_open_folder, win.act_open_stream):
        m.addAction(a)
    win.camera_menu = m.addMenu("Camera")
    m.addSeparator()
    m.addAction(win.act_snapshot)
    m.addSeparator()
    m.addAction(win.act_quit)
    m = mb.addMenu("&Model")
    for a in (win.act_open_model, win.act_open_ref, win.act_classes):
        m.addAction(a)
    m = mb.addMenu("&View")
    for a in (win.act_pause, win.act_step, win.act_loop, win.act_cam):
        m.addAction(a)

    tb = QtWidgets.QToolBar("Main")
    tb.setMovable(False)
    tb.setIconSize(QtCore.QSize(18, 18))
    tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    win.addToolBar(tb)
    tb.addAction(win.act_open)
    win.camera_combo = QtWidgets.QComboBox()
    win.camera_combo.setMinimumWidth(150)
    win.camera_combo.setToolTip("Webcams OpenCV can open")
    win.camera_combo.activated.connect(menus.camera_chosen)
    tb.addWidget(win.camera_combo)
    tb.addSeparator()
    for a in (win.act_pause, win.act_step, win.act_loop):
        tb.addAction(a)
    tb.addSeparator()
    tb.addAction(win.act_snapshot)

    central = QtWidgets.QWidget()
    outer = QtWidgets.QVBoxLayout(central)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.setSpacing(0)
    win.banner = Banner()
    bwrap = QtWidgets.QWidget()
    bl = QtWidgets.QVBoxLayout(bwrap)
    bl.setContentsMargins(8, 6, 8, 0)
    bl.addWidget(win.banner)
    outer.addWidget(bwrap)
    row = QtWidgets.QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(0)
    win.view = FrameView()
    win.view.opacity = float(win.opts.alpha)
    row.addWidget(win.view, 1)
    win.sidebar = Sidebar(alpha=win.opts.alpha, cam_enabled=win.session.cam_enabled, sync_cam=win.opts.sync_cam)
    for name in SIDEBAR_WIDGETS:
        setattr(win, name, getattr(win.sidebar, name))
    scroll = QtWidgets.QScrollArea()  # the panel scrolls instead of squeezing when the window is short
    scroll.setObjectName("SidebarScroll")
    scroll.setWidget(win.sidebar)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFixedWidth(332)
    row.addWidget(scroll, 0)
    outer.addLayout(row, 1)
    win.setCentralWidget(central)

    sb = win.statusBar()
    win.status_source = QtWidgets.QLabel("no source")
    win.status_frames = QtWidgets.QLabel("")
    sb.addPermanentWidget(win.status_source)
    sb.addPermanentWidget(win.status_frames)
