"""pawlens tune (also ``pawlens-tune``): time the configurations ``--backend auto`` could run an artifact with, on this
machine, and store the fastest one that stays inside the artifact's own parity gate.

    pawlens tune runs/export/best/best.int8.onnx                 # batch 1, about 30 s at most
    pawlens tune runs/train/best/best.pt --batch-sizes 1,8 --budget-s 20
    pawlens tune best.onnx --images ../shared/data/catsdogs --no-store

    from pawlens.bench.tune import tune
    res = tune("best.int8.onnx", budget_s=10)      # TuneResult: .rows, .winners, .stored; format_table(res)

The candidates (:func:`configs_for`) are what auto may choose between without lowering the artifact's precision: an
ONNX file on ONNX Runtime and on OpenVINO (for an INT8 file also OpenVINO's bf16 hint for the layers left in float,
where the CPU computes bf16 natively; an fp32 file stays fp32), a checkpoint on PyTorch fp32 in NCHW and in
channels_last; each with the backend's default threads (all cores) and with one thread.  Each runs in its own worker
process (:class:`pawlens.bench.harness.ProcessWorker`), gives its logits on a handful of inputs (synthetic frames made
with the artifact's own preprocessing, or ``--images``), and is gated against the static rule's configuration with the
artifact's default gate (:func:`pawlens.runtime.compare.default_gate`: fp32 tight, INT8 by top-1 agreement); one
outside the gate is shown and never chosen.  Then all are timed by the bench's burst method
(:func:`pawlens.bench.schedule.time_bursts`: warm-up, interleaved bursts, steady p50), sized to fit ``--budget-s``.

The fastest in-gate configuration per batch size is stored (:func:`pawlens.runtime.tuned.store`), keyed by the file's
sha256, this CPU and the library versions; a winner within :data:`TIE` of the static rule leaves the static rule's
configuration stored.  Only CPU configurations are tuned: on a machine with CUDA, auto keeps the GPU.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from pawlens.console import HelpFormatter, run_cli
from pawlens.document import Table
from pawlens.errors import ArtifactError, InputError, PawlensError, one_line
from pawlens.runtime import formats, tuned
from pawlens.runtime.formats import CHECKPOINT, ENGINE, ONNX

from .candidates import Candidate
from .harness import ProcessWorker, WorkerError

LOG = logging.getLogger("pawlens")

#: A faster configuration must beat the static rule's by more than this fraction to replace it.
TIE = 0.03
#: Bursts per row and batch size when the budget allows, and the longest burst.
ROUNDS = 5
MAX_BURST_S = 0.25
MIN_CALLS = 3
WARMUP = 2
PAUSE_S = 0.005
#: Seconds kept back from the budget for closing the workers.
CLOSE_RESERVE_S = 0.5


@dataclass
class Row:
    """One candidate's outcome: its p50 per batch size (ms), its gate verdict, or why it could not run."""

    cand: Candidate
    config: dict[str, Any]
    label: str
    static: bool = False
    p50_ms: dict[int, float] = field(default_factory=dict)
    in_gate: bool | None = None
    gate_note: str = ""
    error: str = ""


@dataclass
class TuneResult:
    path: str
    precision: str
    batch_sizes: list[int]
    rows: list[Row]
    winners: dict[int, Row]
    stored: dict[int, str]
    inputs_note: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    busy: bool = False  # other work took the cores while timing


# ----------------------------------------------------------------------------- candidates


def configs_for(kind: str, precision: str, *, installed: Sequence[str], bf16: bool, cores: int) -> list[dict[str, Any]]:
    """The configurations auto may choose between for a file of ``kind`` / ``precision`` on this CPU (pure)."""
    threads: list[int | None] = [None, 1] if cores > 1 else [None]
    base: list[dict[str, Any]] = []
    if kind in (CHECKPOINT, ONNX):  # the CPU backends of the formats table, each with its auto setting and its variants
        have = set(installed) | {"torch"}
        for be in (b for b in formats.for_file(kind, precision).backends if b in have):
            settings = [formats.BACKENDS[be].auto] + [v.settings for v in formats.variants(be, precision, bf16=bf16, purpose="tune")]
            base += [_config(be, st) for st in settings]
    return [{**c, "threads": t} for c in base for t in threads]


def _config(backend: str, settings: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """A tune config: the backend, its precision hint and memory layout (the backend's auto values where ``settings``,
    runner keyword arguments, leave them out; None where the backend has no such setting), and the threads."""
    s = {**formats.BACKENDS[backend].auto, **settings}
    return {"backend": backend, "precision": s.get("precision"), "channels_last": s.get("channels_last"), "threads": threads}


def config_of_plan(plan) -> dict[str, Any]:
    """The config of a factory Plan (CPU backends only)."""
    return _config(plan.backend, plan.kwargs, plan.threads)


def candidate(path: str, cfg: dict[str, Any], precision: str, cores: int) -> Candidate:
    """The bench Candidate that builds ``cfg`` in a worker (``make_runner(path, backend=..., **runner_kwargs)``)."""
    key = "-".join(str(x) for x in (cfg["backend"], cfg["precision"] or precision, "cl" if cfg["channels_last"] else "",
                                     f"t{cfg['threads'] or 'default'}") if x)
    hint = cfg["precision"] if cfg["backend"] == "openvino" else None
    runs = precision if hint in (None, "fp32") else (hint if precision == "fp32" else f"{precision}+{hint}")
    return Candidate(key, tuned.describe(cfg, precision, cores), cfg["backend"], runs, "cpu", path, make_runner_kwargs(cfg),
                     gate_precision=precision, threads=cfg["threads"])


def make_runner_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """``make_runner``'s keyword arguments that build ``cfg`` (without threads): :meth:`Plan.make_kwargs`."""
    from pawlens.runtime.factory import Plan

    return Plan(cfg["backend"], tuned.runner_kwargs(cfg)).make_kwargs()


def _cpu_bf16(kind: str, precision: str, installed: Sequence[str]) -> bool:
    if kind != ONNX or precision != "int8" or "openvino" not in installed:
        return False  # only an INT8 file on OpenVINO gets bf16 candidates: asking would import torch for nothing
    from pawlens.models.device import cpu_supports_bf16

    return cpu_supports_bf16()


# ----------------------------------------------------------------------------- inputs


def gate_inputs(meta, images: str | None, n: int) -> tuple[np.ndarray, list[int] | None, str]:
    """``n`` preprocessed inputs for the gate check: (x, labels or None, what they are)."""
    from pawlens.models.preprocess import preprocess_numpy

    if images:
        from pawlens.models.photos import image_files, sample_images

        files = image_files(images)
        if not files:
            raise InputError(f"--images {images}: no images found there")
        s = sample_images(files, meta.class_names, limit=n, root=images if os.path.isdir(images) else None)
        if not s.items:
            raise InputError(f"--images {images}: none of the images could be read")
        labels = s.labels if s.n_labelled else None
        return preprocess_numpy(s.items, meta.preprocess), labels, f"{len(s.items)} photos from {images}"
    from .inputs import synthetic_frames

    return preprocess_numpy(synthetic_frames(n), meta.preprocess), None, f"{n} synthetic frames"


def batch_of(x: np.ndarray, b: int) -> np.ndarray:
    """A batch of ``b`` inputs cycled from ``x``."""
    return np.ascontiguousarray(x[np.arange(b) % len(x)])


# ----------------------------------------------------------------------------- workers


def _start(cands: list[Candidate], make: Callable[[Candidate], Any], parallel: int) -> tuple[dict[str, Any], dict[str, str]]:
    """One activated worker per candidate (``parallel`` start at once): (workers, why others failed)."""
    workers: dict[str, Any] = {}
    failed: dict[str, str] = {}

    def one(c):
        try:
            return make(c), ""
        except WorkerError as e:
            return None, str(e)
        except Exception as e:  # noqa: BLE001 - one candidate's failure is its row's error
            return None, one_line(e)

    if parallel > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=parallel) as ex:
            got = list(ex.map(one, cands))
    else:
        got = [one(c) for c in cands]
    for c, (w, err) in zip(cands, got):
        if w is None:
            failed[c.key] = err
            LOG.warning("tune: %s unavailable: %s", c.label, err)
        else:
            workers[c.key] = w
    return workers, failed


def _call(workers: dict[str, Any], failed: dict[str, str], key: str, cmd: str, arg=None):
    """One command to a worker; a failing worker is closed and dropped (None returned)."""
    try:
        return workers[key].call(cmd, arg)
    except WorkerError as e:
        failed[key] = str(e)
        workers.pop(key).close()
        return None


def _close(workers: dict[str, Any]) -> None:
    for w in workers.values():
        try:
            w.close()
        except Exception as e:  # noqa: BLE001 - closing must not hide the result
            LOG.debug("tune: closing a worker: %s", e)
    workers.clear()


# ----------------------------------------------------------------------------- gate and timing


def gate_rows(rows: list[Row], logits: dict[str, np.ndarray], ref_key: str, labels, precision: str) -> None:
    """Each row's verdict against the reference row's logits, with the artifact's default gate."""
    from pawlens.runtime.compare import DEFAULT_GATES, compare_logits, default_gate

    gate = default_gate(precision if precision in DEFAULT_GATES else "fp32")
    ref = logits[ref_key]
    for r in rows:
        if r.cand.key not in logits:
            continue
        if r.cand.key == ref_key:
            r.in_gate = True
            continue
        try:
            res = compare_logits(ref, logits[r.cand.key], labels=labels, gate=gate, name=r.label, precision=precision)
        except PawlensError as e:  # e.g. outputs of another shape
            r.in_gate, r.gate_note = False, str(e)
            continue
        r.in_gate = bool(res.passed)
        if not res.passed:
            r.gate_note = res.short_summary()


def plan_bursts(lat_s: Sequence[float], remaining_s: float, *, rounds: int = ROUNDS, min_calls: int = MIN_CALLS,
                max_burst_s: float = MAX_BURST_S) -> tuple[int, float, int]:
    """(rounds, burst_s, min_calls) for bursts of rows whose calls take ``lat_s`` seconds, to fit ``remaining_s`` (pure).

    A round costs, per row, one call after idle, then ``max(burst_s, min_calls * latency)``, and a pause.  The most
    rounds (up to ``rounds``) that fit with ``min_calls`` calls per burst are kept, and the bursts get the time left
    (at most ``max_burst_s``).  A budget too small even for one such round still gets one (a decision on fewer calls
    would be noise), so a run whose start-up took the budget ends a few bursts late.
    """
    lat = [max(0.0, float(x)) for x in lat_s]
    if not lat:
        return 0, 0.0, 0

    def cost(burst: float, m: int) -> float:
        return sum(x + max(burst, m * x) + PAUSE_S for x in lat)

    for r in range(max(1, rounds), 0, -1):
        per_round = remaining_s / r
        if cost(0.0, min_calls) > per_round:
            continue
        lo, hi = 0.0, max_burst_s
        for _ in range(40):  # the longest burst that still fits
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cost(mid, min_calls) <= per_round else (lo, mid)
        return r, lo, min_calls
    return 1, 0.0, min_calls


def _probe(workers: dict[str, Any], failed: dict[str, str], batch_sizes: Sequence[int]) -> dict[tuple[str, int], float]:
    """Warm-up calls at every batch size (OpenVINO compiles each static shape here); each row's latency estimate."""
    lat: dict[tuple[str, int], float] = {}
    for b in batch_sizes:
        for k in list(workers):
            got = _call(workers, failed, k, "time", (b, WARMUP))
            if got:
                lat[(k, b)] = statistics.median(got[1:] or got)
    return {kb: v for kb, v in lat.items() if kb[0] in workers}


def _time(workers: dict[str, Any], failed: dict[str, str], batch_sizes: Sequence[int], deadline: float, progress: bool):
    """The steady p50 (ms) per (row, batch), by :func:`~pawlens.bench.schedule.time_bursts` sized to end by ``deadline``."""
    from .schedule import time_bursts

    lat = _probe(workers, failed, batch_sizes)
    left = deadline - time.monotonic() - CLOSE_RESERVE_S
    rounds, burst_s, min_calls = plan_bursts(list(lat.values()), left)
    if not rounds:
        return {}
    LOG.info("tune: timing %d configuration(s) x %d batch size(s): %d round(s) of %.0f ms bursts (%.1f s of the budget left)",
             len(workers), len(batch_sizes), rounds, burst_s * 1e3, max(0.0, left))
    t = time_bursts(workers, batch_sizes, rounds=rounds, burst_s=burst_s, min_calls=min_calls, warmup=0, pause_ms=PAUSE_S * 1e3,
                    failed=failed, progress=progress)
    return {kb: statistics.median(v) * 1e3 for kb, v in t.steady.items() if v}


def _note_load(res: TuneResult, when: str) -> None:
    """A note when other work takes the cores (:func:`pawlens.bench.machine.load_check`): the figures are then suspect."""
    from .machine import load_check

    c = load_check(samples=5, interval_s=0.02, when=when)
    if c["busy"]:
        res.busy = True
        res.notes.append(f"warning: the machine was busy {when} ({c['runnable']:g} other runnable threads on {c['cores']} cores): "
                         "the timings are suspect; rerun pawlens tune on a quiet machine")


def pick(rows: list[Row], b: int) -> Row | None:
    """The fastest row inside the gate at batch ``b``; the static rule's row when it is within :data:`TIE` of it."""
    ok = [r for r in rows if r.in_gate and math.isfinite(r.p50_ms.get(b, math.nan))]
    if not ok:
        return None
    best = min(ok, key=lambda r: r.p50_ms[b])
    static = next((r for r in ok if r.static), None)
    if static is not None and static.p50_ms[b] <= best.p50_ms[b] * (1 + TIE):
        return static
    return best


# ----------------------------------------------------------------------------- the run


def _check_args(batch_sizes: Sequence[int], budget_s: float, n_images: int) -> list[int]:
    bs = [int(b) for b in batch_sizes]
    if not bs or any(b < 1 for b in bs):
        raise InputError(f"--batch-sizes {','.join(map(str, batch_sizes)) or '(none)'}: each must be a whole number >= 1")
    if not (budget_s > 0 and math.isfinite(budget_s)):
        raise InputError(f"--budget-s {budget_s}: must be a number of seconds > 0")
    if n_images < 1:
        raise InputError(f"--n-images {n_images}: must be >= 1")
    return list(dict.fromkeys(bs))


def _rows_for(path: str, meta, kind: str, cores: int) -> tuple[list[Row], dict[str, Any]]:
    """The candidate rows (static rule's first) and the static rule's config."""
    from pawlens.runtime import factory

    installed = [b for b in ("ort", "openvino") if factory.backend_installed(b)]
    static_cfg = config_of_plan(factory.plan_runner(path, backend="auto", device="cpu", meta=meta, tuned=False))
    cfgs = configs_for(kind, meta.precision, installed=installed, bf16=_cpu_bf16(kind, meta.precision, installed), cores=cores)
    if static_cfg not in cfgs:
        cfgs.insert(0, static_cfg)
    cfgs.sort(key=lambda c: c != static_cfg)
    rows = [Row(candidate(path, c, meta.precision, cores), c, tuned.describe(c, meta.precision, cores), static=c == static_cfg)
            for c in cfgs]
    return rows, static_cfg


def _read_artifact(path: str):
    from pawlens.runtime import factory

    kind = factory.file_kind(path)
    if kind == ENGINE:
        raise InputError(f"{path}: a TensorRT engine has one configuration, fixed when it was built; nothing to tune "
                         "(tune its .onnx for the CPU)")
    return kind, factory.read_meta(path)


def _store(res: TuneResult, static_cfg: dict[str, Any]) -> None:
    static_row = next((r for r in res.rows if r.static), None)
    summary = [{"label": r.label, "config": r.config, "p50_ms": r.p50_ms, "in_gate": r.in_gate, "error": r.error} for r in res.rows]
    for b, w in res.winners.items():
        static_ms = static_row.p50_ms.get(b) if static_row is not None else None
        res.stored[b] = tuned.store(res.path, w.config, batch=b, p50_ms=w.p50_ms[b], static=static_cfg, static_ms=static_ms,
                                    artifact_precision=res.precision, candidates=summary, note=res.inputs_note, busy=res.busy)


def tune(path: str | os.PathLike, *, batch_sizes: Sequence[int] = (1,), budget_s: float = 30.0, images: str | None = None,
         n_images: int = 8, store: bool = True, progress: bool = True,
         make: Callable[[Candidate], Any] | None = None) -> TuneResult:
    """Time the artifact's candidate configurations here and (``store``) keep the fastest in-gate one per batch size.

    Args:
        path: a ``.pt`` checkpoint or an ``.onnx`` file written by pawlens.
        batch_sizes: the batch sizes to tune for (each stored on its own).
        budget_s: about how long the whole run may take (worker start-up included; past it each configuration still gets
            one burst per batch size).
        images: photos for the gate check (a folder or file list); ``None``: synthetic frames.
        n_images: how many gate inputs.
        store: write the winners to the tune cache.
        progress: a progress bar while timing (on a terminal).
        make: builds a worker for a Candidate (default: a fresh :class:`ProcessWorker` each; tests pass inline ones).

    Raises:
        ArtifactError / InputError: a file that cannot be tuned, bad arguments, or no configuration that runs it.
        OutputError: the tune cache cannot be written.
    """
    t0 = time.monotonic()
    p = os.fspath(path)
    bs = _check_args(batch_sizes, budget_s, n_images)
    kind, meta = _read_artifact(p)
    cores = tuned.usable_cores()
    rows, static_cfg = _rows_for(p, meta, kind, cores)
    x, labels, note = gate_inputs(meta, images, n_images)
    res = TuneResult(p, meta.precision, bs, rows, {}, {}, note)
    if make is None:
        def make(c):
            return ProcessWorker(c, timeout=max(60.0, 2 * budget_s))
        parallel = max(1, min(len(rows), cores))
    else:
        parallel = 1
    LOG.info("tune: starting %d configuration(s) of %s", len(rows), os.path.basename(p))
    workers, failed = _start([r.cand for r in rows], make, parallel)
    try:
        _measure(res, workers, failed, x, labels, t0 + budget_s, progress)
    finally:
        _close(workers)
    for r in rows:
        r.error = failed.get(r.cand.key, r.error)
    if not any(r.p50_ms for r in rows):
        why = next((r.error for r in rows if r.error), "no configuration was timed")
        raise ArtifactError(f"{p}: no configuration could be timed here ({why})")
    res.winners = {b: w for b in bs if (w := pick(rows, b)) is not None}
    res.notes += [f"batch {b}: no configuration inside the gate was timed; nothing stored" for b in bs if b not in res.winners]
    if store:
        _store(res, static_cfg)
    res.seconds = time.monotonic() - t0
    return res


def _measure(res: TuneResult, workers: dict[str, Any], failed: dict[str, str], x: np.ndarray, labels, deadline: float,
             progress: bool) -> None:
    """Inputs to each worker, logits and the gate verdicts, then the timing (results written into ``res.rows``)."""
    for k in list(workers):
        _call(workers, failed, k, "inputs", {b: batch_of(x, b) for b in res.batch_sizes})
    logits = {}
    for k in list(workers):
        got = _call(workers, failed, k, "logits", (x, 8))
        if got is not None:
            logits[k] = np.asarray(got)
    if not logits:
        return
    ref = next((r for r in res.rows if r.static and r.cand.key in logits), None) or next(r for r in res.rows if r.cand.key in logits)
    if not ref.static:
        res.notes.append(f"the static rule's configuration did not run; gated against {ref.label} instead")
    gate_rows(res.rows, logits, ref.cand.key, labels, res.precision)
    _note_load(res, "before timing")
    p50 = _time(workers, failed, res.batch_sizes, deadline, progress)
    _note_load(res, "after timing")
    for r in res.rows:
        r.p50_ms = {b: p50[(r.cand.key, b)] for b in res.batch_sizes if (r.cand.key, b) in p50}


# ----------------------------------------------------------------------------- output


def _row_note(r: Row, res: TuneResult) -> str:
    won = [b for b, w in res.winners.items() if w is r]
    parts = ([f"* winner (batch {', '.join(map(str, won))})"] if won else []) + (["static rule"] if r.static else [])
    if r.error:
        parts.append(f"did not run: {r.error}")
    elif r.in_gate is False:
        parts.append(f"outside the gate, not eligible: {r.gate_note}")
    return "; ".join(parts)


def format_table(res: TuneResult) -> str:
    """The candidates, their p50 per batch size, the gate verdict, and which won (``*``)."""
    head = ["candidate"] + [f"p50 ms b={b}" for b in res.batch_sizes] + ["in gate"]
    body = [[r.label] + [f"{r.p50_ms[b]:.2f}" if b in r.p50_ms else "-" for b in res.batch_sizes]
            + [{True: "yes", False: "no"}.get(r.in_gate, "-")] for r in res.rows]
    notes = [""] + [_row_note(r, res) for r in res.rows]
    return "\n".join(Table.of(head, body).console(notes=notes))


def stored_lines(res: TuneResult) -> list[str]:
    """One line per batch size: what was stored (or would be, without ``store``), against the static rule."""
    static = next((r for r in res.rows if r.static), None)
    out = []
    for b, w in res.winners.items():
        if w.static:
            vs = ", the static rule's choice"
        else:
            vs = f" vs static {static.p50_ms[b]:.2f} ms" if static is not None and b in static.p50_ms else " (the static rule's did not run)"
        where = f" -> {res.stored[b]}" if b in res.stored else " (not stored: --no-store)"
        out.append(f"batch {b}: {w.label}, {w.p50_ms[b]:.2f} ms{vs}{where}")
    return out


# ----------------------------------------------------------------------------- CLI


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pawlens-tune", add_help=add_help, formatter_class=HelpFormatter,
        description="Time the configurations --backend auto could run ARTIFACT with on this machine (backend, OpenVINO precision "
        "hint, memory layout, threads), each in its own process, gate each against the static rule's logits with the "
        "artifact's own parity gate, and store the fastest in-gate one: auto on the CPU then uses it (pawlens predict, gui, "
        f"bench, demo). Stored in {os.path.join(tuned.cache_dir(), 'tune')} (PAWLENS_CACHE_DIR, else XDG_CACHE_HOME/pawlens, "
        "else ~/.cache/pawlens), keyed by the file's sha256, this CPU, the batch size and the library versions.",
        epilog="examples:\n  pawlens tune runs/export/best/best.int8.onnx\n  pawlens tune runs/train/best/best.pt --batch-sizes 1,8 "
        "--budget-s 20\n  pawlens tune best.onnx --images ../shared/data/catsdogs --no-store",
    )
    p.add_argument("artifact", help="a .pt checkpoint or an .onnx file (fp32, fp16 or INT8) written by pawlens")
    p.add_argument("--budget-s", type=float, default=30.0, help="about how long the whole run may take, worker start-up included, in "
                   "seconds (default 30; a small model finishes sooner; a start-up that takes it all still gets one burst per "
                   "configuration and batch size)")
    p.add_argument("--batch-sizes", default="1", help="comma-separated batch sizes to tune for, each stored on its own (default 1)")
    p.add_argument("--images", default=None, help="folder of photos for the gate check (default: synthetic frames made with the "
                   "artifact's own preprocessing)")
    p.add_argument("--n-images", type=int, default=8, help="inputs for the gate check (default 8)")
    p.add_argument("--no-store", action="store_true", help="measure and print only, leave the cache as it is (default: store the winner)")
    p.add_argument("--debug", action="store_true", help="show tracebacks (default: one-line errors)")
    p.add_argument("-v", "--verbose", action="store_true", help="more logging (default: off)")
    return p


def _batch_sizes(text: str) -> list[int]:
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"--batch-sizes {text!r}: give whole numbers separated by commas, e.g. 1,8") from None


def _main(argv: Sequence[str] | None) -> int:
    args = get_args_parser().parse_args(argv)
    res = tune(args.artifact, batch_sizes=_batch_sizes(args.batch_sizes), budget_s=args.budget_s, images=args.images,
               n_images=args.n_images, store=not args.no_store)
    cpu = tuned.this_cpu()
    print(f"pawlens tune {args.artifact} ({res.precision}; gate inputs: {res.inputs_note}; {cpu['model']}, {cpu['cores']} cores; "
          f"{res.seconds:.1f} s)")
    print(format_table(res))
    for line in stored_lines(res) + res.notes:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, prog="pawlens-tune")


if __name__ == "__main__":
    import sys

    sys.exit(main())
