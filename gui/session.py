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
    index: int = 0  # position in the source (frames read so far)
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


__all__ = ["CamOutput", "Frame", "pct"]
