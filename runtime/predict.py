"""pawlens-predict: classify images, folders and video files with any exported model, optionally with Grad-CAM.

    pawlens-predict runs/export/best/best.int8.onnx photos/ clip.mp4 --out runs/predict/results.csv
    pawlens-predict best.pt cat.jpg --cam                               # overlays next to the results
    pawlens-predict best.onnx photos/ --cam --reference best.pt --backend openvino
    pawlens-predict runs/export/best/best.onnx clips/ --cam --save-video --out runs/predict/clips.csv
    pawlens-predict best.int8.onnx photos/ --workers 0                # decode in the main thread, one frame after another
    pawlens-predict best.int8.onnx rtsp://cam.local/live --duration 60 --out runs/predict/cam.csv   # a network camera

MODEL is a ``.pt`` checkpoint, an ``.onnx`` file or a TensorRT ``.engine`` (with its ``.engine.json``
sidecar); the class names and preprocessing come from the model file itself.  SOURCE is any mix of
image files, folders (searched recursively), video files (every ``--every-n``-th frame) and network streams
(``rtsp://``, ``http(s)://`` MJPEG or HLS, ``udp://``: read live, the newest frame each time the model is ready, with a
connection timeout and reconnects; :mod:`runtime.media`).
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
names and under ``runs/train/*/``.  ``--save-video`` writes an annotated copy of each video (``<name>.pred.mp4``:
every frame at the clip's rate, each with the latest label; with ``--cam`` the overlay too; H.264 through PyAV,
:mod:`runtime.annotation`) and never replaces an existing file unless ``--exist-ok`` is given.

The work is split by concern: :mod:`runtime.media` (sources and frames), :mod:`runtime.reference` (the Grad-CAM
checkpoint), :mod:`runtime.annotation` (pictures and videos written), :mod:`runtime.results` (rows, tables, files);
this module runs the model over them and is the command line.

Model files from elsewhere are untrusted: ONNX graphs and TensorRT engines are parsed by native code,
and NVIDIA warns never to deserialize an engine from an untrusted source.  Use files you exported.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Iterator, Sequence

import numpy as np

from pawlens.console import HelpFormatter, run_cli
from pawlens.errors import DataError, ImageError, InputError, OutputError
from pawlens.fs import check_utf8_path, ensure_writable_dir, next_run_dir, remove_stale_temps
from pawlens.models.preprocess import resized_shape

from .annotation import PNG_WRITERS, WRITER_QUEUE, Outputs, planned_videos
from .factory import BACKENDS
from .media import Item, count_frames, default_workers, expand_sources, frames_ahead, prepared_frames, redact
from .pipeline import BackgroundWriter, StageTimes
from .reference import resolve_reference
from .results import Result, format_table, format_throughput, format_videos, throughput, video_summaries, write_results

LOG = logging.getLogger("pawlens")

def _batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    """Runs of items holding ``size`` frames to classify (with the skipped sources and carried frames among them)."""
    buf: list[Item] = []
    n = 0
    for it in items:
        buf.append(it)
        n += it.error == "" and it.classify
        if n >= size:
            yield buf
            buf, n = [], 0
    if buf:
        yield buf


def _infer(pred, good: list[Item], times: StageTimes) -> list:
    """Predictions for the prepared frames ``good``, as ``Predictor.predict_batch`` makes them for their raw frames."""
    from pawlens.errors import ArtifactError
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


def _classify_chunk(pred, chunk: list[Item], results: list[Result], outputs: Outputs, times: StageTimes) -> int:
    """Classify the readable frames of one batch, append their results in order; returns how many were classified."""
    for it in chunk:  # a frame this model's resize would blow up is skipped here, not fatal to the batch
        times.add("decode", it.decode_s)
        times.add("preprocess", it.preprocess_s)
        if not it.error and it.classify:
            try:
                resized_shape(it.image.shape[0], it.image.shape[1], pred.preprocess)
            except ImageError as e:
                it.error, it.image, it.x = str(e).split("] ", 1)[-1], None, None
    good = [it for it in chunk if not it.error and it.classify]
    for it in chunk:
        if it.error:
            LOG.warning("skipped %s: %s", it.source, it.error)
    preds = _infer(pred, good, times) if good else []
    by_id = {id(it): p for it, p in zip(good, preds)}
    for it in chunk:
        if it.error:
            results.append(Result(it.source, it.frame, it.time_s, "skipped", error=it.error))
            continue
        if not it.classify:  # a frame between the classified ones: only its video's annotated copy gets it
            outputs.carry(it, pred.preprocess)
            it.image = None
            continue
        p = by_id[id(it)]
        r = Result(it.source, it.frame, it.time_s, "ok", label=p.label, index=p.index, confidence=p.confidence,
                   probs={c: float(v) for c, v in zip(p.class_names, p.probs)}, preprocess_ms_batch_avg=p.preprocess_ms,
                   infer_ms_batch_avg=p.infer_ms, batch_frames=len(good), size=f"{it.image.shape[1]}x{it.image.shape[0]}")
        outputs.frame(it, r, pred.preprocess, times)
        results.append(r)
        it.image = it.x = None
    return len(good)


def predict_sources(model: str, sources: Sequence[str], *, backend: str = "auto", device: str = "auto", precision: str | None = None,
                    threads: int | None = None, compile: bool = False, batch_size: int = 8, every_n: int = 1, cam: bool = False,
                    reference: str | None = None, cam_dir: str | None = None, alpha: float = 0.6,
                    class_names: Sequence[str] | None = None, progress: bool = True, save_video: str | None = None,
                    exist_ok: bool = False, workers: int | None = None, server: str | None = None,
                    server_model: str | None = None, duration_s: float | None = None,
                    stream_options: dict | None = None) -> tuple[list[Result], dict]:
    """Classify every readable frame of ``sources``; the library behind ``pawlens-predict``.

    ``workers`` threads (default :func:`default_workers`) decode and preprocess the frames ahead of inference, a bounded
    number at a time (:func:`prepared_frames`); 0 does it all in the calling thread.  The results are the same either
    way, in the same order.  With ``cam``, Grad-CAM PNGs (label, probability and the model's crop drawn on them) go to
    ``cam_dir``; the reference checkpoint is ``reference``, MODEL if it is a ``.pt``, or found by the sha256 in
    MODEL's metadata (:func:`find_reference`).  With ``save_video`` (a folder), each video gets an annotated copy of
    every frame there (:func:`video_out_path`, at the clip's own rate, each frame with the latest label); an existing
    file is refused unless ``exist_ok``.  A network stream (:func:`media.is_stream`) is read live: the model takes the
    newest frame each time it is ready, for ``duration_s`` seconds or until the stream is lost (``stream_options``:
    :class:`media.LiveStream`'s keywords).  PNGs and videos are written by one writer thread, all before this returns.

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
    outputs = Outputs(alpha=alpha, cam_dir=cam_dir)
    if duration_s is not None and duration_s <= 0:
        raise InputError(f"--duration must be > 0 seconds, got {duration_s:g}")
    if save_video is not None:
        outputs.videos = planned_videos(sources, save_video, exist_ok=exist_ok)
        if outputs.videos:
            ensure_writable_dir(save_video, "--save-video folder")
            remove_stale_temps(save_video, prefix=".")  # a killed run's half-written .<name>.pred.mp4.tmp-<PID>.mp4
        else:
            LOG.warning("--save-video: no video or stream among the sources; nothing to annotate")
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
        streams: dict = {}
        results, times, wall, cam_info = _run(pred, sources, outputs, batch_size=batch_size, every_n=every_n, workers=workers,
                                              progress=progress, duration_s=duration_s,
                                              stream_options={**(stream_options or {}), "log": streams})
        info = pred.describe()
    info["throughput"] = throughput(results, times, wall, workers, outputs.writer.busy_s if outputs.writer else 0.0)
    if cam_info:
        info["cam"] = cam_info
    if outputs.written:
        info["videos_written"] = outputs.written
    if streams:
        info["streams"] = streams
    return results, info


def _run(pred, sources, outputs: Outputs, *, batch_size: int, every_n: int, workers: int, progress: bool, **media_kw):
    """The loop of :func:`predict_sources` with an active predictor: ``(results, stage times, wall seconds, cam info)``."""
    from pawlens.progress import progress as make_progress

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
        with prepared_frames(sources, pred.preprocess, every_n=every_n, workers=workers, keep_all=frozenset(outputs.videos), **media_kw,
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
        from pawlens.fs import sha256_file

        if sha256_file(ref) != sha:
            LOG.warning(f"--reference {ref} is not the checkpoint {os.path.basename(model)} was exported from (sha256 differs): "
                        "the overlays show the reference's reasons, which may differ from the model's")
    return explainer, ref


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
    p.add_argument("sources", metavar="SOURCE", nargs="*", help="image files, folders (recursive), video files and/or network "
                   "streams (rtsp://, http(s):// MJPEG or HLS, udp://, ...)")
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
    g = p.add_argument_group("network streams")
    g.add_argument("--duration", type=float, default=None, metavar="S", help="read each stream for S seconds (default: until it "
                   "ends or is lost; Ctrl-C stops the run)")
    g.add_argument("--stream-timeout", type=float, default=10.0, metavar="S", help="seconds to wait for a stream to connect, and "
                   "without a frame before it counts as dropped")
    g.add_argument("--give-up", type=float, default=60.0, metavar="S", help="a dropped stream is reconnected with back-off "
                   "(0.5, 1, 2, 4, 8 s); after S seconds without a frame it is lost and the run goes on with the next source")
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
                   "DIR/<name>.pred.mp4: every frame at the clip's rate, each with the latest label (a stream: the frames classified, "
                   "each at the time it arrived); H.264 when PyAV is installed, "
                   "else MPEG-4 Part 2 (the log names the codec); if DIR is left out: next to --out, else runs/predict")
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
                        ("--workers", args.workers, 0), ("--stream-timeout", args.stream_timeout, 0.1), ("--give-up", args.give_up, 0)):
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
        server=args.server, server_model=args.server_model, duration_s=args.duration,
        stream_options={"open_timeout_s": args.stream_timeout, "read_timeout_s": args.stream_timeout, "give_up_s": args.give_up},
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
    for url, st in info.get("streams", {}).items():
        print(f"stream {redact(url)}: {st['received']} frames received, {st['dropped']} dropped as stale, {st['reconnects']} "
              f"reconnect(s){' after ' + ', '.join(f'{s:g} s' for s in st['outages_s']) + ' down' if st['outages_s'] else ''}",
              file=sys.stderr)
    for v in info.get("videos_written", []):
        print(f"annotated video: {v['path']} ({v['frames']} frames at {v['fps']:g} fps, {v['codec']})", file=sys.stderr)
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
