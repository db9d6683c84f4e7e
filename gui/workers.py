"""Capture, inference and Grad-CAM workers: each a QObject in its own QThread; the newest frame wins.

    display, infer, cams = LatestSlot(), LatestSlot(), LatestSlot()   # one-item buffers between threads
    cap = WorkerThread(CaptureWorker(source, display, infer, gen=1))
    inf = WorkerThread(InferenceWorker(lambda: predictor, infer, gen=2, forward=cams))  # builds + activates in its thread
    cam = WorkerThread(CamWorker(lambda: explainer, cams, gen=3))
    inf.worker.result.connect(on_result)          # on_result(gen, frame, prediction), queued to the UI thread
    cam.worker.result.connect(on_cam)             # on_cam(gen, CamOutput)
    inf.worker.forward_enabled.set()              # classified frames go on to the CAM worker
    for w in (cam, inf, cap):
        w.start()

The pipeline::

    capture thread --put--> [infer slot] --take--> inference thread --put--> [cam slot] --take--> CAM thread
          \\--put--> [display slot] --notify--> UI thread (draws the newest frame)

Each arrow into a slot replaces what is there: a worker that is busy finds only the newest frame
when it comes back; the replaced ones are counted as dropped (``LatestSlot.dropped``), never queued.
While a deployed model runs, the CAM worker gets a frame after the model has classified it (with
that prediction), so a CAM result carries the deployed prediction for the same frame id and the
window can tell when the reference and the deployed model disagree; without a model, or for a
paused frame, the window puts jobs in the CAM slot itself (``gui.session.GuiSession.cam_job``).

Models are built and activated inside their worker's thread (``build`` is called there), so the UI
thread never runs one and never waits on one.

No ML framework is imported here: predictors and explainers are whatever ``build()`` returns
(``runtime.predictor.Predictor``, ``runtime.cam.CamExplainer``, or a test fake).
"""

from __future__ import annotations

import collections
import itertools
import os
import sys
import threading
import time
from typing import Any, Callable

import numpy as np
from PySide6 import QtCore

from pawlens.errors import ImageError, InputError, MissingMetadata, PawlensError, one_line

from .meters import LatestSlot, RateMeter
from .overlay import OVERLAY_MAX_SIDE, colourise, model_view_or_none, scale_box, shrink
from .session import CamOutput, Frame
from .sources import FrameSource

_FRAME_IDS = itertools.count(1)


class Heartbeat(QtCore.QObject):
    """Measures how late the UI event loop runs a timer: the event-loop latency.

    A precise timer fires every ``interval_ms``; each time it notes how much later than planned it
    ran, i.e. how long the UI thread was unavailable (to within the interval).  Samples are booked
    to the current ``account`` (the window switches to ``"loading"`` while a model is being built,
    whose first imports and graph optimisation can hold the GIL, and back to ``"playing"``).
    """

    ACCOUNTS = ("playing", "loading")

    def __init__(self, interval_ms: int = 10, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._beat)
        self.samples: dict[str, collections.deque[float]] = {a: collections.deque(maxlen=20000) for a in self.ACCOUNTS}
        self.maxima = dict.fromkeys(self.ACCOUNTS, 0.0)
        self.account = "playing"
        self._loading: set[str] = set()
        self._last: float | None = None

    def begin(self, what: str) -> None:
        """``what`` (a model, the reference) is being built: book the latency to ``"loading"`` until every one ends."""
        self._loading.add(what)
        self.account = "loading"

    def end(self, what: str) -> None:
        self._loading.discard(what)
        if not self._loading:
            self.account = "playing"

    @property
    def lateness(self) -> collections.deque[float]:
        return self.samples["playing"]

    @property
    def max_ms(self) -> float:
        return self.maxima["playing"]

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def reset(self) -> None:
        for a in self.ACCOUNTS:
            self.samples[a].clear()
            self.maxima[a] = 0.0
        self._last = time.perf_counter()

    def _beat(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            late = max(0.0, (now - self._last) * 1e3 - self.interval_ms)
            self.samples[self.account].append(late)
            self.maxima[self.account] = max(self.maxima[self.account], late)
        self._last = now

    def percentile(self, q: float, account: str = "playing") -> float:
        d = self.samples[account]
        return float(np.percentile(np.asarray(d), q)) if d else 0.0


# ----------------------------------------------------------------------------- workers


def lower_thread_priority(nice: int) -> bool:
    """Raise this thread's niceness by ``nice`` (Linux: per thread; other systems: no-op).  True if it changed.

    Worker threads call it before they build their model, so the thread pools the backends create
    from them (ONNX Runtime's, torch's) inherit it: when the CPU is short, the scheduler serves the
    UI thread first and the window stays responsive; the workers get everything the UI does not use.
    """
    if nice <= 0 or not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + int(nice)))
        return True
    except OSError:
        return False


class _Worker(QtCore.QObject):
    """Base: a loop run in its own QThread until ``stop()``; ``gen`` tags every signal it emits.

    ``nice``: how much lower than the UI thread this worker's thread (and the pools it starts) runs.
    """

    error = QtCore.Signal(int, str)
    finished = QtCore.Signal(int)
    nice = 0

    def __init__(self, gen: int = 0):
        super().__init__()
        self.gen = gen
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @QtCore.Slot()
    def run(self) -> None:
        lower_thread_priority(self.nice)
        try:
            self.loop()
        except Exception as e:  # noqa: BLE001 - reported in the UI, never a crash
            self.error.emit(self.gen, one_line(e, unexpected=True))
        finally:
            self.finished.emit(self.gen)

    def loop(self) -> None:
        raise NotImplementedError


class CaptureWorker(_Worker):
    """Reads a :class:`~gui.sources.FrameSource` at its own pace and publishes each frame to the slots.

    Signals:
        opened(gen, description): the source is open.
        frame_ready(gen): a new frame is in ``display_slot`` (at most one notification is pending).
        ended(gen, message): the source has no more frames (a video that ended, an image shown).
        error(gen, message): it cannot be opened or failed mid-stream (a camera unplugged).
        note(gen, message): something worth a status-bar line (a folder image skipped).
        stream_state(gen, state, message): a network stream dropped (``reconnecting``, with the banner's line) or is
            back (``live``).
    """

    nice = 2
    opened = QtCore.Signal(int, str)
    frame_ready = QtCore.Signal(int)
    ended = QtCore.Signal(int, str)
    note = QtCore.Signal(int, str)
    stream_state = QtCore.Signal(int, str, str)

    def __init__(self, source: FrameSource, display_slot: LatestSlot, infer_slot: LatestSlot | None, *, gen: int = 0,
                 paused: bool = False, realtime: bool = True):
        super().__init__(gen)
        self.source = source
        self.display_slot = display_slot
        self.infer_slot = infer_slot
        self.realtime = realtime
        self._cv = threading.Condition()
        self._paused = paused
        self._steps = 0
        self.captured = RateMeter()

    # -- controls (any thread) --------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        with self._cv:
            self._paused = bool(paused)
            self._cv.notify_all()

    def step(self) -> None:
        """When paused: read exactly one more frame."""
        with self._cv:
            self._steps += 1
            self._cv.notify_all()

    def stop(self) -> None:
        super().stop()
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:  # a stream's read() waits for the network: let it return now
            interrupt()
        with self._cv:
            self._cv.notify_all()

    def _wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early on stop / pause / step."""
        with self._cv:
            self._cv.wait(max(0.0, seconds))

    # -- loop --------------------------------------------------------------------------------
    def loop(self) -> None:
        src = self.source
        if hasattr(src, "on_state"):
            src.on_state = lambda state, message: self.stream_state.emit(self.gen, state, message)
        try:
            src.open()
        except PawlensError as e:
            self.error.emit(self.gen, str(e))
            return
        try:
            self.opened.emit(self.gen, src.describe())
            period = (1.0 / src.fps) if src.fps else 0.0
            due = time.perf_counter()
            skipped_seen = 0
            while not self.stopping:
                with self._cv:
                    while self._paused and self._steps == 0 and not self.stopping:
                        self._cv.wait(0.2)
                    if self.stopping:
                        break
                    stepping = self._paused and self._steps > 0
                    if stepping:
                        self._steps -= 1
                if not stepping and period and self.realtime:
                    delay = due - time.perf_counter()
                    if delay > 0:
                        self._wait(delay)
                        if self.stopping:
                            break
                        if self._paused and self._steps == 0:
                            continue  # paused while waiting: read nothing
                    if time.perf_counter() - due > 0.5:  # fell far behind (a stall): don't race to catch up
                        due = time.perf_counter()
                try:
                    rgb = src.read()
                except PawlensError as e:
                    self.error.emit(self.gen, str(e))
                    return
                skipped = getattr(src, "skipped", None)
                if skipped and len(skipped) > skipped_seen:
                    for p in skipped[skipped_seen:]:
                        self.note.emit(self.gen, f"skipped {p}: not a readable image")
                    skipped_seen = len(skipped)
                if rgb is None:
                    if not self.stopping:
                        self.ended.emit(self.gen, self._end_message())
                    return
                now = time.perf_counter()
                frame = Frame(next(_FRAME_IDS), rgb, now, self.gen, src.position, src.describe())
                self.captured.tick(now=now)
                if self.infer_slot is not None:
                    self.infer_slot.put(frame)
                if self.display_slot.put(frame):
                    self.frame_ready.emit(self.gen)
                due += period
        finally:
            src.close()

    def _end_message(self) -> str:
        src = self.source
        if src.kind == "image":
            return f"{src.name}: image shown"
        if src.kind == "video":
            note = getattr(src, "end_note", "")
            if note:
                return f"{src.name}: video ended early: {note}"
            return f"{src.name}: video ended after {src.frames_read} frames (turn on Loop to replay it)"
        return f"{src.name}: no more frames"


class InferenceWorker(_Worker):
    """Builds and activates a predictor in its own thread, then classifies the newest frame, one at a time.

    Signals:
        ready(gen, info): the model is active; ``info`` has ``describe``, ``class_names``, ``arch``,
            ``source_sha256``, ``backend_choice``, ``backend_note``, ``preprocess`` and ``load_ms``.
        result(gen, frame, prediction): one frame classified (``prediction.infer_ms`` etc.).
        error(gen, message): the model cannot be loaded or failed on a frame (the worker then stops).
        needs_class_names(gen, message): the model file has no pawlens metadata
            (:class:`~pawlens.errors.MissingMetadata`): it loads once class names are given (the worker stops).
        skipped(gen, message): one frame could not be preprocessed (e.g. a strip); the worker goes on.
    """

    nice = 4
    ready = QtCore.Signal(int, object)
    result = QtCore.Signal(int, object, object)
    needs_class_names = QtCore.Signal(int, str)
    skipped = QtCore.Signal(int, str)

    def __init__(self, build: Callable[[], Any], slot: LatestSlot, *, gen: int = 0, forward: LatestSlot | None = None):
        super().__init__(gen)
        self.build = build
        self.slot = slot
        self.forward = forward  # the CAM slot: frames are passed on after classification
        self.forward_enabled = threading.Event()

    def loop(self) -> None:
        t0 = time.perf_counter()
        try:
            predictor = self.build()
            predictor.activate()
        except MissingMetadata as e:
            self.needs_class_names.emit(self.gen, one_line(e, unexpected=True))
            return
        except Exception as e:  # noqa: BLE001
            self.error.emit(self.gen, one_line(e, unexpected=True))
            return
        try:
            self.ready.emit(self.gen, self._info(predictor, (time.perf_counter() - t0) * 1e3))
            while not self.stopping:
                frame = self.slot.take(timeout=0.1)
                if frame is None or self.stopping:
                    continue
                forwarding = self.forward is not None and self.forward_enabled.is_set()
                try:
                    pred = predictor.predict(frame.rgb, keep_input=forwarding)
                except (ImageError, InputError) as e:  # this frame cannot be preprocessed (a strip): skip it, keep going
                    self.skipped.emit(self.gen, f"frame skipped: {one_line(e, unexpected=True)}")
                    continue
                except Exception as e:  # noqa: BLE001 - a model that fails is reported and stopped
                    self.error.emit(self.gen, one_line(e, unexpected=True))
                    return
                x, pred.input = getattr(pred, "input", None), None  # the window keeps predictions: only the CAM job carries it
                self.result.emit(self.gen, frame, pred)
                if forwarding:
                    # the input the deployed model saw: the CAM worker uses it when the reference's preprocessing is the same
                    prepared = None if x is None else (x, getattr(predictor, "preprocess", None))
                    self.forward.put((frame, pred, prepared))
        finally:
            try:
                predictor.deactivate()
            except Exception:  # noqa: BLE001 - shutting down; nothing to tell the user
                pass

    @staticmethod
    def _info(predictor: Any, load_ms: float) -> dict[str, Any]:
        try:
            desc = dict(predictor.describe())
        except Exception as e:  # noqa: BLE001
            desc = {"backend": "unknown", "describe_error": one_line(e, unexpected=True)}
        meta = getattr(getattr(predictor, "runner", None), "meta", None)
        return {
            "describe": desc,
            "class_names": list(predictor.class_names),
            "arch": getattr(meta, "arch", None),
            "source_sha256": getattr(meta, "source_sha256", "") or "",
            "backend_choice": getattr(predictor, "backend_choice", "") or "",  # app's choice | auto | --backend X
            "backend_note": getattr(predictor, "backend_note", "") or "",  # why this backend (gui.app.RuntimeLoader)
            "preprocess": getattr(predictor, "preprocess", None),  # PreprocessConfig: the crop the model sees
            "load_ms": load_ms,
        }


class CamWorker(_Worker):
    """Builds and activates the Grad-CAM explainer (the PyTorch reference) in its own thread.

    Takes ``(frame, prediction)`` jobs (the window's, :data:`~gui.session.CamJob`) or ``(frame, prediction,
    (input, preprocess_config))`` jobs (the inference worker's: the input its model saw, which the explainer uses when
    its own preprocessing is the same) from its slot (newest wins), explains ``target_class`` (None: the reference's
    top class) and emits a :class:`CamOutput` tied to that frame.

    Signals:
        ready(gen, info): ``class_names``, ``arch``, ``path``, ``sha256``, ``preprocess``, ``load_ms``.
        result(gen, CamOutput)
        mode(gen, text): how the heat maps are computed now (``traced`` once a background trace is adopted).
        error(gen, message)
    """

    nice = 6  # below inference: the deployed model keeps its pace, the CAM takes most of what is left
    ready = QtCore.Signal(int, object)
    result = QtCore.Signal(int, object)
    mode = QtCore.Signal(int, str)

    def __init__(self, build: Callable[[], Any], slot: LatestSlot, *, gen: int = 0, path: str | None = None, hash_file: bool = True):
        super().__init__(gen)
        self.build = build
        self.slot = slot
        self.path = path
        self.hash_file = hash_file
        self.target_class: int | None = None

    def loop(self) -> None:
        t0 = time.perf_counter()
        try:
            cam = self.build()
            cam.activate()
        except Exception as e:  # noqa: BLE001
            self.error.emit(self.gen, one_line(e, unexpected=True))
            return
        try:
            sha = ""
            if self.path and self.hash_file:
                from pawlens.fs import sha256_file

                try:
                    sha = sha256_file(self.path)
                except OSError:
                    sha = ""
            self.ready.emit(self.gen, {
                "class_names": list(cam.class_names),
                "arch": getattr(cam, "arch", None),
                "path": self.path,
                "sha256": sha,
                "preprocess": getattr(cam, "preprocess", None),
                "mode": getattr(cam, "mode", None),
                "load_ms": (time.perf_counter() - t0) * 1e3,
            })
            mode = getattr(cam, "mode", None)
            while not self.stopping:
                job = self.slot.take(timeout=0.1)
                if job is None and getattr(cam, "adopt_trace", lambda: False)():  # idle: take up a finished trace now
                    mode = cam.mode
                    self.mode.emit(self.gen, mode)
                if job is None or self.stopping:
                    continue
                frame, pred, prepared = (*job, None)[:3]  # (frame, prediction[, (input, its PreprocessConfig)])
                target = self.target_class
                t1 = time.perf_counter()
                try:
                    r = cam.explain(frame.rgb, class_index=target, prepared=prepared)
                    heat = np.asarray(r.heatmap, dtype=np.float32)
                    if heat.shape != frame.rgb.shape[:2]:
                        import cv2

                        heat = cv2.resize(heat, (frame.rgb.shape[1], frame.rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
                    crop = model_view_or_none(frame.rgb.shape[:2], getattr(cam, "preprocess", None))
                    small = shrink(heat, OVERLAY_MAX_SIDE)
                    colour = colourise(small, box=None if crop is None else scale_box(crop, heat.shape[1], small.shape[1]))
                except Exception as e:  # noqa: BLE001
                    self.error.emit(self.gen, one_line(e, unexpected=True))
                    return
                ms = float(getattr(r, "ms", (time.perf_counter() - t1) * 1e3))
                out = CamOutput(frame, heat, colour, int(r.class_index), str(r.label), np.asarray(r.probs),
                                list(cam.class_names), ms, target, pred, crop)
                self.result.emit(self.gen, out)
                if getattr(cam, "mode", mode) != mode:
                    mode = cam.mode
                    self.mode.emit(self.gen, mode)
        finally:
            try:
                cam.deactivate()
            except Exception:  # noqa: BLE001
                pass


class WorkerThread:
    """Owns one worker and the QThread it runs in.  ``stop(wait=False)`` never blocks the caller.

    A stopped worker may still be finishing its current frame; its QThread is kept referenced (in
    ``_alive``) until it has finished, and pruned later from the UI thread, so no QThread is ever
    destroyed while running.
    """

    _alive: list["WorkerThread"] = []

    def __init__(self, worker: _Worker):
        self.worker = worker
        self.thread = QtCore.QThread()
        self.thread.setObjectName(type(worker).__name__)
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # Direct: quit() is thread-safe, and a queued call would wait for the UI thread (which may be in wait()).
        worker.finished.connect(self.thread.quit, QtCore.Qt.ConnectionType.DirectConnection)

    def start(self) -> "WorkerThread":
        WorkerThread.prune()
        WorkerThread._alive.append(self)
        self.thread.start()
        return self

    @classmethod
    def prune(cls) -> None:
        cls._alive = [wt for wt in cls._alive if not wt.thread.isFinished()]

    def stop(self, wait: bool = False, timeout_ms: int = 5000) -> bool:
        """Ask the worker to stop; with ``wait``, block until it has (returns False on timeout)."""
        self.worker.stop()  # workers poll their slot with a short timeout, so they notice within ~0.1 s
        if wait:
            return bool(self.thread.wait(timeout_ms))
        return True

    @classmethod
    def stop_all(cls, timeout_ms: int = 5000) -> bool:
        """Stop and wait for every worker thread still alive; True when all have finished."""
        deadline = time.perf_counter() + timeout_ms / 1e3
        for wt in list(cls._alive):
            wt.worker.stop()
        ok = True
        for wt in list(cls._alive):
            ok &= wt.stop(wait=True, timeout_ms=max(50, int((deadline - time.perf_counter()) * 1e3)))
        cls.prune()
        return ok


__all__ = [
    "CamOutput", "CamWorker", "CaptureWorker", "Frame", "Heartbeat", "InferenceWorker",
    "WorkerThread", "one_line",
]
