"""pawlens-predict's results: one row per frame or skipped source, per-video summaries, and how they are shown.

    print(format_table(results, class_names))
    write_results("runs/predict/results.csv", results, info, class_names, model)   # or .json
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pawlens.document import Table
from pawlens.errors import InputError
from pawlens.fs import atomic_write_bytes, atomic_write_text, ensure_writable_dir, printable

from .pipeline import StageTimes


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
    table = Table.of(cols, rows, align="l" * len(cols)).console(rule=True)
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
    cols = ["video", "frames", "majority", *[f"share({c})" for c in class_names], "mean conf"]
    return "\n".join(Table.of(cols, rows, align="l" * len(cols)).console(rule=True))


def write_results(path: str, results: Sequence[Result], info: dict, class_names: Sequence[str], model: str) -> str:
    """Write ``results.csv`` or ``results.json`` (by suffix) atomically, per-frame rows and one summary row per video.

    CSV: frame rows have ``status`` ok or skipped; a video's summary row has ``status`` video, ``frames``, ``label`` (the
    majority), ``confidence`` (the mean) and ``share_<class>`` (the share of its frames given each class).
    JSON: ``results`` (frames), ``videos`` (summaries), ``throughput`` (images/s and the busy seconds of each stage,
    :func:`throughput`), with Grad-CAM ``cam`` (its reference and whether the traced trunk ran), with ``--save-video``
    ``videos_written`` (path, frames, fps, codec) and with streams ``streams`` (received, dropped, reconnects, outages).
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".json"):
        raise InputError(f"--out {path}: use a .csv or .json file name")
    ensure_writable_dir(os.path.dirname(os.path.abspath(path)))
    videos = video_summaries(results, class_names)
    if ext == ".json":
        extra = ("cam", "videos_written", "streams")
        runner = {k: v for k, v in info.items() if k not in ("throughput", *extra)}
        doc = {"model": model, "runner": runner, "class_names": list(class_names), "throughput": info.get("throughput"),
               **{k: info[k] for k in extra if k in info},
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
