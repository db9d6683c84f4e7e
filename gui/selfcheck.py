"""The desktop app's headless self-check (``pawlens-gui --exit-after N``): play N frames, freeze the figures, let
the last frame's prediction and CAM settle, then screenshot, print the figures and quit with 0 (ok), 1 (timed out or
nothing processed) or 2 (a model or source was refused).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from pawlens.fs import atomic_write_text

PROG = "pawlens-gui"


def format_figures(f: dict[str, Any]) -> str:
    def ms(v):
        return "–" if v is None else f"{v:.1f}"

    lines = [
        f"  frames     captured {f['frames_captured']}, displayed {f['frames_displayed']}, classified {f['frames_inferred']}, "
        f"dropped stale {f['frames_dropped_stale']} (never queued)",
        f"  display    {f['display_fps_mean']:.1f} fps",
    ]
    if f.get("backend"):
        prov = ", ".join(f.get("providers") or []) or "-"
        fb = "  [CUDA requested, running on CPU]" if f.get("fallback") else ""
        model = f"{f['backend']} {prov} {f.get('precision') or ''}{fb}"
        if f["frames_inferred"]:
            lines.append(f"  inference  {f['inference_fps_mean']:.1f} fps, {ms(f['infer_ms_p50'])} ms per frame "
                         f"(p95 {ms(f['infer_ms_p95'])}); {model}")
        else:
            lines.append(f"  inference  no frame classified; {model}")
    if f.get("cam_count"):
        lines.append(f"  grad-cam   {f['cam_fps_mean']:.1f} fps, {ms(f['cam_ms_p50'])} ms per frame, {f['cam_count']} computed, "
                     f"{f['cam_dropped']} skipped")
    load = f.get("ui_latency_loading_max_ms")
    during = f"; {load:.1f} ms while a model loaded" if load else ""
    if f.get("ui_latency_samples"):
        lines.append(f"  ui thread  max event-loop latency {f['ui_latency_max_ms']:.1f} ms (p99 {f['ui_latency_p99_ms']:.1f} ms) "
                     f"outside model loading{during}")
    else:
        lines.append(f"  ui thread  no measurement outside model loading (a model was loading the whole run){during}")
    return "\n".join(lines)


class SelfCheck:
    """Drives ``--exit-after``: wait for N frames, freeze the figures, settle the overlay, screenshot, print, quit."""

    def __init__(self, win, n: int, *, screenshot: str | None, json_path: str | None, timeout_s: float, model_expected: bool):
        from PySide6 import QtCore

        self.win, self.n = win, int(n)
        self.screenshot, self.json_path, self.timeout_s = screenshot, json_path, float(timeout_s)
        self.model_expected = model_expected
        self.rc = 1
        self._t0 = time.perf_counter()
        self._phase = "run"
        self._settle_t = 0.0
        self._ended_t: float | None = None
        self.frozen: dict[str, Any] | None = None
        self.note = ""
        self._timer = QtCore.QTimer()
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._poll)
        win.source_ended.connect(self._on_ended)

    def start(self) -> None:
        self._timer.start()

    def _on_ended(self, _msg: str) -> None:
        self._ended_t = time.perf_counter()

    def count(self) -> int:
        w = self.win
        return w.frames_inferred if self.model_expected else w.frames_displayed

    def _poll(self) -> None:
        w, now = self.win, time.perf_counter()
        if self._phase == "run":
            done = self.count() >= self.n
            drained = not self.model_expected or w._inference is None or (
                w.prediction_frame is not None and w.frame is not None and w.prediction_frame.id == w.frame.id)
            if not done and self._ended_t is not None and drained and now - self._ended_t > 0.3:
                done, self.note = True, f"source ended after {w.frames_displayed} frames; {self.count()} of {self.n} processed"
            model_failed = self.model_expected and w._inference is None
            if not done and model_failed and w.errors and (w.frame is not None or self._ended_t is not None):
                done, self.note = True, "the model could not be used"
            if not done and w.session.ended and w.frame is None and w.errors:
                done, self.note = True, "the source could not be used"
            if not done and now - self._t0 > self.timeout_s:
                done, self.note = True, f"timed out after {self.timeout_s:.0f} s with {self.count()} of {self.n} frames"
            if done:
                self.frozen = w.figures()
                if not w.session.ended:
                    w.set_paused(True)  # the last frame gets its prediction and its own CAM: the screenshot is exact
                self._phase, self._settle_t = "settle", now
            return
        if self._phase == "settle":
            ref_loading = w._cam is not None and w.ref_info is None
            want_cam = w.session.cam_active
            settled = w.frame is None or not ref_loading and (not want_cam or w.view.overlay_state == "exact") and (
                not w.session.model_ready or (w.prediction_frame is not None and w.frame is not None and w.prediction_frame.id == w.frame.id))
            if settled or now - self._settle_t > 8.0:
                self._finish()

    def _finish(self) -> None:
        from PySide6 import QtWidgets

        self._timer.stop()
        w = self.win
        f = dict(self.frozen or w.figures())
        f["elapsed_s"] = round(time.perf_counter() - self._t0, 2)
        f["errors"] = list(w.errors)
        f["note"] = self.note
        f["overlay_state_in_screenshot"] = w.view.overlay_state
        src = w.frame.source if w.frame is not None else w.status_source.text()
        print(f"{PROG}: {self.count()} frames processed from {src} in {f['elapsed_s']:.1f} s" + (f" ({self.note})" if self.note else ""))
        print(format_figures(f))
        if self.screenshot:
            w._update_figures()
            QtWidgets.QApplication.processEvents()
            pm = w.grab()
            if pm.save(self.screenshot + ".tmp.png", "PNG"):
                os.replace(self.screenshot + ".tmp.png", self.screenshot)
                print(f"  screenshot {self.screenshot} ({pm.width()}x{pm.height()}, overlay: {w.view.overlay_state})")
            else:
                print(f"{PROG}: error: [output] {self.screenshot}: the screenshot could not be written", file=sys.stderr)
                w.errors.append("screenshot not written")
        if self.json_path:
            atomic_write_text(self.json_path, json.dumps(f, indent=2, default=str) + "\n")
        for e in w.errors:
            print(f"{PROG}: error: {e}", file=sys.stderr)
        if w.errors:
            self.rc = 2
        elif self.count() == 0 or self.note.startswith("timed out"):
            self.rc = 1
        else:
            self.rc = 0
        w.close()
        QtWidgets.QApplication.instance().exit(self.rc)
