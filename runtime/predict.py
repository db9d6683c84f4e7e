"""pawlens-predict: classify images, folders and video files with any exported model, optionally with Grad-CAM.

    pawlens-predict runs/export/best/best.int8.onnx photos/ clip.mp4 --out runs/predict/results.csv
    pawlens-predict best.pt cat.jpg --cam                               # overlays next to the results
    pawlens-predict best.onnx photos/ --cam --reference best.pt --backend openvino
    pawlens-predict runs/export/best/best.onnx clips/ --cam --save-video --out runs/predict/clips.csv
    pawlens-predict best.int8.onnx photos/ --workers 0                # decode in the main thread, one frame after another

MODEL is a ``.pt`` checkpoint, an ``.onnx`` file or a TensorRT ``.engine`` (with its ``.engine.json``
sidecar); the class names and preprocessing come from the model file itself.  SOURCE is any mix of
image files, folders (searched recursively) and video files (every ``--every-n``-th frame).
Unreadable files, empty folders and videos that cannot be opened are reported and skipped; the
command fails only when nothing at all could be read.

Each video also gets one summary row (frames classified, the share of them given each class, the mean
confidence) beside its frame rows, in the console and in ``--out``.  The timing columns
(``preprocess_ms_batch_avg``, ``infer_ms_batch_avg``; the table's ``ms``) are the time of the frame's
whole batch divided by its frame count (``batch_frames``), not one image's own latency.

Decoding and preprocessing run in ``--workers`` threads (:func:`prepared_frames`, :mod:`runtime.pipeline`) while
the main thread runs the model, at most two batches ahead of it; the results, their order and every file written
are the same as with ``--workers 0`` (all in the main thread).  The summary line and the JSON's ``throughput`` give
images/s and the busy seconds of decoding, preprocessing, inference, Grad-CAM and writing (:func:`throughput`).

Grad-CAM (``--cam``) runs on the PyTorch checkpoint and explains the class MODEL predicted; overlays
are written as PNGs into ``--cam-dir``, with the label, its probability and the crop the model saw
drawn on the frame.  It runs the traced trunk the desktop app uses (``CamExplainer(trace=True)``, checked
against the eager model when it starts; the JSON's ``cam.mode`` says which path ran) on the model's own
preprocessed input; drawing and PNG encoding happen on writer threads beside it, all done before the command
returns.  The checkpoint is ``--reference``, MODEL itself when it is a ``.pt``, or the one whose sha256 MODEL's
metadata records (``source_sha256``), looked for next to MODEL, at the checkpoint its export's ``parity.json``
names and under ``runs/train/*/``.  ``--save-video`` writes an annotated copy of each video (``<name>.pred.mp4``;
with ``--cam`` the overlay too) and never replaces an existing file unless ``--exist-ok`` is given.

Model files from elsewhere are untrusted: ONNX graphs and TensorRT engines are parsed by native code,
and NVIDIA warns never to deserialize an engine from an untrusted source.  Use files you exported.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from pawlens.models.console import (
    HelpFormatter,
    atomic_write_bytes,
    atomic_write_text,
    check_utf8_path,
    ensure_writable_dir,
    next_run_dir,
    printable,
    remove_stale_temps,
    run_cli,
)
from pawlens.models.errors import DataError, ImageError, InputError, OutputError, one_line
from pawlens.models.preprocess import IMAGE_EXTENSIONS, load_image, resized_shape

from .factory import BACKENDS
from .pipeline import BackgroundWriter, Prefetcher, StageTimes, serial_map

LOG = logging.getLogger("pawlens")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass
class Item:
    """One frame to classify (or a source that could not be read: ``error`` set, ``image`` None)."""

    source: str
    frame: int | None = None  # video frame index
    time_s: float | None = None  # video time stamp
    image: np.ndarray | None = None
    error: str = ""
    fps: float = 0.0  # the video's frame rate (0 for images or when unknown)
    x: np.ndarray | None = None  # (3, S, S) float32, the model's input (:func:`prepare`)
    decode_s: float = 0.0  # reading and decoding it (a video frame: with the frames skipped before it)
    preprocess_s: float = 0.0

    @property
    def key(self) -> str:
        return self.source if self.frame is None else f"{self.source}#frame={self.frame}"


@dataclass
class Result:
    """One classified frame (``status`` ok) or one source that could not be read (``status`` skipped).

    ``preprocess_ms_batch_avg`` and ``infer_ms_batch_avg`` are the time of the whole batch the frame was in
    (``batch_frames`` frames, at most ``--batch-size``) divided by that count: every frame of a batch shows the
    same value, and it is not the latency of one image on its own (use ``--batch-size 1`` or pawlens-bench for that).
    """

    source: str
    frame: int | None
    time_s: float | None
    status: str  # ok | skipped
    label: str = ""
    index: int = -1
    confidence: float = float("nan")
    probs: dict[str, float] = field(default_factory=dict)
    preprocess_ms_batch_avg: float = float("nan")
    infer_ms_batch_avg: float = float("nan")
    batch_frames: int = 0
    cam_path: str = ""
    cam_ms: float = float("nan")
    error: str = ""
    size: str = ""

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        for k, v in d.items():
            if isinstance(v, float) and v != v:
                d[k] = None
        return d


# ----------------------------------------------------------------------------- sources


def list_media(folder: str) -> list[str]:
    """Images and videos (by extension) below ``folder``, sorted; hidden files left out, nothing opened."""
    out = []
    for root, _dirs, files in os.walk(folder):
        out += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS) and not f.startswith(".")]
    return sorted(out)


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def expand_sources(sources: Sequence[str]) -> list[tuple[str, str]]:
    """``(path, error)`` per file to read, folders expanded (images and videos, recursively); ``error`` "" when it exists."""
    out: list[tuple[str, str]] = []
    for src in sources:
        if not os.path.exists(src):
            out.append((src, "not found"))
        elif os.path.isdir(src):
            files = list_media(src)
            if not files:
                out.append((src, f"empty folder: no images ({', '.join(IMAGE_EXTENSIONS)}) or videos ({', '.join(VIDEO_EXTENSIONS)}) inside"))
            out += [(f, "") for f in files]
        else:
            out.append((src, ""))
    return out


def count_frames(files: Sequence[tuple[str, str]], every_n: int) -> int:
    """How many frames :func:`iter_sources` will yield, from the videos' declared frame counts (an estimate for progress)."""
    import cv2

    n = 0
    for path, err in files:
        if err or not is_video(path):
            n += 1
            continue
        quiet_ffmpeg()
        cap = cv2.VideoCapture(path)
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
        n += max(1, -(-declared // every_n))
    return n


def iter_sources(sources: Sequence[str], *, every_n: int = 1) -> Iterator[Item]:
    """Expand images, folders (images and videos) and videos into frames; unreadable inputs come out as items with ``error``."""
    return (decode_task(t) for t in iter_tasks(sources, every_n=every_n))


def iter_tasks(sources: Sequence[str], *, every_n: int = 1) -> Iterator[Item | str]:
    """What :func:`iter_sources` yields, with each image left as its path (to decode elsewhere: :func:`decode_task`).

    Videos are read here, frame by frame (a capture cannot be shared between threads); an error while reading one
    ends that video with an item carrying the error.
    """
    if every_n < 1:
        raise InputError(f"--every-n must be >= 1, got {every_n}")
    for path, err in expand_sources(sources):
        if err:
            yield Item(path, error=err)
        elif is_video(path):
            try:
                yield from _video_items(path, every_n)
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
    if item.error:
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
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def clip_shortfall(n_read: int, declared: int) -> str:
    """The warning for a clip that ended before the frame count its header declares, or "" when it did not."""
    if declared <= 0 or n_read >= declared - max(2, declared // 100):  # the count is an estimate in some containers
        return ""
    return (f"read {n_read} of the {declared} frames its header declares: it stopped at damage after frame {n_read} "
            "(truncated or corrupt); the frames before it were used")


def _video_items(path: str, every_n: int) -> Iterator[Item]:
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
            if i % every_n == 0:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                item = Item(path, frame=i, time_s=(i / fps) if fps > 0 else None, image=rgb, fps=fps, decode_s=time.perf_counter() - t0)
                yield item
                t0 = time.perf_counter()
            i += 1
        if n_read == 0:
            yield Item(path, error="the video has no readable frames")
        elif clip_shortfall(n_read, declared):
            LOG.warning("%s: %s", path, clip_shortfall(n_read, declared))
    finally:
        cap.release()


def _batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    buf: list[Item] = []
    for it in items:
        buf.append(it)
        if sum(1 for b in buf if b.error == "") >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def _cam_name(item: Item, used: set[str]) -> str:
    stem = os.path.splitext(os.path.basename(item.source))[0] or "image"
    base = stem if item.frame is None else f"{stem}_f{item.frame:06d}"
    name, k = f"{base}.cam.png", 1
    while name in used:
        k += 1
        name = f"{base}_{k}.cam.png"
    used.add(name)
    return name


# ----------------------------------------------------------------------------- the Grad-CAM reference


def _reference_candidates(model: str) -> Iterator[str]:
    """Checkpoints that may be the one ``model`` was exported from, nearest first (not yet checked)."""
    import glob

    here = os.path.dirname(os.path.abspath(model))
    yield from sorted(glob.glob(os.path.join(here, "*.pt")) + glob.glob(os.path.join(here, "model", "*.pt")))
    try:  # the export's own record of its checkpoint
        with open(os.path.join(here, "parity.json"), encoding="utf-8") as f:
            ck = json.load(f).get("checkpoint")
        if isinstance(ck, str) and ck:
            yield ck if os.path.isabs(ck) else os.path.join(here, ck)
            yield ck
    except (OSError, ValueError, AttributeError):
        pass
    dirs, d = [], here
    for _ in range(4):  # runs/export/NAME/ -> runs/ -> the project folder
        dirs.append(d)
        d = os.path.dirname(d)
    dirs.append(os.getcwd())
    for d in dirs:
        for pattern in (os.path.join(d, "train", "*", "*.pt"), os.path.join(d, "runs", "train", "*", "*.pt")):
            files = glob.glob(pattern)
            yield from sorted(files, key=lambda f: (os.path.basename(f) != "best.pt", -os.path.getmtime(f)))


def find_reference(model: str, sha256: str, *, limit: int = 64) -> str | None:
    """The checkpoint whose sha256 is ``sha256`` (the one ``model`` was exported from), or ``None``.

    Looks next to ``model`` (``*.pt``, ``model/*.pt``), at the checkpoint its export's ``parity.json`` names, and in
    ``train/*/`` and ``runs/train/*/`` below the model's folder, its parents (up to three levels up) and the current
    folder; at most ``limit`` files are hashed.
    """
    from pawlens.models.console import sha256_file

    seen: set[str] = set()
    for c in _reference_candidates(model):
        real = os.path.realpath(c)
        if real in seen or not os.path.isfile(real):
            continue
        seen.add(real)
        if len(seen) > limit:
            break
        try:
            if sha256_file(real) == sha256:
                return c
        except OSError:
            continue
    return None


def resolve_reference(model: str, meta, reference: str | None) -> str:
    """The .pt checkpoint Grad-CAM runs on: ``reference``, MODEL itself if it is one, or the one found by sha256."""
    from .factory import file_kind

    if reference:
        return reference
    if file_kind(model) == ".pt":
        return model
    sha = getattr(meta, "source_sha256", "") or ""
    if not sha:
        raise InputError(f"--cam: {model} does not record the checkpoint it was exported from; "
                         "pass --reference CKPT (the .pt it was exported from; Grad-CAM runs on PyTorch)")
    found = find_reference(model, sha)
    if found is None:
        raise InputError(f"--cam: no checkpoint with sha256 {sha[:12]}... (the one {model} was exported from) next to it, in its "
                         "parity.json or under runs/train/*/; pass --reference CKPT (the .pt it was exported from)")
    LOG.info(f"Grad-CAM reference: {found} (its sha256 matches {os.path.basename(model)}'s metadata)")
    return found


# ----------------------------------------------------------------------------- annotated pictures


def crop_in_frame(h: int, w: int, cfg) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of an ``h`` x ``w`` frame the model sees (the centre crop after the resize)."""
    from pawlens.models.preprocess import crop_box

    nh, nw = resized_shape(h, w, cfg)
    s = cfg.input_size
    y0, x0 = crop_box(nh, nw, s)
    sy, sx = h / nh, w / nw
    return round(x0 * sx), round(y0 * sy), round((x0 + s) * sx), round((y0 + s) * sy)


def annotate(rgb: np.ndarray, text: str, box: tuple[int, int, int, int] | None = None, *, min_side: int = 0) -> np.ndarray:
    """A copy of ``rgb`` with ``text`` on a dark band at the top and ``box`` (the model's crop) outlined.

    Frames whose shorter side is under ``min_side`` are enlarged first, so the text stays readable.
    """
    import cv2

    img = np.ascontiguousarray(rgb)
    h, w = img.shape[:2]
    k = max(1.0, min_side / max(1, min(h, w)))
    if k > 1.0:
        img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_LINEAR)
        box = None if box is None else tuple(round(v * k) for v in box)
    else:
        img = img.copy()
    h, w = img.shape[:2]
    scale = max(0.4, min(w, h) / 500)
    th = max(1, round(scale * 2))
    if box is not None:
        x0, y0, x1, y1 = box
        cv2.rectangle(img, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 255, 255), th + 1)
        cv2.rectangle(img, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (0, 0, 0), max(1, th - 1))
    (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
    band = tht + base + 2 * th + 4
    img[:band, : min(w, tw + 12)] = (img[:band, : min(w, tw + 12)] * 0.35).astype(np.uint8)
    cv2.putText(img, text, (6, band - base - th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), th, cv2.LINE_AA)
    return img


def _caption(r: Result, with_cam: bool) -> str:
    t = f"{r.label} {r.confidence:.2f}"
    if r.frame is not None:
        t += f"  frame {r.frame}"
    return t + ("  (Grad-CAM)" if with_cam else "")


def _write_png(path: str, rgb: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"{path}: could not encode the PNG")
    atomic_write_bytes(path, buf.tobytes())


def video_out_path(source: str, folder: str) -> str:
    """Where ``--save-video`` writes the annotated copy of ``source``: ``FOLDER/<stem>.pred.mp4``."""
    return os.path.join(folder, os.path.splitext(os.path.basename(source))[0] + ".pred.mp4")


def planned_videos(sources: Sequence[str], folder: str, *, exist_ok: bool = False) -> dict[str, str]:
    """``{video: annotated copy}`` for ``--save-video``; OutputError naming a file that exists (unless ``exist_ok``) or a clash."""
    out: dict[str, str] = {}
    for path, err in expand_sources(sources):
        if err or not is_video(path):
            continue
        dst = video_out_path(path, folder)
        if dst in out.values():
            raise OutputError(f"{dst}: two videos named {os.path.basename(dst).replace('.pred.mp4', '')} would write the same file; "
                              "predict them in separate runs with different --save-video folders")
        if os.path.exists(dst) and not exist_ok:
            raise OutputError(f"{dst} already exists; pass --exist-ok to replace it, or choose another --save-video folder")
        out[path] = dst
    return out


class VideoSink:
    """Writes the annotated frames of one clip to ``path`` via a temporary file, renamed into place by :meth:`close`."""

    def __init__(self, path: str, fps: float, size: tuple[int, int]):
        import cv2

        self.path, self.size, self.frames = path, size, 0
        self.tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp-{os.getpid()}.mp4")
        self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), max(1.0, fps), size)
        if not self.writer.isOpened():
            self.abort()
            raise OutputError(f"{path}: OpenCV cannot write an mp4v video here")

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> str:
        self.writer.release()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.writer.release()
        try:
            os.remove(self.tmp)
        except OSError:
            pass


# ----------------------------------------------------------------------------- the work


def default_workers() -> int:
    """``--workers`` when it is not given: min(4, the CPU count)."""
    return max(1, min(4, os.cpu_count() or 1))


def frames_ahead(batch_size: int, workers: int) -> int:
    """The most frames decoded (or being decoded) beyond the batch being filled: two batches and one per worker."""
    return 2 * batch_size + workers


@contextlib.contextmanager
def prepared_frames(sources: Sequence[str], cfg, *, every_n: int = 1, workers: int = 0, ahead: int | None = None) -> Iterator[Iterator[Item]]:
    """The frames of ``sources`` decoded and preprocessed (:func:`prepare`), in the order of :func:`iter_sources`.

    ``workers`` 0: in the calling thread, one after another.  Otherwise ``workers`` threads decode and preprocess at
    most ``ahead`` frames (default :func:`frames_ahead` of 8) ahead of the consumer, while videos are read in one more
    thread, and OpenCV runs single-threaded inside the block (``cv2.setNumThreads(1)``, restored after): the workers
    are the parallelism, and OpenCV's own threads on top of them only compete with the model's.  Leaving the block
    stops and joins the threads.  ``load_image`` sets Pillow's pixel limit and the warning filters for each image,
    which are process-wide: both are restored once the threads are joined.
    """
    import cv2
    from PIL import Image

    tasks = iter_tasks(sources, every_n=every_n)
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


@dataclass
class _Picture:
    """One frame's PNG and/or annotated video frame, drawn and written on the writer thread."""

    rgb: np.ndarray
    heat: np.ndarray | None
    box: tuple[int, int, int, int]
    png: str = ""  # the Grad-CAM PNG's path ("" for none)
    png_caption: str = ""
    video: str = ""  # the source whose annotated copy gets the frame ("" for none)
    video_caption: str = ""
    fps: float = 0.0


@dataclass
class _Outputs:
    """What a run writes besides the results: Grad-CAM PNGs and annotated videos, through one writer thread.

    The heat maps are computed in the calling thread (:meth:`frame`); overlaying, captioning, PNG encoding and the
    video frames run on ``writer``, in order; :meth:`close` waits for them and raises the first error a write raised.
    """

    explainer: Any = None
    cam_reference: str = ""
    cam_dir: str | None = None
    alpha: float = 0.6
    videos: dict[str, str] = field(default_factory=dict)  # source -> annotated copy
    used: set[str] = field(default_factory=set)
    sink: VideoSink | None = None
    sink_source: str = ""
    written: list[str] = field(default_factory=list)
    every_n: int = 1  # the video's frames are sampled every n-th: the copy plays at fps / n
    writer: BackgroundWriter | None = None

    @property
    def wanted(self) -> bool:
        return self.explainer is not None or bool(self.videos)

    def frame(self, it: Item, r: Result, cfg, times: StageTimes) -> None:
        """Grad-CAM (here) and the PNG and/or the next frame of the annotated video (queued) for one classified frame."""
        want_video = it.source in self.videos
        if self.explainer is None and not want_video:
            return
        pic = _Picture(it.image, None, crop_in_frame(it.image.shape[0], it.image.shape[1], cfg))
        if self.explainer is not None:
            cr = self.explainer.explain(it.image, class_index=r.index, prepared=None if it.x is None else (it.x, cfg))
            pic.heat, r.cam_ms = cr.heatmap, cr.ms
            times.add("cam", cr.ms / 1e3)
            pic.png, pic.png_caption = os.path.join(self.cam_dir, _cam_name(it, self.used)), _caption(r, True)
            r.cam_path = pic.png
        if want_video:
            pic.video, pic.video_caption, pic.fps = it.source, _caption(r, self.explainer is not None), it.fps
        self.writer.submit(self._draw, pic)

    def _draw(self, pic: _Picture) -> None:
        from pawlens.models.gradcam import overlay

        img = pic.rgb if pic.heat is None else overlay(pic.rgb, pic.heat, alpha=self.alpha)
        if pic.png:
            _write_png(pic.png, annotate(img, pic.png_caption, pic.box, min_side=256))
        if pic.video:
            self._video(pic.video, pic.fps, img.shape).write(annotate(img, pic.video_caption, pic.box))

    def _video(self, source: str, fps: float, shape: tuple[int, ...]) -> VideoSink:
        if self.sink is None or self.sink_source != source:
            self.finish()
            self.sink = VideoSink(self.videos[source], fps / self.every_n if fps > 0 else 10.0, (shape[1], shape[0]))
            self.sink_source = source
        return self.sink

    def finish(self) -> None:
        if self.sink is not None:
            sink, self.sink = self.sink, None
            self.written.append(sink.close())
            LOG.info(f"annotated video: {sink.path} ({sink.frames} frames)")

    def close(self) -> None:
        """Write everything queued, close the last video; raises the first error a write raised."""
        if self.writer is not None:
            self.writer.submit(self.finish)
            self.writer.close()

    def abort(self) -> None:
        """Drop what is queued (the write under way finishes), remove an unfinished video's temporary file."""
        if self.writer is not None:
            self.writer.abort()
        if self.sink is not None:
            self.sink.abort()
            self.sink = None


def _infer(pred, good: list[Item], times: StageTimes) -> list:
    """Predictions for the prepared frames ``good``, as ``Predictor.predict_batch`` makes them for their raw frames."""
    from pawlens.models.errors import ArtifactError
    from pawlens.models.preprocess import preprocess_numpy

    from .predictor import Prediction, softmax

    t0 = time.perf_counter()
    x = np.stack([it.x if it.x is not None else preprocess_numpy([it.image], pred.preprocess)[0] for it in good])
    t1 = time.perf_counter()
    logits = pred.runner.infer(x)
    t2 = time.perf_counter()
    if logits.shape[1] != len(pred.class_names):
        raise ArtifactError(f"{getattr(pred.runner, 'path', pred.runner.name)}: the model outputs {logits.shape[1]} classes but its metadata "
                            f"names {len(pred.class_names)} ({', '.join(map(str, pred.class_names))}); re-export it with pawlens-export")
    probs = softmax(logits.astype(np.float32))
    idx = probs.argmax(axis=1)
    times.add("preprocess", t1 - t0)
    times.add("infer", t2 - t1)
    n = len(good)
    pre_ms = (sum(it.preprocess_s for it in good) + (t1 - t0)) * 1e3 / n
    return [Prediction(int(idx[i]), pred.class_names[int(idx[i])], probs[i], logits[i], pred.class_names, pre_ms, (t2 - t1) * 1e3 / n,
                       0.0) for i in range(n)]


def _classify_chunk(pred, chunk: list[Item], results: list[Result], outputs: _Outputs, times: StageTimes) -> int:
    """Classify the readable frames of one batch, append their results in order; returns how many were classified."""
    for it in chunk:  # a frame this model's resize would blow up is skipped here, not fatal to the batch
        times.add("decode", it.decode_s)
        times.add("preprocess", it.preprocess_s)
        if not it.error:
            try:
                resized_shape(it.image.shape[0], it.image.shape[1], pred.preprocess)
            except ImageError as e:
                it.error, it.image, it.x = str(e).split("] ", 1)[-1], None, None
    good = [it for it in chunk if not it.error]
    for it in chunk:
        if it.error:
            LOG.warning("skipped %s: %s", it.source, it.error)
    preds = _infer(pred, good, times) if good else []
    by_id = {id(it): p for it, p in zip(good, preds)}
    for it in chunk:
        if it.error:
            results.append(Result(it.source, it.frame, it.time_s, "skipped", error=it.error))
            continue
        p = by_id[id(it)]
        r = Result(it.source, it.frame, it.time_s, "ok", label=p.label, index=p.index, confidence=p.confidence,
                   probs={c: float(v) for c, v in zip(p.class_names, p.probs)}, preprocess_ms_batch_avg=p.preprocess_ms,
                   infer_ms_batch_avg=p.infer_ms, batch_frames=len(good), size=f"{it.image.shape[1]}x{it.image.shape[0]}")
        outputs.frame(it, r, pred.preprocess, times)
        results.append(r)
        it.image = it.x = None
    return len(good)


def throughput(results: Sequence[Result], times: StageTimes, wall_s: float, workers: int, write_s: float = 0.0) -> dict:
    """The run's rate and where its time went: ``images_per_s`` (frames classified / ``wall_s``, from the first frame read
    to the last result written) and the busy seconds of each stage, summed over threads (``decode_s`` includes reading
    videos; ``preprocess_s`` the stacking of batches; ``cam_s`` the heat maps; ``write_s`` the writer thread's drawing
    and encoding)."""
    n = sum(r.status == "ok" for r in results)
    out = {"workers": workers, "frames": n, "wall_s": round(wall_s, 4), "images_per_s": round(n / wall_s, 2) if wall_s > 0 else None}
    for stage in ("decode", "preprocess", "infer", "cam"):
        out[f"{stage}_s"] = round(times.get(stage), 4)
    out["write_s"] = round(write_s, 4)
    return out


def format_throughput(t: dict) -> str:
    """``123.4 images/s (2 decode workers; busy s: decode 1.2, preprocess 0.8, inference 3.4)`` for the summary line."""
    how = "decoded in the main thread" if not t["workers"] else f"{t['workers']} decode worker{'s' if t['workers'] > 1 else ''}"
    parts = [f"decode {t['decode_s']:.2f}", f"preprocess {t['preprocess_s']:.2f}", f"inference {t['infer_s']:.2f}"]
    if t.get("cam_s"):
        parts.append(f"Grad-CAM {t['cam_s']:.2f}")
    if t.get("write_s"):
        parts.append(f"writing {t['write_s']:.2f}")
    rate = f"{t['images_per_s']:.1f}" if t.get("images_per_s") is not None else "-"
    return f"{rate} images/s ({how}; busy s: {', '.join(parts)})"


def predict_sources(model: str, sources: Sequence[str], *, backend: str = "auto", device: str = "auto", precision: str | None = None,
                    threads: int | None = None, compile: bool = False, batch_size: int = 8, every_n: int = 1, cam: bool = False,
                    reference: str | None = None, cam_dir: str | None = None, alpha: float = 0.6,
                    class_names: Sequence[str] | None = None, progress: bool = True, save_video: str | None = None,
                    exist_ok: bool = False, workers: int | None = None, server: str | None = None,
                    server_model: str | None = None) -> tuple[list[Result], dict]:
    """Classify every readable frame of ``sources``; the library behind ``pawlens-predict``.

    ``workers`` threads (default :func:`default_workers`) decode and preprocess the frames ahead of inference, a bounded
    number at a time (:func:`prepared_frames`); 0 does it all in the calling thread.  The results are the same either
    way, in the same order.  With ``cam``, Grad-CAM PNGs (label, probability and the model's crop drawn on them) go to
    ``cam_dir``; the reference checkpoint is ``reference``, MODEL if it is a ``.pt``, or found by the sha256 in
    MODEL's metadata (:func:`find_reference`).  With ``save_video`` (a folder), each video gets an annotated copy of
    its classified frames there (:func:`video_out_path`, at the clip's frame rate divided by ``every_n``); an existing
    file is refused unless ``exist_ok``.  PNGs and videos are written by one writer thread, all before this returns.

    With ``server`` (``http://HOST:PORT`` or ``grpc://HOST:PORT``) ``model`` is ignored: the frames are preprocessed here
    with the served model's own contract and sent to ``server_model`` on that Triton server
    (:class:`pawlens.serve.client.TritonRunner`); the results are written the same way.

    Returns:
        ``(results, info)``: one :class:`Result` per frame or skipped source, and the runner's ``describe()`` with
        ``throughput`` (:func:`throughput`) and, with ``cam``, ``cam`` (the reference and how its Grad-CAM runs).
    """
    from .factory import make_runner
    from .predictor import Predictor

    workers = default_workers() if workers is None else int(workers)
    for flag, v in (("--batch-size", batch_size), ("--every-n", every_n)):
        if v < 1:
            raise InputError(f"{flag} must be >= 1, got {v}")
    if workers < 0:
        raise InputError(f"--workers must be >= 0 (0: decode in the main thread), got {workers}")
    outputs = _Outputs(alpha=alpha, cam_dir=cam_dir, every_n=every_n)
    if save_video is not None:
        outputs.videos = planned_videos(sources, save_video, exist_ok=exist_ok)
        if outputs.videos:
            ensure_writable_dir(save_video, "--save-video folder")
            remove_stale_temps(save_video, prefix=".")  # a killed run's half-written .<name>.pred.mp4.tmp-<PID>.mp4
        else:
            LOG.warning("--save-video: no video among the sources; nothing to annotate")
    if cam:
        if cam_dir is None:
            raise InputError("--cam needs an output folder (--cam-dir or --out)")
        ensure_writable_dir(cam_dir, "Grad-CAM folder")
    if server is not None:
        from pawlens.serve.client import TritonRunner

        if cam:
            raise InputError("--cam needs the PyTorch reference here; it does not apply with --server (run predict on the checkpoint)")
        runner = TritonRunner(server, model=server_model)
    else:
        runner = make_runner(model, backend=backend, device=device, precision=precision, threads=threads, compile=compile,
                             class_names=class_names, batch=batch_size)
    pred = Predictor(runner)
    if cam:
        outputs.explainer, outputs.cam_reference = _explainer(model, runner, reference, device, pred.class_names)
    with pred:
        results, times, wall, cam_info = _run(pred, sources, outputs, batch_size=batch_size, every_n=every_n, workers=workers,
                                              progress=progress)
        info = pred.describe()
    info["throughput"] = throughput(results, times, wall, workers, outputs.writer.busy_s if outputs.writer else 0.0)
    if cam_info:
        info["cam"] = cam_info
    return results, info


def _run(pred, sources, outputs: _Outputs, *, batch_size: int, every_n: int, workers: int, progress: bool):
    """The loop of :func:`predict_sources` with an active predictor: ``(results, stage times, wall seconds, cam info)``."""
    from pawlens.models.progress import progress as make_progress

    results: list[Result] = []
    times = StageTimes()
    cam_info: dict = {}
    bar = make_progress(total=count_frames(expand_sources(sources), every_n), desc="predict", unit="frame", enabled=progress)
    try:
        if outputs.explainer is not None:
            outputs.explainer.activate()
            cam_info = {"reference": outputs.cam_reference, "mode": outputs.explainer.mode}
        if outputs.wanted:  # PNGs do not depend on each other; an annotated video's frames go in order, from one thread
            outputs.writer = BackgroundWriter(maxsize=WRITER_QUEUE, threads=1 if outputs.videos else PNG_WRITERS)
        t0 = time.perf_counter()
        with prepared_frames(sources, pred.preprocess, every_n=every_n, workers=workers,
                             ahead=frames_ahead(batch_size, workers)) as items:
            for chunk in _batches(items, batch_size):
                bar.update(_classify_chunk(pred, chunk, results, outputs, times))
        outputs.close()
        wall = time.perf_counter() - t0
    finally:
        outputs.abort()
        bar.close()
        if outputs.explainer is not None:
            outputs.explainer.deactivate()
    return results, times, wall, cam_info


#: frames the writer may have queued (each holds its frame and heat map) before the inference waits for it
WRITER_QUEUE = 8
#: threads that draw and encode Grad-CAM PNGs when no annotated video is written (one thread writes videos, in order)
PNG_WRITERS = 2


def _explainer(model: str, runner, reference: str | None, device: str, class_names: Sequence[str]):
    """``(CamExplainer, checkpoint)`` for ``--cam``, made as the desktop app makes it: with the traced trunk (checked
    against the eager model in ``activate``; :attr:`CamExplainer.mode` says which path runs)."""
    from .cam import CamExplainer

    ref = resolve_reference(model, getattr(runner, "meta", None), reference)
    explainer = CamExplainer(ref, device="cuda" if str(device).startswith("cuda") else "cpu", trace=True)
    if list(explainer.class_names) != list(class_names):
        raise InputError(f"--reference {ref} has classes {explainer.class_names}, the model {list(class_names)}; "
                         "pass the checkpoint it was exported from")
    sha = getattr(getattr(runner, "meta", None), "source_sha256", "")
    if reference and sha and model != ref:
        from pawlens.models.console import sha256_file

        if sha256_file(ref) != sha:
            LOG.warning(f"--reference {ref} is not the checkpoint {os.path.basename(model)} was exported from (sha256 differs): "
                        "the overlays show the reference's reasons, which may differ from the model's")
    return explainer, ref


# ----------------------------------------------------------------------------- output


def video_summaries(results: Sequence[Result], class_names: Sequence[str]) -> list[dict]:
    """One row per video: frames classified, the share of them given each class, the mean confidence and the majority label."""
    by: dict[str, list[Result]] = {}
    for r in results:
        if r.status == "ok" and r.frame is not None:
            by.setdefault(r.source, []).append(r)
    rows = []
    for src, rs in by.items():
        share = {c: sum(r.label == c for r in rs) / len(rs) for c in class_names}
        rows.append({"source": src, "frames": len(rs), "label": max(class_names, key=lambda c: share[c]), "share": share,
                     "mean_confidence": float(np.mean([r.confidence for r in rs])),
                     "first_frame": rs[0].frame, "last_frame": rs[-1].frame})
    return rows


def _columns(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(x)) for w, x in zip(widths, row)]
    return ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)] + \
        ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in rows]


def format_table(results: Sequence[Result], class_names: Sequence[str], *, width: int = 48) -> str:
    """A readable fixed-width table of the results; skipped sources get one line with the reason.

    The ``ms`` column is the frame's batch's preprocessing + inference time divided by the frames in that batch.
    """
    cols = ["source", "label", "conf"] + [f"p({c})" for c in class_names] + ["ms (batch avg)"]

    def short(r: Result) -> str:
        src = printable(r.source if r.frame is None else f"{r.source}#{r.frame}")
        return src if len(src) <= width else "..." + src[-(width - 3):]

    rows = [[short(r), r.label, f"{r.confidence:.3f}", *[f"{r.probs.get(c, float('nan')):.3f}" for c in class_names],
             f"{r.preprocess_ms_batch_avg + r.infer_ms_batch_avg:.1f}"] for r in results if r.status == "ok"]
    table = _columns(cols, rows)
    lines, it = table[:2], iter(table[2:])
    for r in results:
        lines.append(next(it) if r.status == "ok" else f"{short(r).ljust(len(table[1].split('  ')[0]))}  SKIPPED: {r.error}")
    return "\n".join(lines)


def format_videos(summaries: Sequence[dict], class_names: Sequence[str], *, width: int = 48) -> str:
    """The per-video summary table (empty string when no video was classified)."""
    if not summaries:
        return ""
    rows = [[(printable(s["source"]) if len(s["source"]) <= width else "..." + printable(s["source"])[-(width - 3):]), str(s["frames"]),
             s["label"], *[f"{s['share'][c]:.3f}" for c in class_names], f"{s['mean_confidence']:.3f}"] for s in summaries]
    return "\n".join(_columns(["video", "frames", "majority", *[f"share({c})" for c in class_names], "mean conf"], rows))


def write_results(path: str, results: Sequence[Result], info: dict, class_names: Sequence[str], model: str) -> str:
    """Write ``results.csv`` or ``results.json`` (by suffix) atomically, per-frame rows and one summary row per video.

    CSV: frame rows have ``status`` ok or skipped; a video's summary row has ``status`` video, ``frames``, ``label`` (the
    majority), ``confidence`` (the mean) and ``share_<class>`` (the share of its frames given each class).
    JSON: ``results`` (frames), ``videos`` (summaries), ``throughput`` (images/s and the busy seconds of each stage,
    :func:`throughput`) and with Grad-CAM ``cam`` (its reference and whether the traced trunk ran).
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".json"):
        raise InputError(f"--out {path}: use a .csv or .json file name")
    ensure_writable_dir(os.path.dirname(os.path.abspath(path)))
    videos = video_summaries(results, class_names)
    if ext == ".json":
        runner = {k: v for k, v in info.items() if k not in ("throughput", "cam")}
        doc = {"model": model, "runner": runner, "class_names": list(class_names), "throughput": info.get("throughput"),
               **({"cam": info["cam"]} if "cam" in info else {}),
               "n_ok": sum(r.status == "ok" for r in results), "n_skipped": sum(r.status != "ok" for r in results),
               "timing": "preprocess_ms_batch_avg / infer_ms_batch_avg: the batch's time divided by its batch_frames",
               "videos": videos, "results": [r.to_dict() for r in results]}
        atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")
        return path
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["source", "frame", "time_s", "status", "label", "confidence", *[f"prob_{c}" for c in class_names],
                "preprocess_ms_batch_avg", "infer_ms_batch_avg", "batch_frames", "cam_path", "cam_ms", "error",
                "frames", *[f"share_{c}" for c in class_names]])

    def f(v, nd=6):
        return "" if v is None or (isinstance(v, float) and v != v) else (f"{v:.{nd}f}" if isinstance(v, float) else v)

    blank = [""] * (1 + len(class_names))
    for r in results:
        w.writerow([r.source, f(r.frame), f(r.time_s, 3), r.status, r.label, f(r.confidence),
                    *[f(r.probs.get(c)) for c in class_names], f(r.preprocess_ms_batch_avg, 3), f(r.infer_ms_batch_avg, 3),
                    r.batch_frames or "", r.cam_path, f(r.cam_ms, 2), r.error, *blank])
    for v in videos:
        w.writerow([v["source"], "", "", "video", v["label"], f(v["mean_confidence"]), *[""] * len(class_names), "", "", "", "", "", "",
                    v["frames"], *[f(v["share"][c]) for c in class_names]])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8", "surrogateescape"))  # a source named in non-UTF-8 bytes: kept as is
    return path


# ----------------------------------------------------------------------------- CLI


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pawlens-predict", add_help=add_help, formatter_class=HelpFormatter,
        description="Classify images, folders and videos with a .pt, .onnx or .engine model; optional Grad-CAM overlays. "
        "Model files are untrusted input: load only files you exported (TensorRT engines especially).",
        epilog="example: pawlens-predict runs/export/best/best.int8.onnx photos/ clip.mp4 --out runs/predict/results.csv --cam --save-video\n\n"
        "timing: preprocess_ms_batch_avg and infer_ms_batch_avg (the table's ms) are the time of the frame's whole batch divided by "
        "its frame count (batch_frames); for the latency of one image use --batch-size 1, or pawlens-bench.\n"
        "videos: the results hold one summary row per video (status video: frames, the share of frames per class, the mean "
        "confidence) beside its frame rows.",
    )
    p.add_argument("model", metavar="MODEL", help="model file: .pt checkpoint, .onnx, or .engine (+ .engine.json sidecar); "
                   "with --server there is no MODEL: every positional argument is a SOURCE")
    p.add_argument("sources", metavar="SOURCE", nargs="*", help="image files, folders (recursive) and/or video files")
    g = p.add_argument_group("served model (pawlens serve)")
    g.add_argument("--server", default=None, metavar="URL", help="send the frames to a Triton server instead: http://HOST:8000 "
                   "or grpc://HOST:8001 (they are preprocessed here with the served model's own contract)")
    g.add_argument("--model", dest="server_model", default=None, metavar="NAME",
                   help="the served model (default: the server's one Pawlens classifier, *_pawlens first)")
    g = p.add_argument_group("runtime")
    g.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend (auto: picked from the file)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--precision", default=None, help="override: fp32/bf16/fp16 for a .pt, bf16 for an ONNX on openvino; if unset: the file's own")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for the backend; if unset: the backend's own")
    g.add_argument("--compile", action="store_true", help="a .pt only: run it through torch.compile (each batch size compiles "
                   "once, 10-30 s; pays off on large folders; needs a C++ compiler on the CPU)")
    g.add_argument("--batch-size", type=int, default=8, help="frames per inference call")
    g.add_argument("--every-n", type=int, default=5, help="use every N-th frame of a video")
    g.add_argument("--workers", type=int, default=None, help="threads that decode and preprocess frames while the model runs, "
                   "at most two batches ahead; 0: one after another in the main thread (default: min(4, CPU count))")
    g.add_argument("--classes", default=None, help="NAME,NAME,... for an ONNX file without pawlens metadata")
    g = p.add_argument_group("Grad-CAM")
    g.add_argument("--cam", action="store_true", help="write Grad-CAM overlay PNGs (PyTorch reference)")
    g.add_argument("--reference", default=None, help="the .pt checkpoint for Grad-CAM; if unset: MODEL if it is a .pt, else the checkpoint "
                   "whose sha256 MODEL's metadata records, found next to MODEL, via its parity.json or under runs/train/*/")
    g.add_argument("--cam-dir", default=None, help="folder for overlays; if unset: cam/ next to --out, else runs/predict/cam")
    g.add_argument("--alpha", type=float, default=0.6, help="heat-map opacity where the heat peaks, 0..1 (each pixel is weighted by its heat)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="write results.csv or results.json (by suffix)")
    g.add_argument("--save-video", nargs="?", const="", default=None, metavar="DIR",
                   help="write an annotated copy of each video (label, probability, the model's crop; with --cam the overlay) as "
                   "DIR/<name>.pred.mp4, one frame per classified frame; if DIR is left out: next to --out, else runs/predict")
    g.add_argument("--exist-ok", action="store_true", help="let --out, --save-video and the Grad-CAM PNGs replace files that already "
                   "exist (without it, an existing file is refused before any work)")
    g.add_argument("--quiet", action="store_true", help="do not print the table")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    g.add_argument("-v", "--verbose", action="store_true", help="more log output")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.server:
        args.sources, args.model = [args.model] + list(args.sources), None
    elif args.server_model:
        raise InputError("--model names a served model: it needs --server URL (a local model is the first argument)")
    elif not args.sources:
        raise InputError("no SOURCE: give image files, folders or videos after MODEL (e.g. pawlens predict best.int8.onnx photos/)")
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    for flag, v, lo in (("--threads", args.threads, 1), ("--batch-size", args.batch_size, 1), ("--every-n", args.every_n, 1),
                        ("--workers", args.workers, 0)):
        if v is not None and v < lo:
            raise InputError(f"{flag} {v}: must be >= {lo}" + (" (leave it unset for the backend's default)" if flag == "--threads" else ""))
    if args.out:
        ext = os.path.splitext(args.out)[1].lower()
        if ext not in (".csv", ".json"):
            raise InputError(f"--out {args.out}: use a .csv or .json file name")
        check_utf8_path(args.out, "--out")
        if os.path.isdir(args.out):
            raise OutputError(f"{args.out}: is a folder; --out names the results file (e.g. {os.path.join(args.out, 'results.csv')})")
        if os.path.exists(args.out) and not args.exist_ok:
            raise OutputError(f"{args.out} already exists; pass --exist-ok to replace it, or choose another --out")
        ensure_writable_dir(os.path.dirname(os.path.abspath(args.out)))  # before the work, not after it
    cam_dir = args.cam_dir
    if args.cam and cam_dir is None:
        cam_dir = (os.path.join(os.path.dirname(os.path.abspath(args.out)), "cam") if args.out
                   else next_run_dir(os.path.join("runs", "predict"), "cam", args.exist_ok))  # the default is numbered, never reused
    if args.cam and not args.exist_ok and os.path.isdir(cam_dir):
        old_pngs = [n for n in os.listdir(cam_dir) if n.endswith(".cam.png")]
        if old_pngs:
            raise OutputError(f"{cam_dir} already holds {len(old_pngs)} Grad-CAM PNG(s) (e.g. {old_pngs[0]}); pass --exist-ok to replace "
                              "them, or choose another --cam-dir")
    video_dir = args.save_video
    if video_dir == "":
        video_dir = os.path.dirname(os.path.abspath(args.out)) if args.out else os.path.join("runs", "predict")
    t0 = time.perf_counter()
    results, info = predict_sources(
        args.model, args.sources, backend=args.backend, device=args.device, precision=args.precision, threads=args.threads,
        compile=args.compile, batch_size=args.batch_size, every_n=args.every_n, cam=args.cam, reference=args.reference, cam_dir=cam_dir,
        alpha=args.alpha, class_names=classes, save_video=video_dir, exist_ok=args.exist_ok, workers=args.workers,
        server=args.server, server_model=args.server_model,
    )
    wall = time.perf_counter() - t0
    ok = [r for r in results if r.status == "ok"]
    names = list(ok[0].probs) if ok else (classes or [])
    videos = format_videos(video_summaries(results, names), names)
    if not args.quiet:
        print(format_table(results, names))
        if videos:
            print("\n" + videos)
    desc = f"{info.get('backend')} {info.get('precision', '')} on {info.get('device', '?')}"
    if info.get("providers"):
        desc += f" (providers: {', '.join(info['providers'])}{'; CUDA requested, fell back to CPU' if info.get('fallback') else ''})"
    skipped = len(results) - len(ok)
    per_frame = (f"{float(np.mean([r.preprocess_ms_batch_avg + r.infer_ms_batch_avg for r in ok])):.1f} ms/frame (batch time / "
                 f"frames, --batch-size {args.batch_size})" if ok else "no frame")
    print(f"{len(ok)} frame(s) classified, {skipped} source(s) skipped; {desc}; {per_frame}; {format_throughput(info['throughput'])}; "
          f"{wall:.1f} s total", file=sys.stderr)
    if args.out:
        write_results(args.out, results, info, names, args.model or f"{args.server} model {info.get('model')}")
        print(f"results: {args.out}", file=sys.stderr)
    if args.cam and ok:
        print(f"Grad-CAM overlays: {cam_dir}", file=sys.stderr)
    if not ok:
        raise DataError("none of the sources could be read: " + "; ".join(f"{r.source}: {r.error}" for r in results[:3]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pawlens-predict``."""
    return run_cli(_main, argv, prog="pawlens-predict")


if __name__ == "__main__":
    sys.exit(main())
