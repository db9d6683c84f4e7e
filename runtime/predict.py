"""pawlens-predict: classify images, folders and video files with any exported model, optionally with Grad-CAM.

    pawlens-predict runs/export/best/best.int8.onnx photos/ clip.mp4 --out runs/predict/results.csv
    pawlens-predict best.pt cat.jpg --cam                               # overlays next to the results
    pawlens-predict best.onnx photos/ --cam --reference best.pt --backend openvino

MODEL is a ``.pt`` checkpoint, an ``.onnx`` file or a TensorRT ``.engine`` (with its ``.engine.json``
sidecar); the class names and preprocessing come from the model file itself.  SOURCE is any mix of
image files, folders (searched recursively) and video files (every ``--every-n``-th frame).
Unreadable files, empty folders and videos that cannot be opened are reported and skipped; the
command fails only when nothing at all could be read.

Grad-CAM (``--cam``) runs on the PyTorch checkpoint (``--reference``, or MODEL itself when it is a
``.pt``) and explains the class MODEL predicted; overlays are written as PNGs into ``--cam-dir``.

Model files from elsewhere are untrusted: ONNX graphs and TensorRT engines are parsed by native code,
and NVIDIA warns never to deserialize an engine from an untrusted source.  Use files you exported.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
from pawlens.models.console import HelpFormatter, atomic_write_bytes, atomic_write_text, check_utf8_path, ensure_writable_dir, run_cli
from pawlens.models.errors import DataError, ImageError, InputError, OutputError
from pawlens.models.preprocess import IMAGE_EXTENSIONS, list_images, load_image, resized_shape

from .factory import BACKENDS

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

    @property
    def key(self) -> str:
        return self.source if self.frame is None else f"{self.source}#frame={self.frame}"


@dataclass
class Result:
    source: str
    frame: int | None
    time_s: float | None
    status: str  # ok | skipped
    label: str = ""
    index: int = -1
    confidence: float = float("nan")
    probs: dict[str, float] = field(default_factory=dict)
    preprocess_ms: float = float("nan")
    infer_ms: float = float("nan")
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


def iter_sources(sources: Sequence[str], *, every_n: int = 1) -> Iterator[Item]:
    """Expand images, folders and videos into frames; unreadable inputs come out as items with ``error``."""
    if every_n < 1:
        raise InputError(f"--every-n must be >= 1, got {every_n}")
    for src in sources:
        if not os.path.exists(src):
            yield Item(src, error="not found")
        elif os.path.isdir(src):
            files = list_images(src)
            if not files:
                yield Item(src, error=f"empty folder: no images ({', '.join(IMAGE_EXTENSIONS)}) inside")
            for f in files:
                yield _image_item(f)
        elif src.lower().endswith(VIDEO_EXTENSIONS):
            yield from _video_items(src, every_n)
        else:
            yield _image_item(src)


def _image_item(path: str) -> Item:
    try:
        return Item(path, image=load_image(path))
    except ImageError as e:
        return Item(path, error=str(e).split("] ", 1)[-1].replace(f"{path}: ", ""))


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
                yield Item(path, frame=i, time_s=(i / fps) if fps > 0 else None, image=rgb)
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


def predict_sources(model: str, sources: Sequence[str], *, backend: str = "auto", device: str = "auto", precision: str | None = None,
                    threads: int | None = None, compile: bool = False, batch_size: int = 8, every_n: int = 1, cam: bool = False,
                    reference: str | None = None, cam_dir: str | None = None, alpha: float = 0.4,
                    class_names: Sequence[str] | None = None, progress: bool = True) -> tuple[list[Result], dict]:
    """Classify every readable frame of ``sources``; the library behind ``pawlens-predict``.

    Returns:
        ``(results, info)``: one :class:`Result` per frame or skipped source, and the runner's ``describe()``.
    """
    from tqdm import tqdm

    from .factory import file_kind, make_runner
    from .predictor import Predictor

    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    explainer = None
    if cam:
        ref = reference or (model if file_kind(model) == ".pt" else None)
        if ref is None:
            raise InputError("--cam needs --reference CKPT: the .pt checkpoint the model was exported from (Grad-CAM runs on PyTorch)")
        from .cam import CamExplainer

        explainer = CamExplainer(ref, device="cuda" if str(device).startswith("cuda") else "cpu")
        if cam_dir is None:
            raise InputError("--cam needs an output folder (--cam-dir or --out)")
        ensure_writable_dir(cam_dir, "Grad-CAM folder")
    runner = make_runner(model, backend=backend, device=device, precision=precision, threads=threads, compile=compile,
                         class_names=class_names)
    pred = Predictor(runner)
    if explainer is not None and list(explainer.class_names) != list(pred.class_names):
        raise InputError(
            f"--reference {reference} has classes {explainer.class_names}, the model {pred.class_names}; pass the checkpoint it was exported from"
        )
    results: list[Result] = []
    used: set[str] = set()
    bar = tqdm(desc="predict", unit="img", disable=None if progress else True, leave=False)
    with pred:
        if explainer is not None:
            explainer.activate()
        try:
            for chunk in _batches(iter_sources(sources, every_n=every_n), batch_size):
                for it in chunk:  # a frame this model's resize would blow up is skipped here, not fatal to the batch
                    if not it.error:
                        try:
                            resized_shape(it.image.shape[0], it.image.shape[1], pred.preprocess)
                        except ImageError as e:
                            it.error, it.image = str(e).split("] ", 1)[-1], None
                good = [it for it in chunk if not it.error]
                for it in chunk:
                    if it.error:
                        LOG.warning("skipped %s: %s", it.source, it.error)
                preds = pred.predict_batch([it.image for it in good]) if good else []
                by_id = {id(it): p for it, p in zip(good, preds)}
                for it in chunk:
                    if it.error:
                        results.append(Result(it.source, it.frame, it.time_s, "skipped", error=it.error))
                        continue
                    p = by_id[id(it)]
                    r = Result(it.source, it.frame, it.time_s, "ok", label=p.label, index=p.index, confidence=p.confidence,
                               probs={c: float(v) for c, v in zip(p.class_names, p.probs)}, preprocess_ms=p.preprocess_ms,
                               infer_ms=p.infer_ms, size=f"{it.image.shape[1]}x{it.image.shape[0]}")
                    if explainer is not None:
                        from pawlens.models.gradcam import overlay

                        cr = explainer.explain(it.image, class_index=p.index)
                        img = overlay(it.image, cr.heatmap, alpha=alpha)
                        path = os.path.join(cam_dir, _cam_name(it, used))
                        _write_png(path, img)
                        r.cam_path, r.cam_ms = path, cr.ms
                    results.append(r)
                    it.image = None
                bar.update(len(good))
        finally:
            bar.close()
            if explainer is not None:
                explainer.deactivate()
        info = pred.describe()
    return results, info


def _write_png(path: str, rgb: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"{path}: could not encode the PNG")
    atomic_write_bytes(path, buf.tobytes())


# ----------------------------------------------------------------------------- output


def format_table(results: Sequence[Result], class_names: Sequence[str], *, width: int = 48) -> str:
    """A readable fixed-width table of the results; skipped sources get one line with the reason."""
    cols = ["source", "label", "conf"] + [f"p({c})" for c in class_names] + ["ms"]

    def short(r: Result) -> str:
        src = r.source if r.frame is None else f"{r.source}#{r.frame}"
        src = src.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")  # printable whatever the name's bytes
        return src if len(src) <= width else "..." + src[-(width - 3):]

    rows = [[short(r), r.label, f"{r.confidence:.3f}", *[f"{r.probs.get(c, float('nan')):.3f}" for c in class_names],
             f"{r.preprocess_ms + r.infer_ms:.1f}"] for r in results if r.status == "ok"]
    widths = [len(h) for h in cols]
    for row in rows:
        widths = [max(w, len(x)) for w, x in zip(widths, row)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(cols, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    it = iter(rows)
    for r in results:
        if r.status == "ok":
            lines.append("  ".join(x.ljust(w) for x, w in zip(next(it), widths)).rstrip())
        else:
            lines.append(f"{short(r).ljust(widths[0])}  SKIPPED: {r.error}")
    return "\n".join(lines)


def write_results(path: str, results: Sequence[Result], info: dict, class_names: Sequence[str], model: str) -> str:
    """Write ``results.csv`` or ``results.json`` (by suffix) atomically."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".json"):
        raise InputError(f"--out {path}: use a .csv or .json file name")
    ensure_writable_dir(os.path.dirname(os.path.abspath(path)))
    if ext == ".json":
        doc = {"model": model, "runner": info, "class_names": list(class_names),
               "n_ok": sum(r.status == "ok" for r in results), "n_skipped": sum(r.status != "ok" for r in results),
               "results": [r.to_dict() for r in results]}
        atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")
        return path
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["source", "frame", "time_s", "status", "label", "confidence", *[f"prob_{c}" for c in class_names],
                "preprocess_ms", "infer_ms", "cam_path", "cam_ms", "error"])

    def f(v, nd=6):
        return "" if v is None or (isinstance(v, float) and v != v) else (f"{v:.{nd}f}" if isinstance(v, float) else v)

    for r in results:
        w.writerow([r.source, f(r.frame), f(r.time_s, 3), r.status, r.label, f(r.confidence),
                    *[f(r.probs.get(c)) for c in class_names], f(r.preprocess_ms, 3), f(r.infer_ms, 3), r.cam_path,
                    f(r.cam_ms, 2), r.error])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8", "surrogateescape"))  # a source named in non-UTF-8 bytes: kept as is
    return path


# ----------------------------------------------------------------------------- CLI


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pawlens-predict", add_help=add_help, formatter_class=HelpFormatter,
        description="Classify images, folders and videos with a .pt, .onnx or .engine model; optional Grad-CAM overlays. "
        "Model files are untrusted input: load only files you exported (TensorRT engines especially).",
        epilog="example: pawlens-predict runs/export/best/best.int8.onnx photos/ clip.mp4 --out runs/predict/results.csv "
        "--cam --reference runs/train/best/best.pt",
    )
    p.add_argument("model", metavar="MODEL", help="model file: .pt checkpoint, .onnx, or .engine (+ .engine.json sidecar)")
    p.add_argument("sources", metavar="SOURCE", nargs="+", help="image files, folders (recursive) and/or video files")
    g = p.add_argument_group("runtime")
    g.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend (auto: picked from the file)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--precision", default=None, help="override: fp32/bf16/fp16 for a .pt, bf16 for an ONNX on openvino; if unset: the file's own")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for the backend; if unset: the backend's own")
    g.add_argument("--compile", action="store_true", help="a .pt only: run it through torch.compile (each batch size compiles "
                   "once, 10-30 s; pays off on large folders; needs a C++ compiler on the CPU)")
    g.add_argument("--batch-size", type=int, default=8, help="frames per inference call")
    g.add_argument("--every-n", type=int, default=5, help="use every N-th frame of a video")
    g.add_argument("--classes", default=None, help="NAME,NAME,... for an ONNX file without pawlens metadata")
    g = p.add_argument_group("Grad-CAM")
    g.add_argument("--cam", action="store_true", help="write Grad-CAM overlay PNGs (PyTorch reference)")
    g.add_argument("--reference", default=None, help="the .pt checkpoint for Grad-CAM; if unset: MODEL if it is a .pt")
    g.add_argument("--cam-dir", default=None, help="folder for overlays; if unset: cam/ next to --out, else runs/predict/cam")
    g.add_argument("--alpha", type=float, default=0.4, help="overlay opacity of the heat map, 0..1")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="write results.csv or results.json (by suffix)")
    g.add_argument("--quiet", action="store_true", help="do not print the table")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    g.add_argument("-v", "--verbose", action="store_true", help="more log output")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = get_args_parser().parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    for flag, v, lo in (("--threads", args.threads, 1), ("--batch-size", args.batch_size, 1), ("--every-n", args.every_n, 1)):
        if v is not None and v < lo:
            raise InputError(f"{flag} {v}: must be >= {lo}" + (" (leave it unset for the backend's default)" if flag == "--threads" else ""))
    if args.out:
        ext = os.path.splitext(args.out)[1].lower()
        if ext not in (".csv", ".json"):
            raise InputError(f"--out {args.out}: use a .csv or .json file name")
        check_utf8_path(args.out, "--out")
        if os.path.isdir(args.out):
            raise OutputError(f"{args.out}: is a folder; --out names the results file (e.g. {os.path.join(args.out, 'results.csv')})")
        ensure_writable_dir(os.path.dirname(os.path.abspath(args.out)))  # before the work, not after it
    cam_dir = args.cam_dir
    if args.cam and cam_dir is None:
        cam_dir = os.path.join(os.path.dirname(os.path.abspath(args.out)), "cam") if args.out else os.path.join("runs", "predict", "cam")
    t0 = time.perf_counter()
    results, info = predict_sources(
        args.model, args.sources, backend=args.backend, device=args.device, precision=args.precision, threads=args.threads,
        compile=args.compile, batch_size=args.batch_size, every_n=args.every_n, cam=args.cam, reference=args.reference, cam_dir=cam_dir,
        alpha=args.alpha, class_names=classes,
    )
    wall = time.perf_counter() - t0
    ok = [r for r in results if r.status == "ok"]
    names = list(ok[0].probs) if ok else (classes or [])
    if not args.quiet:
        print(format_table(results, names))
    desc = f"{info.get('backend')} {info.get('precision', '')} on {info.get('device', '?')}"
    if info.get("providers"):
        desc += f" (providers: {', '.join(info['providers'])}{'; CUDA requested, fell back to CPU' if info.get('fallback') else ''})"
    skipped = len(results) - len(ok)
    per_frame = f"{float(np.mean([r.preprocess_ms + r.infer_ms for r in ok])):.1f} ms/frame" if ok else "no frame"
    print(f"{len(ok)} frame(s) classified, {skipped} source(s) skipped; {desc}; {per_frame}, {wall:.1f} s total", file=sys.stderr)
    if args.out:
        write_results(args.out, results, info, names, args.model)
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
