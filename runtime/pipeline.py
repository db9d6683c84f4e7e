"""Bounded, ordered background work for pawlens-predict: decode ahead of inference, write pictures behind it.

    with Prefetcher(tasks, decode, workers=4, ahead=24) as items:   # a thread pulls ``tasks``, the pool runs ``decode``
        for item in items:                                          # results in the order of ``tasks``
            ...
    with BackgroundWriter(maxsize=8) as out:                        # one thread: jobs run in submission order
        out.submit(write_png, path, rgb)                            # raises the first error a job raised
    BackgroundWriter(maxsize=8, threads=2)                          # two at once, for jobs independent of each other

Both bound what is in flight: :class:`Prefetcher` holds at most ``ahead`` submitted tasks (the thread that pulls
``tasks`` waits for the consumer), :class:`BackgroundWriter` at most ``maxsize`` queued jobs (``submit`` waits).
Leaving either block on an exception (Ctrl-C included) stops its threads: queued work is dropped, the work a thread
is doing is finished, and the threads are joined before the block is left, so nothing runs on and nothing is half
written.  cv2 and Pillow decoding and the NumPy/OpenCV preprocessing release the interpreter lock, so the pool's
threads run beside the inference of the calling thread.

:class:`StageTimes` adds up the busy seconds of each stage (the time its threads spent in it, summed over threads:
with several workers the sum can exceed the wall time).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

_END = object()


class _Failure:
    """Carries an exception from a background thread to the consumer."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class StageTimes:
    """Busy seconds per stage (``add("decode", 0.004)``), safe to add to from several threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + float(seconds)

    def get(self, stage: str) -> float:
        with self._lock:
            return self.seconds.get(stage, 0.0)


def _put(q: queue.Queue, obj: Any, stop: threading.Event) -> bool:
    """Put ``obj`` in ``q``, waiting for room while ``stop`` is not set; False if stopped first."""
    while not stop.is_set():
        try:
            q.put(obj, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


class Prefetcher:
    """Run ``fn(task)`` for each of ``tasks`` on ``workers`` threads; iterate the results in the order of ``tasks``.

    Args:
        tasks: any iterable; it is pulled in a background thread (so reading it, e.g. a video's frames, overlaps
            the consumer too), never more than ``ahead`` tasks before the consumer.
        fn: the work per task, run in the pool.  An exception it raises is raised by the iteration, at that task.
        workers: pool threads (>= 1).
        ahead: the most tasks submitted and not yet taken by the consumer (>= 1).
    """

    def __init__(self, tasks: Iterable, fn: Callable[[Any], Any], *, workers: int, ahead: int):
        if workers < 1 or ahead < 1:
            raise ValueError(f"workers and ahead must be >= 1, got {workers} and {ahead}")
        self._tasks, self._fn = tasks, fn
        self._workers, self.ahead = int(workers), int(ahead)
        self._q: queue.Queue = queue.Queue(maxsize=self.ahead)
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Prefetcher":
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="pawlens-decode")
        self._thread = threading.Thread(target=self._produce, name="pawlens-tasks", daemon=True)
        self._thread.start()
        return self

    def _produce(self) -> None:
        try:
            for task in self._tasks:
                if self._stop.is_set():
                    return
                if not _put(self._q, self._pool.submit(self._fn, task), self._stop):
                    return
            _put(self._q, _END, self._stop)
        except BaseException as e:  # noqa: BLE001  (handed to the consumer, which raises it)
            _put(self._q, _Failure(e), self._stop)
        finally:
            close = getattr(self._tasks, "close", None)  # a generator stopped early releases what it holds (a video) now
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Any]:
        if self._pool is None:
            raise RuntimeError("use the Prefetcher as a context manager: with Prefetcher(...) as items")
        while True:
            got = self._q.get()
            if got is _END:
                return
            if isinstance(got, _Failure):
                raise got.exc
            yield got.result()

    def close(self) -> None:
        """Stop pulling tasks, drop the queued ones, finish the running ones and join every thread; safe to call twice."""
        self._stop.set()
        while True:  # free the producer if it waits for room, and cancel what was not started
            try:
                got = self._q.get_nowait()
            except queue.Empty:
                break
            if isinstance(got, Future):
                got.cancel()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __exit__(self, *exc) -> None:
        self.close()


def serial_map(tasks: Iterable, fn: Callable[[Any], Any]) -> Iterator[Any]:
    """What :class:`Prefetcher` yields, computed in the calling thread (``--workers 0``)."""
    for task in tasks:
        yield fn(task)


class BackgroundWriter:
    """Threads that run submitted jobs, at most ``maxsize`` queued; the first error a job raised is raised back.

    With ``threads`` 1 (the default) the jobs run one after another in submission order; with more, several at once
    (for jobs that do not depend on each other).  ``submit`` raises the error of an earlier job (so a run stops soon
    after a failed write); :meth:`close` waits for every queued job and raises the first error; leaving the ``with``
    block on an exception drops the queued jobs instead (:meth:`abort`).  ``busy_s`` is the threads' time in jobs.
    """

    def __init__(self, maxsize: int = 8, *, threads: int = 1):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, int(maxsize)))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self.busy_s = 0.0
        self.done = 0
        self._threads = [threading.Thread(target=self._run, name=f"pawlens-writer-{i}", daemon=True) for i in range(max(1, int(threads)))]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is _END:
                return
            if self._error is not None or self._stop.is_set():
                continue  # after a failure or an abort, queued jobs are dropped
            fn, args = job
            t0 = time.perf_counter()
            try:
                fn(*args)
                error = None
            except BaseException as e:  # noqa: BLE001  (raised in the submitting thread)
                error = e
            with self._lock:
                self.busy_s += time.perf_counter() - t0
                self.done += error is None
                if error is not None and self._error is None:
                    self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable, *args) -> None:
        self._raise()
        if not self._threads or not _put(self._q, (fn, args), self._stop):
            raise RuntimeError("the writer is closed")

    def _join(self) -> None:
        for _ in self._threads:
            self._q.put(_END)
        for t in self._threads:
            t.join()
        self._threads = []

    def close(self) -> None:
        """Run every queued job, join the threads, raise the first error a job raised."""
        self._join()
        self._raise()

    def abort(self) -> None:
        """Drop the queued jobs, let the running ones finish, join the threads; raises nothing."""
        self._stop.set()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._join()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
