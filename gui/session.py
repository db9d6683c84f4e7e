"""The GUI session without Qt: which frame, prediction and Grad-CAM belong together, and what to show.

    s = GuiSession(stale_ms=1500)
    s.new_source(gen=3)
    job = s.on_frame(frame)             # a new frame on screen; maybe a CAM job to queue
    s.on_prediction(frame, pred)        # the deployed model's result for that frame
    s.on_cam(out)                       # a Grad-CAM result (tied to its frame)
    shown = s.view()                    # the frame to draw, its overlay (exact | stale | none), caption

Nothing here imports Qt or a model: the window feeds it facts (frames, results, the person's choices)
and asks it what to do; ``tests/test_gui_session.py`` drives it with plain objects.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np


def pct(p: float) -> str:
    """A probability as a percentage with one decimal (``0.8712`` -> ``87.1%``)."""
    return f"{100.0 * float(p):.1f}%"


@dataclass
class Frame:
    """One captured frame.  ``id`` is unique in the process; ``session`` names the capture run."""

    id: int
    rgb: np.ndarray  # (H, W, 3) uint8 RGB, never modified after capture
    t: float  # time.perf_counter() at capture
    session: int = 0
    index: int = 0  # position in the source (FrameSource.position: a looping clip counts from 1 again)
    source: str = ""


@dataclass
class CamOutput:
    """A Grad-CAM result tied to the frame it was computed for."""

    frame: Frame
    heat: np.ndarray  # (H, W) float32 in [0, 1], frame resolution
    colour: np.ndarray  # (h, w, 4) uint8 premultiplied RGBA, the colour-mapped heat map (see colourise), <= OVERLAY_MAX_SIDE
    class_index: int  # the class explained
    label: str  # its name
    probs: np.ndarray  # the reference model's probabilities for this frame
    class_names: list[str]
    ms: float
    target: int | None  # what was asked: None = the reference's own top class
    prediction: Any = None  # the deployed model's Prediction for the same frame (or None)
    crop: tuple[float, float, float, float] | None = None  # (x, y, w, h) in frame pixels: what the reference sees, if known

    @property
    def frame_id(self) -> int:
        return self.frame.id

    @property
    def reference_top(self) -> str:
        return self.class_names[int(np.argmax(self.probs))]

    @property
    def disagrees(self) -> bool:
        """True when the deployed model's top class for this frame differs from the reference's."""
        return self.prediction is not None and str(self.prediction.label) != self.reference_top


@dataclass(frozen=True)
class Shown:
    """What the frame view draws: a frame, the CAM drawn over it (or None), how, and the caption under it."""

    frame: Frame | None
    cam: CamOutput | None = None
    state: str = "none"  # exact: the CAM of this very frame | stale: of an earlier frame (marked) | none: no overlay
    caption: str = ""
    level: str = "info"  # info | warn


#: A CAM job the window puts in the CAM worker's slot: the frame and the deployed model's prediction for it (None when
#: there is none yet).  The inference worker's jobs carry a third item, the input its model saw (``gui.workers.CamWorker``).
CamJob = tuple[Frame, Any]

COMPUTING = "Grad-CAM: computing…"
COMPUTING_CURRENT = "Grad-CAM: computing for the current frame…"
LAGGING = "This frame's own overlay · Grad-CAM runs behind the video (overlays of earlier frames are marked stale)"


class Generations:
    """One counter for every worker the window starts (capture, inference, CAM).  A restarted worker gets a new
    number, and a signal still queued from the one it replaced carries the old number: it is dropped."""

    def __init__(self):
        self._next = itertools.count(1)
        self.current = {"capture": 0, "inference": 0, "cam": 0}

    def new(self, role: str) -> int:
        self.current[role] = next(self._next)
        return self.current[role]

    def __getitem__(self, role: str) -> int:
        return self.current[role]


class GuiSession:
    """Frames, the deployed model's predictions and the reference's Grad-CAMs of one window, paired by frame id.

    The window tells it what happened (``new_source``, ``on_frame``, ``on_prediction``, ``on_cam``, the
    person's choices) and which models are ready (``model_ready``, ``reference_ready``); it answers what
    to draw (:meth:`view`) and which CAM to ask for (:meth:`cam_job`).  Every frame carries the capture
    run it came from (``Frame.session``): results for another run than ``gen`` are refused.

    Args:
        stale_ms: a CAM of an earlier frame is drawn (marked stale) until it is this much older than the frame on
            screen, then hidden.
        stale_hold_ms: once a stale overlay was shown, the caption keeps its warning form for at least this long
            (of video time) while playing, so that it does not flicker between exact and stale frames.
        cam_enabled: the overlay switch.
        sync_cam: show only frames that have their own CAM (exact, slower).
    """

    KEEP_PREDICTIONS = 120

    def __init__(self, *, stale_ms: float = 1500.0, stale_hold_ms: float = 1000.0, cam_enabled: bool = True, sync_cam: bool = False):
        self.stale_ms = float(stale_ms)
        self.stale_hold_ms = float(stale_hold_ms)
        self.cam_enabled = bool(cam_enabled)
        self.sync_cam = bool(sync_cam)
        self.cam_target: int | None = None  # the class to explain; None: the reference's own top class
        self.model_ready = False  # a deployed model is loaded (its worker classifies frames)
        self.reference_ready = False  # a reference is loaded and paired with the model (same classes and architecture)
        self.gen = 0
        self.still = False
        self.paused = False
        self.ended = False
        self.frame: Frame | None = None
        self.prediction: Any = None
        self.prediction_frame: Frame | None = None
        self.preds: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self.cam_out: CamOutput | None = None
        self._last_stale_t: float | None = None  # capture time of the last frame shown with a stale overlay

    # -- state ---------------------------------------------------------------------------------
    @property
    def cam_active(self) -> bool:
        """Grad-CAMs are computed and drawn: the overlay is on and a paired reference is loaded (the one definition)."""
        return self.cam_enabled and self.reference_ready

    @property
    def live(self) -> bool:
        """New frames keep coming: not paused, not ended, not a still image."""
        return not (self.paused or self.ended or self.still)

    @property
    def playback(self) -> str:
        """``playing``, ``paused``, ``ended`` (a video or stream that stopped) or ``still`` (an image)."""
        if self.still:
            return "still"
        if self.ended:
            return "ended"
        return "paused" if self.paused else "playing"

    def new_source(self, gen: int, *, still: bool = False) -> None:
        """A new capture run: nothing of the previous source stays."""
        self.gen = gen
        self.still = bool(still)
        self.paused = self.ended = False
        self.frame = self.prediction = self.prediction_frame = None
        self.preds.clear()
        self.cam_out = None
        self._last_stale_t = None

    def forget_predictions(self) -> None:
        """Another deployed model: its predictions start afresh."""
        self.model_ready = False
        self.prediction = self.prediction_frame = None
        self.preds.clear()

    def forget_cams(self) -> None:
        """Another (or no) reference: its CAMs start afresh."""
        self.reference_ready = False
        self.cam_out = None
        self._last_stale_t = None

    # -- events --------------------------------------------------------------------------------
    def on_frame(self, frame: Frame) -> CamJob | None:
        """A new frame on screen; returns a CAM job when it needs one asked for here (else None)."""
        if frame.session != self.gen:
            return None
        self.frame = frame
        if self.cam_active and not self.model_ready:
            return frame, None  # no deployed model: explain the displayed frames directly
        return self.cam_job()

    def on_prediction(self, frame: Frame, pred: Any) -> bool:
        """The deployed model's result for ``frame``; False when it belongs to another run."""
        if frame.session != self.gen:
            return False
        self.prediction, self.prediction_frame = pred, frame
        self.preds[frame.id] = pred
        while len(self.preds) > self.KEEP_PREDICTIONS:
            self.preds.popitem(last=False)
        cam = self.cam_out
        if cam is not None and cam.frame.id == frame.id and cam.prediction is None:
            cam.prediction = pred  # the CAM came first: now the two models can be compared
        return True

    def on_cam(self, out: CamOutput) -> bool:
        """A Grad-CAM result; False when it belongs to another run."""
        if out.frame.session != self.gen:
            return False
        if out.prediction is None:
            out.prediction = self.preds.get(out.frame.id)
        self.cam_out = out
        return True

    def set_target(self, class_index: int | None, queued_frame_id: int | None = None) -> CamJob | None:
        """Explain another class; returns the job that re-explains a frame no new frame will replace (paused, still)."""
        self.cam_target = None if class_index is None else int(class_index)
        return self.cam_job(queued_frame_id)

    def cam_job(self, queued_frame_id: int | None = None) -> CamJob | None:
        """The CAM to ask for now, because no new frame will bring one (paused, ended, a still image); else None.

        Nothing while playing (the inference worker forwards each classified frame), nothing when the frame on
        screen already has its CAM for the class asked, or when a job for it waits in the CAM slot
        (``queued_frame_id``), and nothing before the deployed model has classified the frame (its worker forwards
        it then, with the prediction the two models are compared on).
        """
        f = self.frame
        if not self.cam_active or f is None or self.live:
            return None
        cur = self.cam_out
        if cur is not None and cur.frame.id == f.id and cur.target == self.cam_target:
            return None  # already there
        if queued_frame_id == f.id:
            return None  # already asked for (the CAM worker reads the class to explain when it takes the job)
        if self.model_ready and f.id not in self.preds:
            return None
        return f, self.preds.get(f.id)

    # -- what to draw --------------------------------------------------------------------------
    def view(self, on_screen: Frame | None = None) -> Shown:
        """The frame to draw and its overlay.  ``on_screen``: what the view shows now (kept in sync mode until a CAM)."""
        if self.sync_cam and self.cam_active:
            cam = self.cam_out
            if cam is not None and cam.frame.session == self.gen:
                return Shown(cam.frame, cam, "exact", *self.caption(cam))
            return Shown(on_screen or self.frame, None, "none", COMPUTING)
        return self.overlay_for(self.frame)

    def overlay_for(self, frame: Frame | None) -> Shown:
        """Which CAM to draw on ``frame`` and how (exact / stale / none), with its caption."""
        if not self.cam_active or frame is None:
            return Shown(frame)
        cam = self.cam_out
        if cam is None or cam.frame.session != frame.session:
            return Shown(frame, None, "none", COMPUTING)
        lagging = self._lagging(frame)
        if cam.frame.id == frame.id:
            caption, level = self.caption(cam)
            if cam.target != self.cam_target:
                caption = f"Grad-CAM: computing the map of {self._target_name(cam)}…\n{caption}"
            if lagging:
                caption, level = f"{LAGGING}\n{caption}", "warn"
            return Shown(frame, cam, "exact", caption, level)
        behind_frames = frame.index - cam.frame.index
        behind_ms = (frame.t - cam.frame.t) * 1e3
        if cam.frame.id > frame.id or behind_ms > self.stale_ms or cam.heat.shape[:2] != frame.rgb.shape[:2]:
            return Shown(frame, None, "none", COMPUTING_CURRENT, "warn" if lagging else "info")
        self._last_stale_t = frame.t if self._last_stale_t is None else max(self._last_stale_t, frame.t)
        caption, _level = self.caption(cam)
        n = max(1, behind_frames)
        stale = f"Stale overlay from {n} frame{'s' if n != 1 else ''} ({behind_ms:.0f} ms) earlier: the CAM for this frame is on its way"
        return Shown(frame, cam, "stale", f"{stale}\n{caption}", "warn")

    def _lagging(self, frame: Frame) -> bool:
        """Playing, and a stale overlay was shown within the last ``stale_hold_ms`` of video: keep the warning form."""
        t = self._last_stale_t
        return self.live and t is not None and 0.0 <= (frame.t - t) * 1e3 <= self.stale_hold_ms

    def _target_name(self, cam: CamOutput) -> str:
        t = self.cam_target
        return "the predicted class" if t is None or not 0 <= t < len(cam.class_names) else f"“{cam.class_names[t]}”"

    @staticmethod
    def caption(cam: CamOutput) -> tuple[str, str]:
        """What the heat map shows, and how it relates to the deployed model's prediction: (text, info | warn)."""
        what = f"evidence for “{cam.label}”" + (" (chosen)" if cam.target is not None else "")
        empty = "" if float(np.max(cam.heat, initial=0.0)) > 0.0 else ": none found, the map is empty"
        d = cam.prediction
        if cam.disagrees:
            return (f"⚠ Models disagree on this frame: deployed says {d.label} ({pct(d.probs[d.index])}), reference says "
                    f"{cam.reference_top} ({pct(float(np.max(cam.probs)))}). The heat map shows the reference's {what}{empty}, "
                    "not the deployed model's reasons."), "warn"
        if d is None:
            tail = ""
        elif str(d.label) == cam.label:
            tail = " · agrees with the deployed model"
        else:
            tail = f" · not the predicted class: the deployed model says {d.label} ({pct(d.probs[d.index])})"
        return f"Grad-CAM of the reference · {what} ({pct(cam.probs[cam.class_index])}){empty}{tail}", "info"


__all__ = ["COMPUTING", "COMPUTING_CURRENT", "CamJob", "CamOutput", "Frame", "GuiSession", "LAGGING", "Shown", "pct"]
