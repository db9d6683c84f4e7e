"""What pawlens-predict draws and writes beside its results: Grad-CAM PNGs and annotated video copies.

    outputs = Outputs(cam_dir="runs/predict/cam", videos=planned_videos(sources, "runs/predict"))
    outputs.frame(item, result, cfg, times)   # heat map here; drawing and encoding on the writer thread
    outputs.close()                           # all written, or the first write error raised

Every picture carries the label, its probability and the crop the model saw (:func:`annotate`).  An annotated video
gets every frame of its clip at the clip's own rate, each with the latest label (the frames between the classified
ones carry the one before them); it is written as H.264 through PyAV when that is installed, else as MPEG-4 Part 2
through OpenCV (whose bundled FFmpeg has no H.264 encoder), and the log line names the codec used.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from pawlens.errors import OutputError, one_line
from pawlens.fs import atomic_write_bytes
from pawlens.models.preprocess import resized_shape

from .media import Item, expand_sources, is_stream, is_video, redact
from .pipeline import BackgroundWriter, StageTimes
from .results import Result

LOG = logging.getLogger("pawlens")


def _cam_name(item: Item, used: set[str]) -> str:
    stem = os.path.splitext(os.path.basename(item.source))[0] or "image"
    base = stem if item.frame is None else f"{stem}_f{item.frame:06d}"
    name, k = f"{base}.cam.png", 1
    while name in used:
        k += 1
        name = f"{base}_{k}.cam.png"
    used.add(name)
    return name


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


def _caption(r: Result, with_cam: bool, *, shown: int | None = None) -> str:
    """``cat 0.93  frame 10``; for a frame ``shown`` that carries the label of an earlier one: ``... frame 12 (label of 10)``."""
    t = f"{r.label} {r.confidence:.2f}"
    if shown is not None and shown != r.frame:
        t += f"  frame {shown} (label of {r.frame})"
    elif r.frame is not None:
        t += f"  frame {r.frame}"
    return t + ("  (Grad-CAM)" if with_cam else "")


def _write_png(path: str, rgb: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"{path}: could not encode the PNG")
    atomic_write_bytes(path, buf.tobytes())


def video_out_path(source: str, folder: str) -> str:
    """Where ``--save-video`` writes the annotated copy of ``source``: ``FOLDER/<stem>.pred.mp4``; a stream's stem is its
    URL without the password, e.g. ``udp_127.0.0.1_5000`` (:func:`stream_stem`)."""
    stem = stream_stem(source) if is_stream(source) else os.path.splitext(os.path.basename(source))[0]
    return os.path.join(folder, stem + ".pred.mp4")


def stream_stem(url: str) -> str:
    """A file name for a stream: scheme, host, port and path of its URL, with no user name or password."""
    import re

    scheme, _, rest = redact(url).partition("://")
    rest = rest.rsplit("@", 1)[-1]
    return re.sub(r"[^A-Za-z0-9.-]+", "_", f"{scheme}_{rest}").strip("_")[:80] or "stream"


def planned_videos(sources: Sequence[str], folder: str, *, exist_ok: bool = False) -> dict[str, str]:
    """``{video: annotated copy}`` for ``--save-video``; OutputError naming a file that exists (unless ``exist_ok``) or a clash."""
    out: dict[str, str] = {}
    for path, err in expand_sources(sources):
        if err or not (is_video(path) or is_stream(path)):
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
    """Writes one clip's annotated frames to ``path`` via a temporary file, renamed into place by :meth:`close`.

    H.264 (yuv420p, which needs even sides: an odd frame gets one edge pixel repeated) through PyAV's libx264 when
    PyAV is installed, else MPEG-4 Part 2 through OpenCV.  ``codec`` says which; ``frames`` counts what was written.
    ``timed`` (a live stream, whose frames come when they come): each frame is written at the time it was received
    (``write(rgb, t=seconds)``, a variable frame rate), so the copy plays in real time; mp4v cannot, and uses ``fps``.
    """

    def __init__(self, path: str, fps: float, size: tuple[int, int], *, timed: bool = False):
        self.path, self.size, self.fps, self.frames, self.timed = path, size, float(fps), 0, timed
        self._last_pts = -1
        self.tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp-{os.getpid()}.mp4")
        self._av = self._cv = self._container = None
        self.codec = ""
        try:
            self._open_h264()
        except Exception as e:  # noqa: BLE001  (no PyAV, or a PyAV without libx264: OpenCV's encoder instead)
            self._close_av()
            self._open_mp4v(f"{type(e).__name__}: {one_line(e, 120)}")

    def _open_h264(self) -> None:
        import av

        w, h = self.size
        self._container = av.open(self.tmp, "w")
        self._av = self._container.add_stream("libx264", rate=Fraction(max(1.0, self.fps)).limit_denominator(1001))
        self._av.width, self._av.height, self._av.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
        self._av.options = {"crf": "23", "preset": "veryfast"}
        if self.timed:
            self._av.codec_context.time_base = Fraction(1, 1000)  # pts in ms of the stream's own clock
        self.codec = "H.264 (libx264 via PyAV)" + (", variable frame rate (stream time)" if self.timed else "")

    def _open_mp4v(self, why: str) -> None:
        import cv2

        self._cv = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), max(1.0, self.fps), self.size)
        if not self._cv.isOpened():
            self.abort()
            raise OutputError(f"{self.path}: cannot write a video here (no H.264 encoder: {why}; and OpenCV cannot write mp4v)")
        self.codec = "MPEG-4 Part 2 (mp4v via OpenCV; install PyAV for H.264)"
        LOG.warning(f"--save-video: H.264 is not available ({why}); writing MPEG-4 Part 2 instead")

    def write(self, rgb: np.ndarray, t: float | None = None) -> None:
        import cv2

        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        if self._av is not None:
            import av

            w, h = self.size
            if w % 2 or h % 2:
                rgb = cv2.copyMakeBorder(rgb, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if self.timed and t is not None:
                self._last_pts = frame.pts = max(self._last_pts + 1, int(round(t * 1000)))  # strictly increasing
                frame.time_base = Fraction(1, 1000)
            for packet in self._av.encode(frame):
                self._container.mux(packet)
        else:
            self._cv.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> str:
        if self._av is not None:
            for packet in self._av.encode():  # flush the encoder's delayed frames
                self._container.mux(packet)
        self._close_av()
        if self._cv is not None:
            self._cv.release()
        os.replace(self.tmp, self.path)
        return self.path

    def _close_av(self) -> None:
        container, self._av, self._container = self._container, None, None
        if container is not None:
            container.close()

    def abort(self) -> None:
        try:
            self._close_av()
        except Exception:  # noqa: BLE001  (a half-written file is removed below either way)
            pass
        if self._cv is not None:
            self._cv.release()
        try:
            os.remove(self.tmp)
        except OSError:
            pass


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
    t: float | None = None  # a stream frame's time since the stream opened (its annotated copy is timed by it)


@dataclass
class Outputs:
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
    written: list[dict] = field(default_factory=list)  # per annotated video: path, frames, fps, codec
    writer: BackgroundWriter | None = None
    latest: dict[str, tuple[Result, np.ndarray | None]] = field(default_factory=dict)  # per video: its last result and heat
    _layer: tuple | None = None  # the last heat map drawn, its colour layer and (videos) its blend weights

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
            pic.t = it.time_s if is_stream(it.source) else None
            self.latest[it.source] = (r, pic.heat)
        self.writer.submit(self._draw, pic)

    def carry(self, it: Item, cfg) -> None:
        """A frame between the classified ones (``it.classify`` False) into its annotated video, with the latest label
        (and heat map) of that video, captioned with the frame the label is from."""
        if it.source not in self.videos:
            return
        r, heat = self.latest.get(it.source, (None, None))
        caption = "(not classified yet)" if r is None else _caption(r, heat is not None, shown=it.frame)
        pic = _Picture(it.image, heat, crop_in_frame(it.image.shape[0], it.image.shape[1], cfg), video=it.source,
                       video_caption=caption, fps=it.fps)
        self.writer.submit(self._draw, pic)

    def _draw(self, pic: _Picture) -> None:
        from pawlens.models.gradcam import blend, blend_fast, blend_weights, overlay_layer

        img = pic.rgb
        if pic.heat is not None:  # the frames that carry a heat map share its colour layer: made once, blended on each
            layer = self._layer  # one read: PNG writers may run on two threads
            if layer is None or layer[0] is not pic.heat or layer[1].shape[:2] != img.shape[:2]:
                rgba = overlay_layer(pic.heat, img.shape[:2])
                layer = self._layer = (pic.heat, rgba, blend_weights(rgba, self.alpha) if pic.video else None)
            # a PNG is exactly overlay()'s picture; a video frame takes OpenCV's weighted sum (within one level, ~15x faster)
            img = blend(img, layer[1], self.alpha) if pic.png or layer[2] is None else blend_fast(img, layer[2])
        if pic.png:
            _write_png(pic.png, annotate(img, pic.png_caption, pic.box, min_side=256))
        if pic.video:
            self._video(pic.video, pic.fps, img.shape, timed=pic.t is not None).write(annotate(img, pic.video_caption, pic.box), t=pic.t)

    def _video(self, source: str, fps: float, shape: tuple[int, ...], *, timed: bool = False) -> VideoSink:
        if self.sink is None or self.sink_source != source:
            self.finish()
            self.sink = VideoSink(self.videos[source], fps if 0 < fps < 1000 else DEFAULT_FPS, (shape[1], shape[0]), timed=timed)
            self.sink_source = source
        return self.sink

    def finish(self) -> None:
        if self.sink is not None:
            sink, self.sink = self.sink, None
            sink.close()
            self.written.append({"path": sink.path, "frames": sink.frames, "fps": round(sink.fps, 3), "codec": sink.codec})
            LOG.info(f"annotated video: {sink.path} ({sink.frames} frames at {sink.fps:g} fps, {sink.codec})")

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


#: the annotated copy's frame rate when its clip does not declare one
DEFAULT_FPS = 25.0
#: frames the writer may have queued (each holds its frame and heat map) before the inference waits for it
WRITER_QUEUE = 8
#: threads that draw and encode Grad-CAM PNGs when no annotated video is written (one thread writes videos, in order)
PNG_WRITERS = 2
