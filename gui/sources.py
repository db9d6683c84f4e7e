"""Frame sources for the desktop app: webcam, network stream, image file, video file (optionally looping), slideshow.

    src = open_source("0")                        # webcam 0; "rtsp://cam/live", "cat.mp4", "photo.jpg", "photos/" likewise
    src.open()
    frame = src.read()                            # (H, W, 3) uint8 RGB, or None when the source has ended
    src.close()

No Qt here: the capture worker (:mod:`gui.workers`) drives a source in its own thread.  Every
failure is a :class:`SourceError` (a :class:`pawlens.errors.DataError`) with a one-line message that
names the source and what to do; a source that simply ends returns ``None``.  Webcams are read with
OpenCV (PySide6-Essentials has no QtMultimedia).
"""

from __future__ import annotations

import os
import time

import numpy as np

from pawlens.errors import DataError, ImageError, SourceError
from pawlens.models.preprocess import IMAGE_EXTENSIONS, list_images, load_image
from pawlens.runtime import media
from pawlens.runtime.media import clip_shortfall, to_rgb

#: What the app plays as a video: pawlens-predict's video files, and animated GIFs (predict reads a GIF's first frame).
VIDEO_EXTENSIONS = media.VIDEO_EXTENSIONS + (".gif",)
#: Consecutive failed reads after which a webcam counts as gone.
CAMERA_MAX_FAILURES = 15


def _quiet_opencv() -> None:
    """Silence OpenCV's and FFmpeg's own stderr lines (probing absent cameras logs an error per index)."""
    media.quiet_ffmpeg()


class FrameSource:
    """Base class.  ``read()`` returns the next RGB frame, ``None`` once the source has ended.

    Attributes:
        name: what the status bar shows (file name or ``camera 0``).
        fps: the rate frames should be shown at (``None``: as fast as they come, e.g. a webcam
            whose ``read()`` blocks until the next frame).
        live: True for webcams (no pause in the source itself, frames keep coming).
        still: True when each frame should stay on screen (image, slideshow) rather than play.
    """

    kind = "source"
    fps: float | None = None
    live = False
    still = False

    def __init__(self, name: str):
        self.name = name
        self.frames_read = 0

    def open(self) -> "FrameSource":
        return self

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.kind}: {self.name}"

    @property
    def position(self) -> int:
        """The last frame's number in the source as the user counts it (1-based; a looping clip starts again at 1)."""
        return self.frames_read


class ImageSource(FrameSource):
    """One image file: one frame, then the end."""

    kind = "image"
    still = True

    def __init__(self, path: str):
        super().__init__(os.path.basename(os.fspath(path)))
        self.path = os.fspath(path)
        self._frame: np.ndarray | None = None
        self._done = False

    def open(self) -> "ImageSource":
        try:
            self._frame = load_image(self.path)
        except ImageError as e:
            why = str(e).split("] ", 1)[-1]
            why = why[len(self.path) + 2:] if why.startswith(self.path + ": ") else why
            raise SourceError(f"{self.path}: cannot show this image ({why}); open another file") from None
        self._done = False
        return self

    def read(self) -> np.ndarray | None:
        if self._done or self._frame is None:
            return None
        self._done = True
        self.frames_read += 1
        return self._frame


class FolderSource(FrameSource):
    """A slideshow of the images below a folder; unreadable images are skipped (and counted)."""

    kind = "folder"
    still = True

    def __init__(self, path: str, *, interval_s: float = 2.0, loop: bool = True):
        super().__init__(os.path.basename(os.path.normpath(os.fspath(path))) or os.fspath(path))
        self.path = os.fspath(path)
        self.fps = 1.0 / max(0.05, float(interval_s))
        self.loop = loop
        self.files: list[str] = []
        self.skipped: list[str] = []
        self._i = 0
        self.current: str | None = None

    def open(self) -> "FolderSource":
        if not os.path.isdir(self.path):
            raise SourceError(f"{self.path}: folder not found")
        self.files = list_images(self.path)
        if not self.files:
            raise SourceError(f"{self.path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder; choose another")
        self._i = 0
        return self

    def read(self) -> np.ndarray | None:
        tried = 0
        while tried < len(self.files):
            if self._i >= len(self.files):
                if not self.loop:
                    return None
                self._i = 0
            path = self.files[self._i]
            self._i += 1
            tried += 1
            try:
                frame = load_image(path)
            except ImageError:
                if path not in self.skipped:
                    self.skipped.append(path)
                continue
            self.current = path
            self.frames_read += 1
            return frame
        if self.skipped and len(self.skipped) >= len(self.files):
            raise SourceError(f"{self.path}: none of its {len(self.files)} images can be read (corrupt or not images)")
        return None

    @property
    def position(self) -> int:
        return self._i

    def describe(self) -> str:
        """``folder: NAME (x.jpg, 3 of 10, 1 skipped)``: the slideshow says where it is and what it passed over."""
        if not self.current:
            return f"folder: {self.name}"
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return f"folder: {self.name} ({os.path.basename(self.current)}, {self._i} of {len(self.files)}{skipped})"


class VideoSource(FrameSource):
    """A video file, decoded with OpenCV, played at its own frame rate; optionally looping."""

    kind = "video"

    def __init__(self, path: str, *, loop: bool = False):
        super().__init__(os.path.basename(os.fspath(path)))
        self.path = os.fspath(path)
        self.loop = loop
        self._cap = None
        self.loops = 0

    def open(self) -> "VideoSource":
        import cv2

        _quiet_opencv()
        if not os.path.isfile(self.path):
            raise SourceError(f"{self.path}: video file not found")
        if os.path.getsize(self.path) == 0:
            raise SourceError(f"{self.path}: zero-byte file, not a video")
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.path}: OpenCV cannot decode this file (not a video, or an unsupported codec)")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"{self.path}: no decodable frame in this video (corrupt or truncated?)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 25.0
        self.declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._cap = cap
        self._pending = first
        self._pass = 0  # frames read in this pass through the file
        self.end_note = ""  # set when a pass ends before the declared frame count (damage)
        return self

    def _end_of_pass(self) -> None:
        """Note a pass that stopped short of the header's frame count (a truncated or damaged file)."""
        if not self.end_note:
            self.end_note = clip_shortfall(self._pass, self.declared).replace("; the frames before it were used", "")

    def _reopen(self):
        """Start the file again: a fresh capture (seeking back to frame 0 fails on some files, e.g. one-frame clips)."""
        import cv2

        self._cap.release()
        self._cap = cv2.VideoCapture(self.path)
        ok, frame = self._cap.read() if self._cap.isOpened() else (False, None)
        return frame if ok else None

    def read(self) -> np.ndarray | None:
        import cv2

        if self._cap is None:
            return None
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                self._end_of_pass()
                if not self.loop or self.frames_read == 0:
                    return None
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    frame = self._reopen()
                    if frame is None:
                        return None
                self.loops += 1
                self._pass = 0
        self.frames_read += 1
        self._pass += 1
        return to_rgb(frame)

    @property
    def position(self) -> int:
        return self._pass if self._cap is not None else self.frames_read

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class CameraSource(FrameSource):
    """A webcam by OpenCV index.  ``read()`` blocks until the camera delivers the next frame."""

    kind = "camera"
    live = True

    def __init__(self, index: int, *, width: int | None = None, height: int | None = None):
        super().__init__(f"camera {int(index)}")
        self.index = int(index)
        self.width, self.height = width, height
        self._cap = None
        self._failures = 0

    def open(self) -> "CameraSource":
        import cv2

        _quiet_opencv()
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.index}: not available (no camera at this index, or it is in use); open a file instead")
        if self.width and self.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        self._cap = cap
        self._failures = 0
        return self

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None and frame.size:
                self._failures = 0
                self.frames_read += 1
                return to_rgb(frame)
            self._failures += 1
            if self._failures >= CAMERA_MAX_FAILURES:
                raise SourceError(f"camera {self.index}: stopped delivering frames (unplugged or taken by another app); "
                                  "reconnect it and choose it again")
            time.sleep(0.02)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class StreamSource(FrameSource):
    """A network camera or stream (``rtsp://``, ``http(s)://`` MJPEG or HLS, ``udp://``, ...) through OpenCV's FFmpeg.

    :class:`runtime.media.LiveStream` reads it on a thread of its own and keeps the newest frame; when it drops, it is
    reconnected with back-off for as long as the app shows it.  ``on_state(state, message)`` (set by the capture
    worker) hears each change: ``reconnecting`` with the line for the banner, ``live`` once frames flow again.
    ``read()`` returns None only after :meth:`interrupt` (the worker is stopping) or :meth:`close`.
    """

    kind = "stream"
    live = True

    def __init__(self, url: str, *, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0):
        super().__init__(media.redact(url))
        self.url = url
        self.stream = media.LiveStream(url, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s, give_up_s=None)
        self.on_state = None
        self._state, self._message = "connecting", ""
        self._stop = False

    def open(self) -> "StreamSource":
        try:
            self.stream.open()
        except DataError as e:
            raise SourceError(str(e).split("] ", 1)[-1] + "; open another source") from None
        self._state = "live"
        return self

    def read(self) -> np.ndarray | None:
        while not self._stop:
            rgb = self.stream.read(timeout=0.2)
            news = self.stream.news((self._state, self._message))  # a new state, or a new reconnect try
            if news is not None:
                self._state, self._message = news
                if self.on_state is not None:
                    self.on_state(*news)
            st = self._state
            if rgb is not None:
                self.frames_read += 1
                return rgb
            if st == "closed":
                return None
        return None

    def interrupt(self) -> None:
        """Make a blocked :meth:`read` return None now (called from another thread when the worker stops)."""
        self._stop = True

    @property
    def dropped(self) -> int:
        return self.stream.dropped

    def describe(self) -> str:
        return f"stream: {self.name}" + (" (reconnecting)" if self._state == "reconnecting" else "")

    def close(self) -> None:
        self._stop = True
        self.stream.close()


def list_cameras(max_index: int = 6) -> list[int]:
    """Indices of the webcams OpenCV can open (probes 0..max_index-1; stops after two misses in a row)."""
    import cv2

    _quiet_opencv()
    found, misses = [], 0
    for i in range(max_index):
        cap = cv2.VideoCapture(i)
        ok = cap.isOpened()
        cap.release()
        if ok:
            found.append(i)
            misses = 0
        else:
            misses += 1
            if misses >= 2:
                break
    return found


def open_source(spec: str | int, *, loop: bool = False, interval_s: float = 2.0) -> FrameSource:
    """Pick the source a ``--source`` value or a dropped path names (nothing is opened yet).

    Args:
        spec: a camera index (``0`` or ``"0"``), a stream URL (``rtsp://...``, ``http://...``, ``udp://...``), an image file,
            a video file or a folder of images.
        loop: replay a video (or a slideshow) when it ends.
        interval_s: seconds each image of a folder stays on screen.

    Raises:
        SourceError: the path does not exist or is of a kind the app cannot show.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return CameraSource(int(spec))
    if media.is_stream(spec):
        return StreamSource(spec.strip())
    path = os.path.expanduser(os.fspath(spec))
    if os.path.isdir(path):
        return FolderSource(path, interval_s=interval_s, loop=True)  # a slideshow always cycles
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file or folder (a source is a camera index, a stream URL such as rtsp://HOST/PATH, "
                          "an image, a video or a folder)")
    ext = os.path.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS and ext != ".gif":
        return ImageSource(path)
    if ext in VIDEO_EXTENSIONS:
        return VideoSource(path, loop=loop)
    # Unknown extension: an image if PIL can read it, a video otherwise (VideoSource.open says if not).
    try:
        from PIL import Image

        with Image.open(path):
            return ImageSource(path)
    except Exception:
        return VideoSource(path, loop=loop)
