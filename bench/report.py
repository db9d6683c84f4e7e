"""The bench's outputs: bench.json, bench.csv, bench.md (rendered from :func:`document`), bench.png and pareto.png.

    doc = document(result)         # a pawlens.document.Document: the demo includes it in its own report
    files = write_outputs(result, out_dir)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from pawlens.document import Document
from pawlens.fs import atomic_write_bytes, atomic_write_text

from .results import BenchResult, BenchRow

CSV_COLUMNS = ("model", "label", "backend", "precision", "device", "batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "images_per_s",
               "speedup", "vs_eager", "gops", "of_gemm", "top1_agreement", "max_abs", "within_gate", "accuracy", "n", "status", "key", "artifact",
               "method", "cold_ms", "overhead_ms", "peer", "peer_ms", "peer_runs_ms", "vs_peer", "peer_gap")


def _fmt(v, nd: int = 1, suffix: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{nd}f}{suffix}"


def _pct(v: float, nd: int) -> str:
    return _fmt(v * 100 if math.isfinite(v) else float("nan"), nd, "%")


def _load(v) -> str:
    return "-" if not v else ", ".join(f"{x:.2f}" for x in v)


def _runnable(s: dict) -> str:
    counts = [c["runnable"] for c in s.get("load_checks", []) if c.get("runnable") is not None]
    if not counts:
        return ""
    return f"; other runnable threads {', '.join(f'{n:g}' for n in counts)} (before the run, then after each batch size)"


# ----------------------------------------------------------------------------- bench.md


def _peer_cell(r: BenchRow) -> str:
    if not r.peer:
        return "-"
    spread = r.peer_spread()
    return f"{r.peer_ms:.2f} ({r.peer}{', ' + spread if spread else ''}): {r.vs_peer:.2f}x{' GAP' if r.peer_gap else ''}"


def _sample_note(r: BenchRow) -> str:
    """How this row's agreement sample relates to the export's gate on the same file ("" without an export record)."""
    if not r.export_gate:
        return ""
    if r.export_sample:
        return f" on the export's own {r.agreement_n} photos"
    return f" on {r.agreement_n} other photos; the export: {r.export_gate}"


def main_table_row(r: BenchRow) -> list[str]:
    """One row of the main table (backend, precision, device, batch, latencies, cold call, images/s, speed-up, the runtime's
    own tool, the runner's per-call overhead, agreement, max abs)."""
    if r.status != "ok" and not math.isfinite(r.p50_ms):
        return [r.label, r.precision, r.device, str(r.batch), r.status] + [""] * (len(MAIN_HEADERS) - 5)
    gate = "" if r.within_gate is None else (" (in gate" if r.within_gate else " (outside gate") + _sample_note(r) + ")"
    return [r.label, r.precision, r.device, str(r.batch), _fmt(r.p50_ms), _fmt(r.p90_ms), _fmt(r.p99_ms), _fmt(r.cold_ms),
            _fmt(r.images_per_s), _fmt(r.speedup, 2, "x"), _peer_cell(r), _fmt(r.overhead_ms, 3), _pct(r.top1_agreement, 1),
            f"{'-' if not math.isfinite(r.max_abs) else f'{r.max_abs:.2e}'}{gate}"]


MAIN_HEADERS = ["backend", "precision", "device", "batch", "p50 ms", "p90 ms", "p99 ms", "cold ms", "images/s",
                "speed-up vs PyTorch fp32 eager", "its runtime's own tool, ms: p50 / that", "runner overhead ms", "top-1 agreement",
                "max abs diff"]


def _main_table(doc: Document, res: BenchResult) -> None:
    s = res.settings
    if s["embedded_default"]:
        doc.p("**Embedded default**: an untrained model, exported on the fly (latency does not depend on the weights).")
    if len(s.get("models_compared", [])) > 1:
        doc.p(f"Models in this run: {', '.join(s['models_compared'])}. Each row's speed-up and agreement are against the PyTorch fp32 "
              "eager row of its own model; labels in brackets name the model of rows that are not the main one.")
    rows = sorted(res.rows, key=lambda r: (r.batch, r.device, r.p50_ms if math.isfinite(r.p50_ms) else 1e18))
    doc.table(MAIN_HEADERS, [main_table_row(r) for r in rows])


def _pareto_section(doc: Document, res: BenchResult) -> None:
    front = pareto_rows(res)
    if not front:
        return
    doc.h2("Accuracy against latency (batch 1): which artifact to ship")
    doc.p(f"Top-1 accuracy on the {res.settings.get('agreement_data', 'labelled photos')} against p50 latency at batch 1, for every "
          "model x precision x backend of this run (`pareto.png`). On the frontier: no other row is both faster and at least as accurate.")
    rows = []
    for r, on in front:
        gate = "-" if r.within_gate is None else ("yes" if r.within_gate else "no")
        rows.append([r.model, r.label.split(" [")[0], r.precision, r.artifact, f"{r.accuracy:.2%}", f"{r.p50_ms:.2f}", gate,
                     "**yes**" if on else ""])
    doc.table(["model", "backend", "precision", "artifact", "accuracy", "p50 ms (b1)", "in its gate", "on the frontier"], rows)


def _extras_section(doc: Document, res: BenchResult) -> None:
    ex, items = res.extras, []
    if "overhead_ms" in ex:
        items.append(f"Runtime overhead per frame (preprocess {ex['overhead_frame']} + softmax): {ex['overhead_ms']:.2f} ms "
                     f"(preprocess {ex['preprocess_ms']:.2f}, softmax {ex['softmax_ms']:.3f})")
    if "cam_ms" in ex:
        eager = (f"; the eager path (hooks on the whole model) {ex['cam_eager_ms']:.1f} ms = {ex['cam_eager_vs_forward']:.2f}x"
                 if "cam_eager_ms" in ex else "")
        items.append(f"Grad-CAM ({ex['cam_layer']}, one {res.settings['input_size']} px frame, CPU, {ex.get('cam_mode', 'eager')}: the "
                     f"desktop app's and `pawlens-predict --cam`'s path): {ex['cam_ms']:.1f} ms vs one PyTorch fp32 forward "
                     f"{ex['forward_ms']:.1f} ms = {ex['cam_vs_forward']:.2f}x{eager}")
    if items:
        doc.bullets(items)


def _ceiling_section(doc: Document, res: BenchResult) -> None:
    ex = res.extras
    if not ex.get("macs"):
        return
    doc.h2("Against this CPU's compute limit")
    doc.p(f"One forward is {ex['macs'] / 1e9:.2f} G multiply-adds. Dense GEMM ({ex['gemm_n']}x{ex['gemm_n']}) measured in this run: "
          f"fp32 {ex['fp32_gflops']:.0f} GFLOP/s and bf16 "
          + (f"{ex['bf16_gflops']:.0f} GFLOP/s" if ex.get("bf16_gflops") else "not measured (no native bf16)") + " (PyTorch), INT8 "
          + (f"{ex['int8_gops']:.0f} GOP/s (onnxruntime MatMulInteger u8 x s8)" if ex.get("int8_gops") else "not measured (no onnxruntime)")
          + ". A row near 100% is compute bound: no runtime setting makes it much faster on this CPU.")
    cpu = sorted((r for r in res.rows if r.device == "cpu" and math.isfinite(r.gops)), key=lambda r: (r.batch, r.p50_ms))
    doc.table(["backend", "batch", "GOP/s", "of the GEMM rate in its precision"], [[r.label, str(r.batch), f"{r.gops:.0f}", _pct(r.of_gemm, 0)]
                                                                                    for r in cpu])
    doc.bullets(batch_curve_lines(res))


def batch_curve_lines(res: BenchResult) -> list[str]:
    """Per precision, the best share of the GEMM rate at batch 1 against that at the largest batch: where the limit is
    approached, and where batch 1 stops it."""
    bs = res.settings.get("batch_sizes", [])
    if len(bs) < 2:
        return []
    lo, hi = bs[0], bs[-1]
    out = []
    for prec in ("fp32", "bf16", "int8"):
        def best(b, prec=prec):
            rows = [r for r in res.rows if r.device == "cpu" and r.batch == b and r.precision == prec and math.isfinite(r.of_gemm)]
            return max(rows, key=lambda r: r.of_gemm) if rows else None
        a, z = best(lo), best(hi)
        if a is None or z is None:
            continue
        verdict = ("the limit is approached at the larger batch" if z.of_gemm >= 0.7 else
                   "far from the limit even at the larger batch (memory-bound layers, or a runtime that does not reach the GEMM rate)")
        if z.of_gemm > 1.3 * a.of_gemm:
            verdict += f"; batch {lo} leaves {1 - a.of_gemm / z.of_gemm:.0%} of that rate unused (too little work per call for the cores)"
        out.append(f"{prec}: batch {lo} reaches {a.of_gemm:.0%} of the GEMM rate ({a.label}), batch {hi} {z.of_gemm:.0%} "
                   f"({z.label}, {z.images_per_s:.0f} images/s): {verdict}.")
    return out


def _goals_section(doc: Document, res: BenchResult) -> None:
    doc.h2("Goals (ratios from this run)")
    doc.p("Judged on p50 latencies; the ratio on each row's fastest call is shown beside it "
          "(load from other processes only adds time, so a large gap between the two means the run was disturbed).")
    rows = []
    for g in res.goals:
        met = "yes" if g["ok"] else ("no" if g["ok"] is False else "n/a")
        rows.append([g["goal"], f"{g['measured']}{(' - ' + g['note']) if g['note'] else ''}", met])
    doc.table(["goal", "measured", "met"], rows)


def _verdicts(a: dict) -> str:
    parts = []
    for b, pb in a["per_batch"].items():
        if pb.get("ok") is None:
            parts.append(f"batch {b}: {pb.get('note')}")
        else:
            parts.append(f"batch {b}: {'fastest' if pb['ok'] else 'NOT the fastest'} within the gate "
                         f"({pb['auto_ms']:.1f} ms; fastest {pb['fastest']} {pb['fastest_ms']:.1f} ms)")
    return "; ".join(parts)


def auto_line(a: dict) -> str:
    """What auto runs a file on and whether that is the fastest row within its gate; for a tuned file, the static rule's
    choice beside it."""
    if "error" in a:
        return f"{a['artifact']}: {a['error']}"
    line = f"{a['artifact']} ({a['precision']}): {a['auto_key']} - {a['reason']}; " + _verdicts(a)
    st = a.get("static")
    if st:
        line += f". Without the tuning (the static rule): {st['auto_key']}; " + _verdicts(st)
    return line


def openvino_precision_lines(res: BenchResult) -> list[str]:
    """What a plain OpenVINO user gets: bf16 compute for an fp32 file on a CPU with native bf16; auto keeps f32 (the fp32 gate),
    and the price of that choice is read from this run's OpenVINO fp32 and bf16-hint rows of the same file."""
    out = []
    for r32 in res.rows:
        if r32.backend != "openvino" or r32.precision != "fp32" or r32.status != "ok":
            continue
        r16 = next((r for r in res.rows if r.backend == "openvino" and r.precision == "bf16" and r.batch == r32.batch
                    and r.artifact == r32.artifact and r.model == r32.model and r.status == "ok"), None)
        if r16 is None or not (math.isfinite(r16.p50_ms) and math.isfinite(r32.p50_ms)):
            continue
        out.append(f"OpenVINO's own default on this CPU runs an fp32 file in bf16 (its `benchmark_app` does unless given "
                   f"`-infer_precision f32`). `auto` keeps f32 for {r32.artifact or 'the fp32 file'} so that it passes the fp32 gate: "
                   f"at batch {r32.batch} that costs {r32.p50_ms:.1f} ms against {r16.p50_ms:.1f} ms with the bf16 hint "
                   f"({r32.p50_ms / r16.p50_ms:.2f}x). `pawlens-predict --backend openvino --precision bf16` trades the gate for "
                   "that speed.")
        break  # one statement per run: the first fp32 file with both rows
    return out + int8_float_layer_lines(res)


def int8_float_layer_lines(res: BenchResult) -> list[str]:
    """OpenVINO INT8 with its layers left in float in f32 against bf16 (benchmark_app's default on a bf16 CPU), judged by the
    INT8 gate: which one is kept, per file and batch."""
    out = []
    for r32 in res.rows:
        if not r32.key.startswith("openvino-int8@") or r32.status != "ok":
            continue
        r16 = res.row(r32.key.replace("openvino-int8@", "openvino-int8-bf16@", 1), r32.batch)
        if r16 is None or not (math.isfinite(r16.p50_ms) and math.isfinite(r32.p50_ms)):
            continue
        ok16 = r16.within_gate is not False
        keep = r16 if ok16 and r16.p50_ms < r32.p50_ms else r32
        why = ("faster and within the INT8 gate" if keep is r16 else
               "bf16 is outside the INT8 gate on these inputs" if not ok16 else "f32 is as fast or faster")
        out.append(f"OpenVINO INT8 {r32.artifact} at batch {r32.batch}: float layers in f32 {r32.p50_ms:.2f} ms, in bf16 "
                   f"{r16.p50_ms:.2f} ms ({'in' if ok16 else 'outside'} the INT8 gate); kept: "
                   f"{'bf16' if keep is r16 else 'f32'} ({why}).")
    return out


def _spinning_line(s: dict) -> str:
    if s.get("spinning"):
        line = "Spinning ALLOWED (--allow-spinning): ONNX Runtime and OpenMP defaults."
    else:
        line = ("Spinning off: ONNX Runtime sessions run with `session.intra_op.allow_spinning = 0` (and inter-op; spinning threads "
                "slowed the next runtime by up to 2.5x on 2 cores)"
                + ("; PyTorch workers start with `GOMP_SPINCOUNT=20000` (OpenMP threads spin some microseconds at a barrier, then "
                   "sleep: PyTorch keeps its default speed, an idle worker stops competing at once; fully passive waiting made eager "
                   "ResNet50 ~50% slower here)"
                   if s["isolation"] == "process" else "; PyTorch runs in this process with its OpenMP defaults") + ".")
    return (line + " OpenVINO: PERFORMANCE_HINT=LATENCY. PyTorch: eager, `inference_mode`; the `torch.compile` rows: TorchInductor with "
            "frozen weights (batch norm folded, weights pre-packed), static shapes, each batch size compiled during its warm-up.")


def _method_section(doc: Document, res: BenchResult) -> None:
    s = res.settings
    doc.h2("How the figures were taken")
    iso = ("each configuration in its own worker process (a fresh Python interpreter), activated once"
           if s["isolation"] == "process" else "all configurations in one process")
    if s.get("method", "rounds") == "burst":
        timing = (f"{iso}; {s['warmup']} warm-up calls per row and batch, then {s['rounds']} rounds; in each round every row runs one "
                  f"burst after a {s['pause_ms']:g} ms pause: one call after idle (the **cold** column, never in p50), then calls back "
                  f"to back for at least {s['burst_ms']:g} ms and {s['min_calls']} calls (**steady state**: p50/p90/p99 over all "
                  "bursts' steady calls, as a runtime's own tool times it). The order of the rows rotates (and reverses) every round; "
                  "only one configuration computes at a time.")
    else:
        timing = (f"{iso}; {s['warmup']} warm-up calls per row and batch, then {s['iters']} timed calls per row, interleaved in rounds of "
                  f"{s['round_iters']} call(s) per row, the order rotating (and reversing) every round, {s['pause_ms']:g} ms pause between "
                  "turns; only one configuration computes at a time (method `rounds`: each call starts on idle threads, which a "
                  "model of a few milliseconds feels).")
    items = [timing,
             f"Its runtime's own tool, run {s.get('peer_runs', 1)} time(s) per row and batch for {s.get('peer_s', 2.0):g} s each, the "
             "runs spread between the rounds (the workers idle meanwhile; the figure is the median of the runs' medians, beside "
             "their range), on the same file, batch, threads and a static shape: OpenVINO "
             "`benchmark_app -hint latency -shape ... -infer_precision <the row's>` (its median), a bare `InferenceSession.run` loop "
             "with the runner's session options for ONNX Runtime (which ships no such tool), `trtexec` for TensorRT where installed; "
             "GAP marks a row more than 10% away. Runner overhead: median of each steady call's wall time minus the time spent in the "
             "library (OpenVINO: `request.infer`; others: `infer_impl`): input checks, copies."
             if s.get("peers", False) else "No peer tools were run (--no-peers).",
             "Latency = wall time of one `runner.infer(batch)` call (input check, inference, output copy; CUDA rows synchronise). "
             "p50/p90/p99 over the timed calls; images/s = batch / p50.",
             _spinning_line(s),
             f"Threads per backend: {s['threads'] or 'each backend default (all cores)'}; CPU: {s['cpu']} ({s['cores']} logical cores; "
             f"{', '.join(s['cpu_flags']) or 'no AVX-512/AMX flags seen'}){'; GPU: ' + s['gpu'] if s['gpu'] else ''}.",
             f"Agreement and max abs difference: against PyTorch fp32 eager on {s['agreement_data']}; the gate is the artifact's "
             "own (fp32: max abs <= 1e-3 and 100% top-1; bf16/fp16 paths: the fp16 gate; INT8: top-1 agreement).",
             f"Load average at start / end: {_load(s['load_avg_start'])} / {_load(s['load_avg_end'])} (other work on the machine "
             "shows here; ratios within one run are more trustworthy than absolute figures)" + _runnable(s) + ".",
             f"Versions: {', '.join(f'{k} {v}' for k, v in s['versions'].items())}. Run took {s['seconds']} s."]
    fb = [k for k, d in res.runners.items() if d.get("providers")]
    if fb:
        items.append("ONNX Runtime providers actually active: " + "; ".join(
            f"{k}: {', '.join(res.runners[k]['providers'])}{' (FALL-BACK from CUDA)' if res.runners[k].get('fallback') else ''}" for k in fb))
    ov = [k for k, d in res.runners.items() if d.get("backend") == "openvino"]
    if ov:
        items.append("OpenVINO inference precision: " + "; ".join(f"{k}: {res.runners[k].get('inference_precision_hint')}" for k in ov))
    doc.bullets(items)


def disturbed_line(res: BenchResult) -> str:
    return ("**Disturbed run**: " + "; ".join(res.settings.get("disturbed_why", [])) + ". Other work shared the machine: ratios "
            "within this run are still comparable, the absolute figures are not.")


def document(res: BenchResult, *, appendix: bool = True) -> Document:
    """bench.md as blocks: what a user decides on first (the main table, accuracy against latency, overhead and Grad-CAM, what
    auto picks), then, unless ``appendix`` is False, :func:`appendix_document` (the demo puts that in its own appendix)."""
    s = res.settings
    doc = Document(f"pawlens-bench: {s['arch']} at {s['input_size']} px")
    if s.get("disturbed"):
        doc.note(disturbed_line(res))
    _main_table(doc, res)
    _pareto_section(doc, res)
    _extras_section(doc, res)
    doc.h2("What `--backend auto` picks")
    doc.bullets([auto_line(a) for a in res.auto_picks] + openvino_precision_lines(res))
    if appendix:
        doc.blocks += appendix_document(res).blocks
    return doc


def appendix_document(res: BenchResult) -> Document:
    """The figures behind the verdicts: this CPU's compute ceilings, the goals judged as ratios, how the run was taken, notes."""
    doc = Document("pawlens-bench: goals, compute ceilings and method")
    _ceiling_section(doc, res)
    _goals_section(doc, res)
    _method_section(doc, res)
    if res.notes:
        doc.h2("Notes")
        doc.bullets(res.notes)
    return doc


def to_markdown(res: BenchResult) -> str:
    return document(res).markdown()


# ----------------------------------------------------------------------------- bench.csv, bench.json


def to_csv(res: BenchResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in res.rows:
        d = r.to_dict(samples=False)
        w.writerow(["" if d[c] is None else (f"{d[c]:.4f}" if isinstance(d[c], float) else d[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def to_json(res: BenchResult) -> str:
    return json.dumps(res.to_dict(), indent=2, default=str) + "\n"


# ----------------------------------------------------------------------------- figures


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _row_label(r: BenchRow) -> str:
    return f"{r.label} [{r.device}]" if r.device != "cpu" else r.label


def _bar_labels(ax, y, values, ends) -> None:
    """Each bar's value just past its end (or its whisker's), so short bars on a linear axis still read."""
    for yi, v, e in zip(y, values, ends):
        if np.isfinite(v):
            text = f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"
            ax.annotate(text, (e if np.isfinite(e) else v, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)


def plot_png(res: BenchResult) -> bytes:
    """Latency (p50 with p90 whisker) and throughput bars on linear axes, one group per batch size, each bar labelled with
    its value; one legend above the panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bs = res.settings["batch_sizes"]
    labels = list(dict.fromkeys(_row_label(r) for r in res.rows))
    fig = Figure(figsize=(13, 0.45 * len(labels) * max(1, len(bs)) / 1.5 + 2.5))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    h = 0.8 / max(1, len(bs))
    y = np.arange(len(labels))
    top_ms = top_ips = 0.0
    for i, b in enumerate(bs):
        p50, p90, ips = (np.full(len(labels), np.nan) for _ in range(3))
        for r in res.rows:
            if r.batch == b:
                j = labels.index(_row_label(r))
                p50[j], p90[j], ips[j] = r.p50_ms, r.p90_ms, r.images_per_s
        off = (i - (len(bs) - 1) / 2) * h
        err = np.where(np.isfinite(p90 - p50), np.maximum(p90 - p50, 0), 0)
        ax1.barh(y + off, np.nan_to_num(p50), h, xerr=[np.zeros_like(err), err], label=f"batch {b}", capsize=2)
        ax2.barh(y + off, np.nan_to_num(ips), h, label=f"batch {b}")
        _bar_labels(ax1, y + off, p50, p50 + err)
        _bar_labels(ax2, y + off, ips, ips)
        top_ms = max(top_ms, float(np.nanmax(np.append(p50 + err, 0))))
        top_ips = max(top_ips, float(np.nanmax(np.append(ips, 0))))
    ax1.set_yticks(y, labels)
    ax1.invert_yaxis()
    ax1.set_xlabel("latency per call, ms (p50; whisker to p90)")
    ax2.set_xlabel("images / s (batch / p50)")
    ax1.set_xlim(0, top_ms * 1.15 or 1)
    ax2.set_xlim(0, top_ips * 1.12 or 1)
    ax1.grid(axis="x", alpha=0.3)
    ax2.grid(axis="x", alpha=0.3)
    handles, names = ax1.get_legend_handles_labels()
    title = f"pawlens-bench: {res.settings['arch']} {res.settings['input_size']} px"
    if res.settings["embedded_default"]:
        title += " (embedded default, untrained)"
    fig.suptitle(title)
    fig.legend(handles, names, loc="upper center", ncol=max(1, len(bs)), bbox_to_anchor=(0.5, 0.965), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _png(fig)


def pareto_rows(res: BenchResult) -> list[tuple[BenchRow, bool]]:
    """Batch-1 CPU rows with an accuracy, fastest first, each with whether it is on the accuracy/latency frontier."""
    rows = sorted((r for r in res.rows if r.batch == 1 and math.isfinite(r.accuracy) and math.isfinite(r.p50_ms)),
                  key=lambda r: (r.p50_ms, -r.accuracy))
    out, best = [], -1.0
    for r in rows:
        on = r.accuracy > best
        best = max(best, r.accuracy)
        out.append((r, on))
    return out


def plot_pareto(res: BenchResult) -> bytes:
    """Test accuracy against batch-1 p50 latency, one point per model x precision x backend, the frontier joined.

    Points are numbered (fastest first) and named in a key beside the axes, so close points never hide each other's
    names; the key also gives each point's latency and accuracy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pts = pareto_rows(res)
    fig = Figure(figsize=(14, max(5.5, 2.0 + 0.26 * len(pts))))
    FigureCanvasAgg(fig)
    ax, key = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1.1]})
    models = list(dict.fromkeys(r.model for r, _ in pts))
    marks = {"fp32": "o", "int8": "s", "bf16": "^", "bf16-autocast": "v", "fp16": "D"}
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    lines = []
    for i, (r, on) in enumerate(pts, 1):
        ax.scatter(r.p50_ms, r.accuracy * 100, marker=marks.get(r.precision, "o"), s=70 if on else 40, color=colors[r.model],
                   edgecolor="black" if on else "none", zorder=3)
        ax.annotate(str(i), (r.p50_ms, r.accuracy * 100), textcoords="offset points", xytext=(5, 3), fontsize=7, color=colors[r.model])
        name = r.label.split(" [")[0]
        lines.append((f"{i:>2} {'*' if on else ' '} {r.p50_ms:6.1f} ms {r.accuracy * 100:6.1f}%  {r.model}: {name}", colors[r.model]))
    front = [(r.p50_ms, r.accuracy * 100) for r, on in pts if on]
    if len(front) > 1:
        ax.step(*zip(*front), where="post", color="0.4", lw=1, ls="--", zorder=2, label="frontier (nothing faster is as accurate)")
    for m in models:
        ax.scatter([], [], color=colors[m], label=m)
    for p, mk in marks.items():
        if any(r.precision == p for r, _ in pts):
            ax.scatter([], [], marker=mk, color="0.5", label=p)
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 2, 3, 10 ms, not 2x10^0
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("p50 latency at batch 1, ms (log scale)")
    ax.set_ylabel("top-1 accuracy on the labelled photos, %")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"Accuracy against latency: {res.settings.get('agreement_data', '')}", fontsize=9)
    key.axis("off")
    key.set_title("key: number, * on the frontier, p50 at batch 1, accuracy, model: backend", fontsize=9, loc="left")
    step = min(0.06, 0.95 / max(1, len(lines)))
    for j, (text, c) in enumerate(lines):
        key.text(0.0, 0.97 - j * step, text, fontsize=8, color=c, va="top", family="monospace", transform=key.transAxes)
    fig.tight_layout()
    return _png(fig)


def write_outputs(res: BenchResult, out_dir: str) -> dict[str, str]:
    """Write bench.json, bench.csv, bench.md and bench.png (and pareto.png) into ``out_dir`` (atomically); return their paths."""
    files = {k: os.path.join(out_dir, f"bench.{k}") for k in ("json", "csv", "md", "png")}
    if pareto_rows(res):
        files["pareto"] = os.path.join(out_dir, "pareto.png")
        atomic_write_bytes(files["pareto"], plot_pareto(res))
    res.files = files
    atomic_write_text(files["csv"], to_csv(res))
    atomic_write_text(files["md"], to_markdown(res))
    atomic_write_bytes(files["png"], plot_png(res))
    atomic_write_text(files["json"], to_json(res))
    return files
