"""The main window: the wiring between the workers, the session and the widgets.  Models come in from outside
(``gui/app.py`` or a test).

    win = MainWindow(loader=RuntimeLoader(), options=WindowOptions(alpha=0.4))
    win.set_model("model.onnx"); win.set_reference("best.pt"); win.open_source("cat.mp4")

or, in a test, with fakes and no ML framework at all::

    win = MainWindow(predictor=FakePredictor(), explainer=FakeCam())

The window never runs a model: predictions and Grad-CAM come from :mod:`gui.workers` through queued signals, every
one tagged with the worker's generation (:class:`gui.session.Generations`) and the frame it belongs to.  Which CAM
is drawn on which frame, when a CAM must be asked for and what the caption says is decided by
:class:`gui.session.GuiSession`; what the panels say (the model panel, the figures, the snapshot's lines, whether a
reference may explain the model) by :mod:`gui.panels`; neither has Qt.  The widgets are built by
:mod:`gui.layout`, the menus' dialogs live in :mod:`gui.dialogs`, the meters in :mod:`gui.meters`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from pawlens.runtime import formats
from pawlens.runtime.formats import CHECKPOINT

from . import panels
from .cam_control import CamControl
from .dialogs import Dialogs, ask_class_names
from .layout import build_ui
from .meters import LatestSlot, Meters
from .panels import ViewBox
from .session import Frame, Generations, GuiSession, pct
from .snapshot import SnapshotContent, compose_snapshot, write_png
from .sources import ImageSource, SourceError, open_source
from .theme import STYLESHEET, apply_theme
from .widgets import FrameView, ProbBars
from .workers import CaptureWorker, Heartbeat, InferenceWorker, WorkerThread, one_line

#: The reference checkpoint's kind in the formats table (Grad-CAM runs on it); every other loadable kind is a model.
CHECKPOINT_KIND = CHECKPOINT
#: The panel's line when a source gave no frame (a bad file, no camera): it stops waiting for one.
NO_FRAMES = "No frames from this source · open another (File, or drop it here)"


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
    """Carries the snapshot writer's result from its plain Python thread to the UI thread."""

    snapshot_done = QtCore.Signal(str, str)  # path, error ("" when saved)


# ----------------------------------------------------------------------------- the window


def _meter(name: str, doc: str):
    return property(lambda self: getattr(self.meters, name), doc=doc)


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
        self.ask_class_names: Callable[[str, str], list[str] | None] = lambda path, msg: ask_class_names(self, path, msg)

        self.gens = Generations()
        self._infer_slot = LatestSlot()
        self._cam_slot = LatestSlot()
        self._display_slot = LatestSlot()
        self._capture: WorkerThread | None = None
        self._inference: WorkerThread | None = None
        self._source_spec: str | int | None = None
        self.model_path: str | None = None
        self.model_info: dict[str, Any] | None = None
        self.model_classes_override: list[str] | None = None
        self.errors: list[str] = []

        # which frame, prediction and CAM go together, and what to draw: no Qt in there (gui/session.py)
        self.session = GuiSession(stale_ms=self.opts.stale_ms, stale_hold_ms=self.opts.stale_hold_ms,
                                  cam_enabled=self.opts.cam_enabled, sync_cam=self.opts.sync_cam)
        self.meters = Meters()
        self._view_box = ViewBox()
        self._relay = _Relay()
        self._relay.snapshot_done.connect(self._on_snapshot_done)
        self.dialogs = Dialogs(self)
        self.cam = CamControl(self)

        build_ui(self, self.dialogs)
        self.view.on_new_frame_painted = lambda _frame_id: self.meters.painted()
        self.cam_check.toggled.connect(self.cam.set_enabled)
        self.alpha_slider.valueChanged.connect(lambda v: self.cam.set_alpha(v / 100.0))
        self.target_combo.currentIndexChanged.connect(lambda _i: self.cam.set_target(self.target_combo.currentData()))
        self.sync_check.toggled.connect(self.cam.set_sync)
        self.heartbeat = Heartbeat(10, self)
        self.heartbeat.start()

        self._fig_timer = QtCore.QTimer(self)
        self._fig_timer.setInterval(250)
        self._fig_timer.timeout.connect(self._update_figures)
        self._fig_timer.start()
        self._update_model_panel()
        self.cam.update_controls()

        if predictor is not None:
            self.set_model(predictor=predictor)
        if explainer is not None:
            self.set_reference(explainer=explainer)
        if self.opts.probe_cameras:
            self.dialogs.refresh_cameras()
        else:
            self.dialogs.fill_cameras([], probed=False)

    # The session's state, read-only here (tests, the self-check and the benchmark read it).
    frame = property(lambda self: self.session.frame, doc="the newest frame of the current source")
    prediction = property(lambda self: self.session.prediction, doc="the deployed model's newest prediction")
    prediction_frame = property(lambda self: self.session.prediction_frame, doc="the frame of that prediction")
    cam_out = property(lambda self: self.session.cam_out, doc="the newest Grad-CAM result (CamOutput)")
    cam_enabled = property(lambda self: self.session.cam_enabled, doc="the overlay switch")
    cam_target = property(lambda self: self.session.cam_target, doc="the class to explain (None: the predicted one)")
    paused = property(lambda self: self.session.paused, doc="paused by the person, or a video that ended")
    # The meters' counts (gui/meters.py), per source.
    frames_displayed = _meter("frames_displayed", "frames painted since the source opened (or the last reset)")
    frames_inferred = _meter("frames_inferred", "predictions shown")
    cams_done = _meter("cams_done", "Grad-CAM results shown")
    e2e_ms = _meter("e2e_ms", "capture to label of the newest prediction, ms")
    display_meter = _meter("display", "the display rate")
    infer_meter = _meter("infer", "the inference rate and latencies")
    cam_meter = _meter("cam", "the Grad-CAM rate and latencies")
    # The reference's state (gui/cam_control.py).
    ref_info = property(lambda self: self.cam.info, doc="the loaded reference's info (classes, arch, sha256, mode)")
    reference_path = property(lambda self: self.cam.path, doc="the reference checkpoint's path")
    _cam = property(lambda self: self.cam.thread, doc="the CAM worker's thread (None: no reference)")
    cameras = property(lambda self: self.dialogs.cameras, doc="the webcams found")
    auto_open_camera = property(lambda self: self.dialogs.auto_open_camera,
                                lambda self, on: setattr(self.dialogs, "auto_open_camera", bool(on)),
                                doc="open the first camera found (the app does when no --source is given)")

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
        gen = self.gens.new("capture")
        self._display_slot = LatestSlot()
        self._infer_slot.clear()
        self._cam_slot.clear()
        self.session.new_source(gen, still=bool(getattr(source, "still", False)))  # nothing of the previous source stays
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
        self.meters.e2e_ms = None
        self.status_source.setText(desc)
        w = CaptureWorker(source, self._display_slot, self._infer_slot, gen=gen, paused=False)
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
        self.cam.kick()  # a paused frame gets its own CAM

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

    # ------------------------------------------------------------------ capture signals
    def _on_source_opened(self, gen: int, desc: str) -> None:
        if gen == self.gens["capture"]:
            self.status_source.setText(desc)
            self.status(f"Playing {desc}", 4000)

    def _on_source_note(self, gen: int, msg: str) -> None:
        """A line from the source (a frame it skipped) or from inference (a frame the model could not take)."""
        if gen in (self.gens["capture"], self.gens["inference"]):
            self.status(msg, 8000)

    def _on_stream_state(self, gen: int, state: str, msg: str) -> None:
        """A network stream dropped (banner and status while it reconnects; the last frame stays) or is back."""
        if gen != self.gens["capture"] or self._capture is None:  # a signal still queued from a capture stopped since
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

    def _on_source_ended(self, gen: int, msg: str) -> None:
        if gen != self.gens["capture"]:
            return
        s = self.session
        s.ended = True
        self.status(msg, 15000)
        self.source_ended.emit(msg)
        if not s.still:  # an image stays on screen; there is nothing to play
            self._show_play_button(True)
            s.paused = True
        self.cam.kick()

    def _on_source_error(self, gen: int, msg: str) -> None:
        if gen != self.gens["capture"]:
            return
        self.session.ended = True
        if self.frame is None:
            self.view.placeholder = "Cannot show this source:\n" + msg.split("] ", 1)[-1].replace("; ", ";\n")
            self.view.update()
            if self.model_info is not None:  # no frame is coming: the panel stops waiting for one
                self.label_sub.setText(NO_FRAMES)
        self.report(msg)  # the last frame (if any) stays on screen; the rest of the app keeps working

    def _on_frame_ready(self, gen: int) -> None:
        frame = self._display_slot.take_nowait()
        if frame is None or gen != self.gens["capture"] or frame.session != gen:
            return
        job = self.session.on_frame(frame)
        if job is not None:
            self._cam_slot.put(job)
        self._refresh_view()

    # ------------------------------------------------------------------ model
    def set_model(self, path: str | None = None, *, predictor: Any = None, class_names: Sequence[str] | None = None) -> None:
        """Load the deployed model (path via the loader, or a ready predictor) in a fresh inference thread."""
        if predictor is None and path is None:
            return
        if predictor is None and self.loader is None:
            self.report("no model loader configured (start the app with pawlens-gui)")
            return
        if self._inference is not None:
            self._inference.stop()
            self._inference = None
        self.model_path = path if path is not None else getattr(predictor, "path", None)
        self.model_classes_override = list(class_names) if class_names else None
        self.model_info = None
        self.session.forget_predictions()
        self.meters.infer.reset()
        self.session.reference_ready = False  # paired again once the model is ready
        if predictor is not None:
            def build(p=predictor):
                return p
        else:
            def build(p=path, c=self.model_classes_override):
                return self.loader.load_predictor(p, c)
        w = InferenceWorker(build, self._infer_slot, gen=self.gens.new("inference"), forward=self._cam_slot)
        w.ready.connect(self._on_model_ready)
        w.result.connect(self._on_prediction)
        w.error.connect(self._on_model_error)
        w.needs_class_names.connect(self._on_model_needs_class_names)
        w.skipped.connect(self._on_source_note)
        self.heartbeat.begin("model")
        self._inference = WorkerThread(w).start()
        name = os.path.basename(self.model_path) if self.model_path else "model"
        self.label_sub.setText(f"Loading {name}…")
        self._update_model_panel()
        if self.frame is not None and self.frame.session == self.gens["capture"]:
            self._infer_slot.put(self.frame)  # classify what is on screen (matters for a still image)

    def _on_model_ready(self, gen: int, info: dict) -> None:
        if gen != self.gens["inference"]:
            return
        self.heartbeat.end("model")
        self.model_info = info
        self.session.model_ready = True
        d = info.get("describe", {})
        self.label_sub.setText(f"Ready: {os.path.basename(self.model_path) if self.model_path else d.get('backend', 'model')}")
        self.bars.set_probs(info["class_names"], None)
        self._update_model_panel()
        self.cam.check_pair()
        self._set_targets()
        self._refresh_view()
        self.model_ready.emit(info)
        choice = info.get("backend_choice") or ""
        self.status(f"Model ready: {panels.backend_line(d)}" + (f" ({choice})" if choice else "")
                    + f", loaded in {info.get('load_ms', 0):.0f} ms", 12000)

    def _model_failed(self, gen: int, panel_line: str) -> bool:
        """The current model did not load (False for a signal from an older one): the panel says ``panel_line``."""
        if gen != self.gens["inference"]:
            return False
        self.heartbeat.end("model")
        self._inference = None
        self.model_info = None
        self.session.model_ready = False
        self._update_model_panel()
        self.label_sub.setText(panel_line)
        return True

    def _on_model_error(self, gen: int, msg: str) -> None:
        if self._model_failed(gen, "Model failed: see the message above"):
            self.report(f"Model: {msg}")

    def _on_model_needs_class_names(self, gen: int, msg: str) -> None:
        """The model file has no pawlens metadata (MissingMetadata): ask for its class names, or refuse."""
        if not self._model_failed(gen, "Model refused: no class names"):
            return
        path = self.model_path
        if path and self.model_classes_override is None and self.opts.interactive:
            names = self.ask_class_names(path, msg)
            if names:
                self.set_model(path, class_names=names)
                return
        self.report(f"{msg} (refused: start with --classes NAME,NAME or use Model ▸ Set Class Names…)")

    def _on_prediction(self, gen: int, frame: Frame, pred: Any) -> None:
        if gen != self.gens["inference"] or not self.session.on_prediction(frame, pred):
            return
        self.meters.classified(float(getattr(pred, "infer_ms", 0.0)), frame.t)
        self.label_big.setText(str(pred.label))
        self.label_conf.setText(pct(pred.probs[pred.index]))
        lag = (self.frame.id - frame.id) if self.frame is not None else 0
        when = "on screen" if lag <= 0 else f"{lag} behind"
        self.label_sub.setText(f"Deployed model · frame {frame.index} ({when})")
        self.bars.set_probs(pred.class_names, pred.probs)
        self.cam.kick()  # a still / paused frame whose classification came after the CAM was ready
        self._refresh_view()  # the CAM may have come first: now the two models can be compared
        self.prediction_shown.emit(frame.id)

    # ------------------------------------------------------------------ reference / CAM (gui/cam_control.py)
    def set_reference(self, path: str | None = None, *, explainer: Any = None) -> None:
        """Load the PyTorch reference for Grad-CAM in a fresh CAM thread."""
        self.cam.load(path, explainer=explainer)

    def _set_targets(self) -> None:
        self.sidebar.set_targets((self.model_info or self.ref_info or {}).get("class_names", []))
        self.cam.set_target(self.target_combo.currentData())

    # ------------------------------------------------------------------ view and panels
    def _refresh_view(self) -> None:
        shown = self.session.view(self.view.frame)
        self.view.set_frame(shown.frame)
        self.view.set_overlay(shown.cam, shown.state, shown.caption, shown.level)
        self.view.set_model_view(self._model_view(shown.frame))

    def _model_view(self, frame: Frame | None) -> tuple[float, float, float, float] | None:
        """The crop the deployed model (else the paired reference) sees on ``frame``, in frame pixels; None if unknown."""
        if frame is None:
            return None
        return self._view_box.of(frame.rgb.shape[:2], self.model_info, self.ref_info, self.session.reference_ready)

    def _update_model_panel(self) -> None:
        panel = panels.model_panel(self.model_info, path=self.model_path, classes_by_hand=bool(self.model_classes_override),
                                   loading=self._inference is not None)
        self.sidebar.show_model(panel, clear_prediction=self.model_info is None and self._inference is None)

    def reset_figures(self) -> None:
        """Start the meters afresh (the benchmark calls this after its warm-up)."""
        self.meters.reset()
        self.heartbeat.reset()

    def figures(self) -> dict[str, Any]:
        """Every figure the window shows (and a few more), for the self-check and the benchmark."""
        cap = self._capture.worker if self._capture else None
        return panels.collect_figures(self.meters, captured=cap.captured.count if cap else 0, infer_dropped=self._infer_slot.dropped,
                                      display_dropped=self._display_slot.dropped, cam_dropped=self._cam_slot.dropped,
                                      prediction=self.prediction, heartbeat=self.heartbeat,
                                      describe=(self.model_info or {}).get("describe", {}))

    def _update_figures(self) -> dict[str, str]:
        s = self.session
        texts = panels.figure_texts(self.figures(), self.meters, playback=s.playback, has_frame=self.frame is not None,
                                    has_prediction=self.prediction is not None, model_ready=s.model_ready,
                                    cam_enabled=s.cam_enabled, cam_active=s.cam_active, cam_ms=s.cam_out.ms if s.cam_out else None)
        self.sidebar.show_figures(texts)
        if self.frame is not None:
            self.status_frames.setText(f"frame {self.frame.index}")
        return texts

    # ------------------------------------------------------------------ snapshot
    def compose_snapshot(self) -> QtGui.QImage:
        """The displayed frame with its overlay (if any) and a footer with the label, bars and figures."""
        frame = self.view.frame
        if frame is None:
            raise SourceError("nothing to snapshot yet: open an image, a video, a folder or a camera first")
        cam, state = self.view.cam, self.view.overlay_state
        drawn = cam is not None and state != "none" and cam.heat.shape[:2] == frame.rgb.shape[:2]
        lines = panels.snapshot_lines(self._update_figures(), (self.model_info or {}).get("describe", {}), frame.source, frame.index)
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

    # ------------------------------------------------------------------ drag and drop, shutdown
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

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop every worker and wait for their threads (only here does the UI thread wait)."""
        self.heartbeat.stop()
        self._fig_timer.stop()
        workers = [w for w in (self._capture, self._inference, self.cam.thread) if w is not None]
        self._capture = self._inference = self.cam.thread = None
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
