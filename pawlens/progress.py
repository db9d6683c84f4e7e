"""Progress for long loops: a tqdm bar in a terminal, plain log lines everywhere else.

    from pawlens.progress import progress

    for batch in progress(loader, total=len(loader), desc="epoch 1/10", unit="batch"):
        ...
    with progress(total=n_images, desc="calibrate", unit="img") as bar:
        for chunk in chunks:
            ...
            bar.update(len(chunk))

tqdm hides itself when stderr is not a terminal (``disable=None``), which leaves a job whose output goes to a
file, a pipe or a CI log silent for minutes.  :func:`progress` keeps the bar in a terminal and otherwise writes
one line to stderr at the first update after every ``interval`` seconds (default :data:`DEFAULT_INTERVAL_S`)::

    [epoch 1/10] 40/125 batch (32%), 2.1 batch/s, elapsed 19s, ETA 40s, loss=0.6931

and, if it wrote any such line, a last one when the loop ends (so a short loop adds nothing to the log).  The
lines come at updates: a loop whose single step takes longer than the interval prints once per step.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO

#: Seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL_S = 12.0


def _duration(s: float) -> str:
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or a stand-in without isatty
        return False


class Progress:
    """Counts work done; draws a tqdm bar on a terminal, or logs plain lines every ``interval`` seconds elsewhere.

    Args:
        iterable: what to iterate over (optional; call :meth:`update` yourself without it).
        total: the number of units expected (``len(iterable)`` when it has one); ``None`` for unknown (no ETA).
        desc: what is being done, e.g. ``"epoch 3/10 [finetune]"``.
        unit: the unit counted, e.g. ``"img"`` or ``"batch"``.
        enabled: ``False`` shows nothing (e.g. on the non-main ranks of a distributed run).
        interval: seconds between plain lines (non-terminal output only); default :data:`DEFAULT_INTERVAL_S`.
        stream: where to write; default ``sys.stderr`` at construction time.
    """

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 enabled: bool = True, interval: float | None = None, stream: TextIO | None = None):
        interval = DEFAULT_INTERVAL_S if interval is None else interval
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.iterable, self.total, self.desc, self.unit, self.interval = iterable, total, desc, unit, float(interval)
        self.stream = stream if stream is not None else sys.stderr
        self.n = 0
        self.lines = 0  # plain lines written
        self.postfix: dict[str, Any] = {}
        self.t0 = self._last = time.monotonic()
        self._closed = False
        self._bar = None
        self.enabled = bool(enabled)
        self.tty = self.enabled and _is_tty(self.stream)
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False, dynamic_ncols=True)

    @property
    def disable(self) -> bool:
        """True when nothing is shown (tqdm's attribute name, for callers that skip formatting work)."""
        return not self.enabled

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("Progress was made without an iterable; call update(n) instead")
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; may draw the bar or write a line."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and not self._closed:
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self._write(self.line(now))

    def set_postfix(self, **kw: Any) -> None:
        """Extra ``key=value`` fields (loss, accuracy) shown after the counts."""
        self.postfix = {k: v for k, v in kw.items()}
        if self._bar is not None:
            self._bar.set_postfix(**kw)

    def set_description(self, desc: str) -> None:
        """Rename what is being done (a new step of a multi-step job); the counts go on."""
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description(desc)

    def write(self, text: str) -> None:
        """A line of its own above the bar (a terminal) or among the plain lines (elsewhere)."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        elif self.enabled:
            self._write(text, counted=False)  # not a progress line: close() adds no "done" line for it

    def line(self, now: float | None = None) -> str:
        """The plain progress line for the current count: done/total, rate, elapsed, ETA and the postfix."""
        el = (now if now is not None else time.monotonic()) - self.t0
        rate = self.n / el if el > 0 else 0.0
        head = f"[{self.desc}] " if self.desc else ""
        if self.total:
            s = f"{head}{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            s = f"{head}{self.n} {self.unit}"
        s += f", {rate:.3g} {self.unit}/s, elapsed {_duration(el)}"
        if self.total and not self._closed:
            s += f", ETA {_duration((self.total - self.n) / rate)}" if rate > 0 else ", ETA unknown"
        if self.postfix:
            s += ", " + ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        return s

    def _write(self, text: str, counted: bool = True) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (ValueError, OSError):  # the stream was closed under us: progress is not worth failing for
            self.enabled = False
        self.lines += counted

    def close(self) -> None:
        """End the bar; in plain mode write a last line (``done``) if any line was written before."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.lines:
            self._write(self.line() + ", done")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True,
             interval: float | None = None, stream: TextIO | None = None) -> Progress:
    """A :class:`Progress` over ``iterable`` (iterate it) or over ``total`` units (call ``update(n)``); see the module docstring."""
    return Progress(iterable, total=total, desc=desc, unit=unit, enabled=enabled, interval=interval, stream=stream)
