"""The Grad-CAM side of the window: the reference checkpoint's worker, its pairing with the deployed model, the
overlay's controls (on/off, opacity, the class to explain, sync) and the CAM jobs.

    win.cam.set_enabled(False); win.cam.set_alpha(0.4); win.cam.set_target(1)      # what the sidebar's controls call

The window owns one :class:`CamControl` and loads a reference through it (``win.set_reference(path)``).  What may
be paired is :func:`gui.panels.pair_verdict`; which CAM is drawn on which frame is :class:`gui.session.GuiSession`.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6 import QtCore

from . import panels
from .session import CamOutput
from .workers import CamWorker, WorkerThread


class CamControl(QtCore.QObject):
    """The reference model's worker and the overlay's state for one window (``win``)."""

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.thread: WorkerThread | None = None
        self.path: str | None = None
        self.info: dict[str, Any] | None = None

    # ------------------------------------------------------------------ the reference
    def load(self, path: str | None = None, *, explainer: Any = None) -> None:
        """Load the PyTorch reference (path via the loader, or a ready explainer) in a fresh CAM thread."""
        win = self.win
        if explainer is None and path is None:
            return
        if explainer is None and win.loader is None:
            win.report("no reference loader configured (start the app with pawlens-gui)")
            return
        self.stop()
        self.path = path if path is not None else getattr(explainer, "path", None)
        self.info = None
        win.session.forget_cams()
        win.meters.cam.reset()
        if explainer is not None:
            def build(e=explainer):
                return e
        else:
            def build(p=path):
                return win.loader.load_explainer(p)
        w = CamWorker(build, win._cam_slot, gen=win.gens.new("cam"), path=path)
        w.target_class = win.session.cam_target
        w.ready.connect(self._on_ready)
        w.result.connect(self._on_cam)
        w.mode.connect(self._on_mode)
        w.error.connect(self._on_error)
        win.heartbeat.begin("reference")
        self.thread = WorkerThread(w).start()
        win.cam_text.setText(f"Loading {os.path.basename(self.path or 'reference')}…")
        self.update_controls()

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None
        self.win.session.reference_ready = False
        self.sync_forwarding()

    def sync_forwarding(self) -> None:
        """The inference worker passes classified frames on to the CAM worker exactly while CAMs are active."""
        inference = self.win._inference
        if inference is not None:
            if self.win.session.cam_active:
                inference.worker.forward_enabled.set()
            else:
                inference.worker.forward_enabled.clear()

    def _on_ready(self, gen: int, info: dict) -> None:
        if gen != self.win.gens["cam"]:
            return
        self.win.heartbeat.end("reference")
        self.info = info
        self.check_pair()
        self.win._set_targets()
        self.win.reference_ready.emit(info)

    def _gone(self, text: str, msg: str) -> None:
        self.info = None
        self.win.session.forget_cams()
        self.update_controls()
        self.win.cam_text.setText(text)
        self.win.report(msg)
        self.win._refresh_view()

    def _on_error(self, gen: int, msg: str) -> None:
        if gen != self.win.gens["cam"]:
            return
        self.win.heartbeat.end("reference")
        self.thread = None
        self._gone("No reference: Grad-CAM is off", f"Reference: {msg}")

    def check_pair(self) -> None:
        """Refuse a reference whose classes (or architecture) differ from the deployed model's (:func:`panels.pair_verdict`)."""
        win = self.win
        if self.info is None or self.thread is None:
            win.session.reference_ready = False
            self.update_controls()
            return
        verdict, why = panels.pair_verdict(self.info, win.model_info, self.path, win.model_path)
        if verdict == "refuse":
            self.stop()
            self._gone("Reference refused: Grad-CAM is off", why)
            return
        if verdict == "warn":
            win.report(why, "warn")
        win.session.reference_ready = True
        self.sync_forwarding()
        self.update_controls()
        win.sidebar.show_reference(panels.reference_text(self.path, self.info))
        self.kick()

    def _on_mode(self, gen: int, mode: str) -> None:
        """The CAM worker switched paths (a background trace was checked and adopted, or refused and why)."""
        if gen == self.win.gens["cam"] and self.info is not None:
            self.info["mode"] = mode
            self.win.sidebar.show_reference(panels.reference_text(self.path, self.info))

    def update_controls(self) -> None:
        ok = self.thread is not None and self.win.session.reference_ready
        self.win.sidebar.enable_cam(ok, no_reference=self.thread is None and self.info is None)
        self.win.act_cam.setEnabled(ok)

    # ------------------------------------------------------------------ the overlay's controls
    def set_enabled(self, on: bool) -> None:
        win = self.win
        win.session.cam_enabled = bool(on)
        for w in (win.cam_check, win.act_cam):
            if w.isChecked() != win.session.cam_enabled:
                w.blockSignals(True)
                w.setChecked(win.session.cam_enabled)
                w.blockSignals(False)
        self.sync_forwarding()
        if not win.session.cam_enabled:
            win._cam_slot.clear()
        else:
            self.kick()
        win._refresh_view()

    def set_alpha(self, alpha: float) -> None:
        win = self.win
        a = float(min(1.0, max(0.0, alpha)))
        win.view.opacity = a
        win.opts.alpha = a
        win.alpha_value.setText(f"{int(round(a * 100))}%")
        if win.alpha_slider.value() != int(round(a * 100)):
            win.alpha_slider.setValue(int(round(a * 100)))
        win.view.update()

    def set_target(self, class_index: int | None) -> None:
        """Explain another class; a paused or still frame is explained again at once."""
        win = self.win
        target = None if class_index is None else int(class_index)
        if self.thread is not None:
            self.thread.worker.target_class = target  # before the job: the worker reads it when it takes one
        job = win.session.set_target(target, self._queued_frame_id())
        if job is not None:
            win._cam_slot.put(job)
        k = win.target_combo.findData(target) if target is not None else 0
        if k >= 0 and win.target_combo.currentIndex() != k:
            win.target_combo.setCurrentIndex(k)
        win._refresh_view()

    def set_sync(self, on: bool) -> None:
        win = self.win
        win.opts.sync_cam = win.session.sync_cam = bool(on)
        if win.sync_check.isChecked() != bool(on):
            win.sync_check.setChecked(bool(on))
        win._refresh_view()

    # ------------------------------------------------------------------ jobs and results
    def _queued_frame_id(self) -> int | None:
        queued = self.win._cam_slot.peek()
        return queued[0].id if queued is not None else None

    def kick(self) -> None:
        """Ask for the CAM of the frame on screen when the session says no new frame will bring one."""
        job = self.win.session.cam_job(self._queued_frame_id())
        if job is not None:
            self.win._cam_slot.put(job)

    def _on_cam(self, gen: int, out: CamOutput) -> None:
        win = self.win
        if gen != win.gens["cam"] or not win.session.on_cam(out):
            return
        win.meters.explained(out.ms)
        self.kick()  # e.g. the class to explain changed while this one was computed
        win._refresh_view()
        win.cam_shown.emit(out.frame.id)
