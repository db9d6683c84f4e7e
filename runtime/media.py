"""Media in: what a SOURCE names (image, folder, video file, network stream) and the frames it yields.

    for item in iter_sources(["photos/", "clip.mp4", "rtsp://cam.local/live"], every_n=5):
        item.image        # (H, W, 3) uint8 RGB, or None with item.error saying why the source was skipped

Shared by pawlens-predict and the desktop app (:mod:`gui.sources`): one list of video suffixes, one way to keep
FFmpeg quiet, one reading of a clip's damage, one network-stream reader (:class:`LiveStream`).  Nothing here imports
torch; the model's preprocessing is applied by :func:`prepare`.

Network streams (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://`` MJPEG or HLS, ``udp://``, ``tcp://``, ``srt://``)
are read through OpenCV's FFmpeg backend with a connection timeout, on a thread of their own that keeps only the
newest frame (the ones the consumer had no time for are counted as dropped), and reconnect with back-off when the
stream drops.  Stream URLs from elsewhere are untrusted input too: FFmpeg's demuxers parse what the server sends.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from pawlens.errors import DataError, ImageError, InputError, one_line
from pawlens.models.preprocess import IMAGE_EXTENSIONS, load_image, resized_shape

from .pipeline import Prefetcher, serial_map

LOG = logging.getLogger("pawlens")
#: Video files, by suffix.  (An animated GIF is an image to pawlens-predict, its first frame; the desktop app plays it.)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
#: URL schemes read as live network streams (through OpenCV's FFmpeg backend).
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_STREAM = re.compile(r"^(%s)://" % "|".join(STREAM_SCHEMES), re.IGNORECASE)


@dataclass
class Item:
    """One frame to classify (or a source that could not be read: ``error`` set, ``image`` None)."""

    source: str
    frame: int | None = None  # video frame index
    time_s: float | None = None  # video time stamp
    image: np.ndarray | None = None
    error: str = ""
    fps: float = 0.0  # the video's frame rate (0 for images or when unknown)
    classify: bool = True  # False: a frame between the sampled ones, read only for --save-video's copy
    x: np.ndarray | None = None  # (3, S, S) float32, the model's input (:func:`prepare`)
    decode_s: float = 0.0  # reading and decoding it (a video frame: with the frames skipped before it)
    preprocess_s: float = 0.0

    @property
    def key(self) -> str:
        return self.source if self.frame is None else f"{self.source}#frame={self.frame}"


def list_media(folder: str) -> list[str]:
    """Images and videos (by extension) below ``folder``, sorted; hidden files left out, nothing opened."""
    out = []
    for root, _dirs, files in os.walk(folder):
        out += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS) and not f.startswith(".")]
    return sorted(out)


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def is_stream(spec: str) -> bool:
    """True for a network stream URL (``rtsp://``, ``http(s)://``, ``udp://``, ...: :data:`STREAM_SCHEMES`)."""
    return isinstance(spec, str) and bool(_STREAM.match(spec.strip()))


def redact(url: str) -> str:
    """``url`` with its password hidden (``rtsp://user:***@host/...``), for messages and logs."""
    return re.sub(r"^([a-z]+://[^/@:]*):[^/@]*@", r"\1:***@", url, flags=re.IGNORECASE)


def expand_sources(sources: Sequence[str]) -> list[tuple[str, str]]:
    """``(path, error)`` per file to read, folders expanded (images and videos, recursively); ``error`` "" when it exists."""
    out: list[tuple[str, str]] = []
    for src in sources:
        if is_stream(src):
            out.append((src, ""))
        elif not os.path.exists(src):
            out.append((src, "not found"))
        elif os.path.isdir(src):
            files = list_media(src)
            if not files:
                out.append((src, f"empty folder: no images ({', '.join(IMAGE_EXTENSIONS)}) or videos ({', '.join(VIDEO_EXTENSIONS)}) inside"))
            out += [(f, "") for f in files]
        else:
            out.append((src, ""))
    return out


def count_frames(files: Sequence[tuple[str, str]], every_n: int) -> int | None:
    """How many frames :func:`iter_sources` will yield, from the videos' declared frame counts (an estimate for progress);
    ``None`` when a live stream is among them (it has no end to count to)."""
    import cv2

    n = 0
    for path, err in files:
        if not err and is_stream(path):
            return None
        if err or not is_video(path):
            n += 1
            continue
        quiet_ffmpeg()
        cap = cv2.VideoCapture(path)
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
        n += max(1, -(-declared // every_n))
    return n


def iter_sources(sources: Sequence[str], *, every_n: int = 1, **kw) -> Iterator[Item]:
    """Expand images, folders (images and videos), videos and streams into frames; unreadable inputs come out as items
    with ``error``.  Keywords as :func:`iter_tasks`."""
    return (decode_task(t) for t in iter_tasks(sources, every_n=every_n, **kw))


def iter_tasks(sources: Sequence[str], *, every_n: int = 1, keep_all: frozenset[str] | set[str] = frozenset(),
               duration_s: float | None = None, stream_options: dict | None = None) -> Iterator[Item | str]:
    """What :func:`iter_sources` yields, with each image left as its path (to decode elsewhere: :func:`decode_task`).

    Videos are read here, frame by frame (a capture cannot be shared between threads); an error while reading one
    ends that video with an item carrying the error.  Every ``every_n``-th frame is to classify; a video in
    ``keep_all`` also yields the frames between them (``classify`` False), for an annotated copy of every frame.
    A stream (:func:`is_stream`) yields its newest frame whenever the consumer asks for one, until it ends, is lost
    for good, or ``duration_s`` has passed (:class:`LiveStream`; ``stream_options`` are its keywords).
    """
    if every_n < 1:
        raise InputError(f"--every-n must be >= 1, got {every_n}")
    for path, err in expand_sources(sources):
        if err:
            yield Item(path, error=err)
        elif is_stream(path):
            yield from _stream_items(path, duration_s, stream_options or {})
        elif is_video(path):
            try:
                yield from _video_items(path, every_n, keep_all=path in keep_all)
            except Exception as e:  # noqa: BLE001  (one damaged clip is skipped like an unreadable image)
                yield Item(path, error=f"reading the video failed: {one_line(e, 200)}")
        else:
            yield path


def decode_task(task: Item | str) -> Item:
    """The :class:`Item` of one task of :func:`iter_tasks`: an image path is decoded (any failure -> an error item)."""
    if isinstance(task, Item):
        return task
    t0 = time.perf_counter()
    try:
        item = _image_item(task)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001  (a decoder's own failure skips the image, as a bad file does)
        item = Item(task, error=f"could not be decoded: {one_line(e, 200)}")
    item.decode_s = time.perf_counter() - t0
    return item


def _image_item(path: str) -> Item:
    try:
        return Item(path, image=load_image(path))
    except ImageError as e:
        return Item(path, error=str(e).split("] ", 1)[-1].replace(f"{path}: ", ""))


def prepare(task: Item | str, cfg) -> Item:
    """:func:`decode_task`, then the model's input (``item.x``) for a readable frame; the work of one decode worker.

    A frame this model's resize refuses keeps ``x`` None (:func:`_classify_chunk` skips it, as before); an error while
    preprocessing also leaves ``x`` None, so the batch preprocesses it again in the calling thread and raises there.
    """
    from pawlens.models.preprocess import preprocess_numpy

    item = decode_task(task)
    if item.error or not item.classify:
        return item
    t0 = time.perf_counter()
    try:
        resized_shape(item.image.shape[0], item.image.shape[1], cfg)
        item.x = preprocess_numpy([item.image], cfg)[0]
    except Exception:  # noqa: BLE001  (see above)
        item.x = None
    item.preprocess_s = time.perf_counter() - t0
    return item


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's own log lines ("moov atom not found", "Invalid NAL unit") off stderr; pawlens reports the damage itself.

    OpenCV reads ``OPENCV_FFMPEG_LOGLEVEL`` when it first opens a file with FFmpeg; -8 is AV_LOG_QUIET.  A value the
    user set is kept.
    """
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    with contextlib.suppress(Exception):  # its own lines ("can't be used to capture by name", timeouts): pawlens says it
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def clip_shortfall(n_read: int, declared: int) -> str:
    """The warning for a clip that ended before the frame count its header declares, or "" when it did not."""
    if declared <= 0 or n_read >= declared - max(2, declared // 100):  # the count is an estimate in some containers
        return ""
    return (f"read {n_read} of the {declared} frames its header declares: it stopped at damage after frame {n_read} "
            "(truncated or corrupt); the frames before it were used")


def _video_items(path: str, every_n: int, *, keep_all: bool = False) -> Iterator[Item]:
    import cv2

    from pawlens.models.preprocess import check_aspect

    if os.path.getsize(path) == 0:
        yield Item(path, error="zero-byte video file")
        return
    quiet_ffmpeg()
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            yield Item(path, error="cannot open the video (not a video, or a codec OpenCV lacks)")
            return
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        i = n_read = 0
        t0 = time.perf_counter()
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if n_read == 0:
                try:
                    check_aspect(frame.shape[0], frame.shape[1], "its frames")
                except ImageError as e:
                    yield Item(path, error=str(e).split("] ", 1)[-1])
                    return
            n_read += 1
            if i % every_n == 0 or keep_all:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                yield Item(path, frame=i, time_s=(i / fps) if fps > 0 else None, image=rgb, fps=fps, decode_s=time.perf_counter() - t0,
                           classify=i % every_n == 0)
                t0 = time.perf_counter()
            i += 1
        if n_read == 0:
            yield Item(path, error="the video has no readable frames")
        elif clip_shortfall(n_read, declared):
            LOG.warning("%s: %s", path, clip_shortfall(n_read, declared))
    finally:
        cap.release()


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or grey) as contiguous RGB."""
    import cv2

    if frame.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB))
    if frame.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB))
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


# ----------------------------------------------------------------------------- network streams

#: Seconds before each reconnect try after a stream drops: doubling, then the last one again.
RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)


class LiveStream:
    """A network stream, read on a thread of its own; :meth:`read` returns the newest frame not returned before.

        with LiveStream("rtsp://cam.local/live", open_timeout_s=10) as s:
            rgb = s.read(timeout=1.0)      # None: no new frame in time (see s.state and s.message)

    Frames that arrive while the consumer is busy replace the one waiting (``dropped`` counts them), so a slow model
    always sees the present, never a backlog.  When reading fails (the server went away, ``read_timeout_s`` without a
    frame), the capture is reopened after :data:`RECONNECT_BACKOFF_S` delays; after ``give_up_s`` without a frame
    (``None``: never) the stream is ``lost``.

    Attributes:
        state: ``live``, ``reconnecting``, ``lost`` or ``closed`` (``connecting`` before :meth:`open`).
        message: a line for a banner or a log about the state ("" while live).
        received, dropped, reconnects: frames read from the network, frames replaced before anyone read them,
            successful reconnects.
        outages: seconds each drop lasted, up to its reconnect.
    """

    def __init__(self, url: str, *, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0, give_up_s: float | None = 60.0,
                 backoff_s: Sequence[float] = RECONNECT_BACKOFF_S):
        self.url, self.name = url, redact(url)
        self.open_timeout_s, self.read_timeout_s, self.give_up_s = float(open_timeout_s), float(read_timeout_s), give_up_s
        self.backoff_s = tuple(backoff_s) or (1.0,)
        self.state, self.message = "connecting", ""
        self.fps = 0.0
        self.received = self.dropped = self.reconnects = 0
        self.outages: list[float] = []
        self.seq = 0  # the number of the frame the last read() returned (1-based, counted as received)
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._latest = self._taken = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the consumer's side ------------------------------------------------------------------------
    def open(self) -> "LiveStream":
        """Connect (at most ``open_timeout_s``) and start reading; DataError naming the URL when it cannot connect."""
        cap = self._capture()
        if cap is None:
            raise DataError(f"{self.name}: cannot connect within {self.open_timeout_s:g} s (check the address and that the stream "
                            "is up; a camera may allow only one viewer)")
        import cv2

        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 0.0
        self._set("live", "")
        self._thread = threading.Thread(target=self._pump, args=(cap,), name="pawlens-stream", daemon=True)
        self._thread.start()
        return self

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """The newest frame (RGB) not returned before, waiting up to ``timeout`` seconds (None: until one comes);
        None when none came in time or the stream is ``lost`` or ``closed``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._latest == self._taken and self.state not in ("lost", "closed"):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            if self._latest == self._taken:
                return None
            self._taken = self.seq = self._latest
            frame = self._frame
        return to_rgb(frame)

    def close(self) -> None:
        """Stop the reader thread and release the capture (waits at most ``read_timeout_s`` + 1 s for a read under way)."""
        self._stop.set()
        self._set("closed", "")
        if self._thread is not None:
            self._thread.join(self.read_timeout_s + 1.0)
            self._thread = None

    def __enter__(self) -> "LiveStream":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def news(self, seen: tuple[str, str], *, message: bool = True) -> tuple[str, str] | None:
        """The stream's ``(state, message)`` when it differs from ``seen`` (what the caller last acted on; with
        ``message=False`` a change of state only, not a new reconnect try), else None.  Predict's log and the app's
        banner both follow a stream through this."""
        now = (self.state, self.message)
        changed = now != tuple(seen) if message else now[0] != seen[0]
        return now if changed else None

    def summary(self) -> dict:
        """Counts for a report: ``received``, ``dropped`` (stale, never read), ``reconnects``, ``outages_s``, ``state``."""
        return {"received": self.received, "dropped": self.dropped, "reconnects": self.reconnects,
                "outages_s": [round(s, 2) for s in self.outages], "state": self.state}

    # -- the reader thread -------------------------------------------------------------------------
    def _set(self, state: str, message: str) -> None:
        with self._cond:
            if self.state == "closed":
                return
            self.state, self.message = state, message
            self._cond.notify_all()

    def _capture(self):
        """An opened cv2.VideoCapture of the URL with this stream's timeouts, or None."""
        import cv2

        quiet_ffmpeg()
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(self.open_timeout_s * 1000),
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(self.read_timeout_s * 1000)])
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _pump(self, cap) -> None:
        try:
            while cap is not None and not self._stop.is_set():
                ok, frame = cap.read()
                if ok and frame is not None and frame.size:
                    with self._cond:
                        if self._latest > self._taken:
                            self.dropped += 1
                        self._frame, self._latest = frame, self._latest + 1
                        self.received += 1
                        self._cond.notify_all()
                    continue
                cap.release()
                cap = None if self._stop.is_set() else self._reconnect()
        finally:
            if cap is not None:
                cap.release()

    def _reconnect(self):
        """Reopen the capture with back-off until it works (the capture), the stream is lost or closed (None)."""
        t0, tries = time.monotonic(), 0
        while not self._stop.is_set():
            delay = self.backoff_s[min(tries, len(self.backoff_s) - 1)]
            down = time.monotonic() - t0
            if self.give_up_s is not None and down + delay > self.give_up_s:
                self._set("lost", f"stream lost: no frame for {down:.0f} s and {tries} reconnect tries failed")
                return None
            tries += 1
            self._set("reconnecting", f"stream dropped; reconnecting (try {tries}, in {delay:g} s)")
            if self._stop.wait(delay):
                return None
            cap = self._capture()
            if cap is not None:
                self.reconnects += 1
                self.outages.append(time.monotonic() - t0)
                self._set("live", "")
                return cap
        return None


def _stream_items(url: str, duration_s: float | None, options: dict) -> Iterator[Item]:
    """The frames of one stream for :func:`iter_tasks`: the newest each time one is asked for, until it is lost, or
    ``duration_s`` has passed; the drops and recoveries are logged, and ``options["log"]`` (a dict, if given) gets
    the stream's :meth:`LiveStream.summary`.  Items and the log name the stream by its URL without a password
    (:func:`redact`), so results files never hold one."""
    options = dict(options)
    log = options.pop("log", None)
    stream = LiveStream(url, **options)
    try:
        stream.open()
    except DataError as e:
        yield Item(stream.name, error=str(e).split("] ", 1)[-1].replace(f"{stream.name}: ", ""))
        return
    t0 = time.monotonic()
    seen = ("live", "")
    try:
        while duration_s is None or time.monotonic() - t0 < duration_s:
            rgb = stream.read(timeout=0.5)
            news = stream.news(seen, message=False)
            if news is not None:
                seen = news
                if news[0] == "live":
                    LOG.warning("%s: stream back after %.1f s (reconnect %d)", stream.name, stream.outages[-1], stream.reconnects)
                elif news[0] == "reconnecting":
                    LOG.warning("%s: %s", stream.name, news[1])
            if rgb is None:
                if stream.state == "lost":
                    yield Item(stream.name, error=stream.message)
                    return
                continue
            yield Item(stream.name, frame=stream.seq - 1, time_s=time.monotonic() - t0, image=rgb, fps=stream.fps)  # waiting is not decoding
    finally:
        stream.close()
        if log is not None:
            log[stream.name] = stream.summary()


def default_workers() -> int:
    """``--workers`` when it is not given: min(4, the CPU count)."""
    return max(1, min(4, os.cpu_count() or 1))


def frames_ahead(batch_size: int, workers: int) -> int:
    """The most frames decoded (or being decoded) beyond the batch being filled: two batches and one per worker."""
    return 2 * batch_size + workers


@contextlib.contextmanager
def prepared_frames(sources: Sequence[str], cfg, *, every_n: int = 1, workers: int = 0, ahead: int | None = None,
                    **kw) -> Iterator[Iterator[Item]]:
    """The frames of ``sources`` decoded and preprocessed (:func:`prepare`), in the order of :func:`iter_sources`
    (``kw``: :func:`iter_tasks`'s keywords).

    ``workers`` 0: in the calling thread, one after another.  Otherwise ``workers`` threads decode and preprocess at
    most ``ahead`` frames (default :func:`frames_ahead` of 8) ahead of the consumer, while videos are read in one more
    thread, and OpenCV runs single-threaded inside the block (``cv2.setNumThreads(1)``, restored after): the workers
    are the parallelism, and OpenCV's own threads on top of them only compete with the model's.  Leaving the block
    stops and joins the threads.  ``load_image`` sets Pillow's pixel limit and the warning filters for each image,
    which are process-wide: both are restored once the threads are joined.
    """
    import cv2
    from PIL import Image

    tasks = iter_tasks(sources, every_n=every_n, **kw)
    fn = functools.partial(prepare, cfg=cfg)
    limit, cv_threads = Image.MAX_IMAGE_PIXELS, cv2.getNumThreads()
    try:
        if workers == 0:
            yield serial_map(tasks, fn)
        else:
            cv2.setNumThreads(1)
            with warnings.catch_warnings(), Prefetcher(tasks, fn, workers=workers, ahead=ahead or frames_ahead(8, workers)) as items:
                yield iter(items)
    finally:
        tasks.close()  # a video left half read is released now
        Image.MAX_IMAGE_PIXELS = limit
        cv2.setNumThreads(cv_threads)
