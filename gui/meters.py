"""The window's buffers and meters, without Qt: the one-item slots between threads, the rate meters, and the
figures the window shows (frames, rates, latencies), so that the self-check and the benchmark read the same numbers
the panel draws.

    slot = LatestSlot(); slot.put(frame); slot.take(timeout=0.1)      # the newest item wins; replaced ones: dropped
    meter = RateMeter(); meter.tick(12.5); meter.rate(); meter.percentile(50)
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import numpy as np


class LatestSlot:
    """A thread-safe one-item buffer: ``put`` replaces, ``take`` empties.  The newest item wins.

    ``dropped`` counts items replaced before anyone took them; ``put`` returns True when the slot
    was empty, i.e. when the consumer may be idle and needs a wake-up (used for UI notifications so
    that at most one is ever pending).
    """

    def __init__(self):
        self._cv = threading.Condition()
        self._item: Any = None
        self._full = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        with self._cv:
            was_empty = not self._full
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._cv.notify_all()
            return was_empty

    def take(self, timeout: float | None = None) -> Any:
        """The item (emptying the slot), or None after ``timeout`` seconds."""
        with self._cv:
            if not self._full:
                self._cv.wait(timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def take_nowait(self) -> Any:
        return self.take(timeout=0)

    def peek(self) -> Any:
        with self._cv:
            return self._item if self._full else None

    def clear(self) -> None:
        with self._cv:
            self._item, self._full = None, False


class RateMeter:
    """Events per second over a sliding window, plus the latest durations (for p50/p95)."""

    def __init__(self, window_s: float = 2.0, keep: int = 600):
        self.window_s = window_s
        self._t: collections.deque[float] = collections.deque()
        self.durations: collections.deque[float] = collections.deque(maxlen=keep)
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def tick(self, duration_ms: float | None = None, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._t.append(now)
        self.count += 1
        self.first = now if self.first is None else self.first
        self.last = now
        if duration_ms is not None:
            self.durations.append(float(duration_ms))
        while self._t and now - self._t[0] > self.window_s:
            self._t.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events/s over the window (0 when fewer than two events, or when they stopped)."""
        now = time.perf_counter() if now is None else now
        while self._t and now - self._t[0] > self.window_s:
            self._t.popleft()
        if len(self._t) < 2:
            return 0.0
        return (len(self._t) - 1) / max(1e-9, self._t[-1] - self._t[0])

    def mean_rate(self) -> float:
        """Events/s from the first to the last event (the whole run)."""
        if self.count < 2 or self.first is None or self.last is None or self.last <= self.first:
            return 0.0
        return (self.count - 1) / (self.last - self.first)

    def percentile(self, q: float) -> float | None:
        if not self.durations:
            return None
        return float(np.percentile(np.asarray(self.durations), q))

    def reset(self) -> None:
        self._t.clear()
        self.durations.clear()
        self.count = 0
        self.first = self.last = None


class Meters:
    """What the window counts while a source plays: displayed, classified and explained frames and their rates, and
    the capture-to-label time of the newest prediction.  Reset per source (nothing carries over) and by the benchmark
    after its warm-up."""

    def __init__(self):
        self.display = RateMeter()
        self.infer = RateMeter()
        self.cam = RateMeter()
        self.frames_displayed = 0
        self.frames_inferred = 0
        self.cams_done = 0
        self.e2e_ms: float | None = None

    def reset(self) -> None:
        for m in (self.display, self.infer, self.cam):
            m.reset()
        self.frames_displayed = self.frames_inferred = self.cams_done = 0

    def painted(self) -> None:
        self.display.tick()
        self.frames_displayed += 1

    def classified(self, infer_ms: float, captured_at: float) -> None:
        self.infer.tick(infer_ms)
        self.e2e_ms = (time.perf_counter() - captured_at) * 1e3
        self.frames_inferred += 1

    def explained(self, ms: float) -> None:
        self.cam.tick(ms)
        self.cams_done += 1
