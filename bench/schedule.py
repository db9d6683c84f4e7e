"""Running the candidates: start one worker each, take their logits on the agreement inputs, then time them in
interleaved rounds.  The output is raw: per-call seconds for each (row key, batch), and why a row failed.

    workers, runners, failed = start_workers(cands, inputs_of, isolation="process", spinning=False)
    logits = collect_logits(cands, workers, runners, agree_of, failed)
    timing = time_bursts(workers, batch_sizes, rounds=5, burst_s=0.2, min_calls=3, warmup=3, pause_ms=10, failed=failed)
    samples = time_rounds(workers, batch_sizes, iters=20, warmup=3, round_iters=2, pause_ms=10, failed=failed)   # the old method

Only one worker computes at a time.  Round ``r`` starts at worker ``r mod n`` and every other round runs in reverse,
so machine drift and other load hit every row alike.

Two methods.  ``burst`` (the default): in each round every worker runs one burst, a first call after idle (``cold``,
reported on its own) and then back-to-back calls for at least ``burst_s`` and ``min_calls`` calls, which are the
steady-state figure (p50 over all bursts' steady calls), as a runtime's own tool (OpenVINO's ``benchmark_app``) times it.
``rounds`` (the earlier method): ``round_iters`` calls per worker per round, ``pause_ms`` apart, every call timed: on a
model of a few milliseconds each call then starts on idle threads and cold caches, which reads up to 1.7x slower than
the runtime's own tool.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .harness import InlineWorker, ProcessWorker, WorkerError

LOG = logging.getLogger("pawlens")


def _bar(total: int | None, desc: str, unit: str, progress: bool):
    from pawlens.progress import progress as make_progress

    return make_progress(total=total, desc=desc, unit=unit, enabled=progress)


def start_workers(cands, inputs_of: Callable[[Any], dict], *, isolation: str, spinning: bool, progress: bool = False,
                  make: Callable | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """One activated worker per candidate, each holding its timing inputs: (workers, their describe(), failures)."""
    if make is None:
        def make(c):
            return ProcessWorker(c, spinning=spinning) if isolation == "process" else InlineWorker(c)
    workers: dict[str, Any] = {}
    runners: dict[str, Any] = {}
    failed: dict[str, str] = {}
    LOG.info("bench: starting %d configurations (%s isolation)", len(cands), isolation)
    bar = _bar(len(cands), "load", "runner", progress)
    for c in cands:
        if c.backend == "ort":
            c.runner["spinning"] = spinning
        try:
            w = make(c)
            w.call("inputs", inputs_of(c))
            runners[c.key] = w.call("describe")
            workers[c.key] = w
        except WorkerError as e:
            failed[c.key] = str(e)
            LOG.warning("bench: %s unavailable: %s", c.label, e)
        bar.update(1)
    bar.close()
    return workers, runners, failed


def collect_logits(cands, workers: dict[str, Any], runners: dict[str, Any], agree_of: Callable[[Any], Any], failed: dict[str, str],
                   *, skip: Callable[[Any], bool] = lambda c: False) -> dict[str, Any]:
    """Each worker's logits on its model's agreement inputs (in chunks of at most 8, or the engine's profile maximum)."""
    out: dict[str, Any] = {}
    for c in cands:
        if c.key not in workers or skip(c):
            continue
        chunk = min(8, runners[c.key].get("profile_batch", [1, 8, 8])[2] if c.backend == "trt" else 8)
        try:
            out[c.key] = workers[c.key].call("logits", (agree_of(c), chunk))
        except WorkerError as e:
            failed[c.key] = str(e)
            workers.pop(c.key).close()
    return out


def round_order(keys: Sequence[str], r: int) -> list[str]:
    """The workers' order in round ``r``: rotated by ``r``, reversed every other round."""
    keys = list(keys)
    if not keys:
        return []
    order = keys[r % len(keys):] + keys[: r % len(keys)]
    return order[::-1] if r % 2 else order


def _drop(k: str, b: int, e: WorkerError, workers: dict, keys: list, failed: dict) -> None:
    failed[k] = f"batch {b}: {e}"
    if k in keys:
        keys.remove(k)
    w = workers.pop(k, None)
    if w is not None:
        w.close()


def _warm_up(workers: dict[str, Any], keys: list[str], b: int, warmup: int, failed: dict[str, str]) -> None:
    """``warmup`` untimed calls of every worker at batch ``b`` (a failing worker is dropped)."""
    for k in list(keys) if warmup else ():
        try:
            workers[k].call("time", (b, warmup))
        except WorkerError as e:
            _drop(k, b, e, workers, keys, failed)


def time_rounds(workers: dict[str, Any], batch_sizes: Sequence[int], *, iters: int, warmup: int, round_iters: int, pause_ms: float,
                failed: dict[str, str], progress: bool = False, after_batch: Callable[[int], None] | None = None
                ) -> dict[tuple[str, int], list[float]]:
    """Per-call seconds of every worker at every batch size: warm-up, then interleaved rounds (a failing worker is dropped).
    ``after_batch(b)`` is called once each batch size is done (the run checks the machine's load there)."""
    keys = list(workers)
    samples: dict[tuple[str, int], list[float]] = {(k, b): [] for k in keys for b in batch_sizes}
    bar = _bar(len(keys) * len(batch_sizes) * iters, "time", "call", progress)
    for b in batch_sizes:
        _warm_up(workers, keys, b, warmup, failed)
        for r in range(math.ceil(iters / round_iters)):
            n = min(round_iters, iters - r * round_iters)
            for k in round_order(keys, r):
                if k not in workers:
                    continue
                try:
                    samples[(k, b)] += workers[k].call("time", (b, n))
                except WorkerError as e:
                    _drop(k, b, e, workers, keys, failed)
                    continue
                bar.update(n)
                if pause_ms:
                    time.sleep(pause_ms / 1e3)
        if after_batch is not None:
            after_batch(b)
    bar.close()
    return samples


@dataclass
class Timing:
    """What :func:`time_bursts` measured per (row key, batch): steady calls, the first call of each burst, and the part of
    each steady call spent in the library (the rest is the runner's own per-call work: checks, copies)."""

    steady: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    cold: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    inner: dict[tuple[str, int], list[float]] = field(default_factory=dict)


def time_bursts(workers: dict[str, Any], batch_sizes: Sequence[int], *, rounds: int, burst_s: float, min_calls: int, warmup: int,
                pause_ms: float, failed: dict[str, str], max_calls: int = 500, progress: bool = False,
                after_batch: Callable[[int], None] | None = None, after_round: Callable[[int, int], None] | None = None) -> Timing:
    """Warm-up, then ``rounds`` interleaved rounds of one burst per worker at every batch size (a failing worker is dropped).
    ``after_round(b, r)`` is called after round ``r`` of batch ``b`` (the run's peer tools run there, between the rounds),
    ``after_batch(b)`` once batch ``b`` is done."""
    keys = list(workers)
    t = Timing({(k, b): [] for k in keys for b in batch_sizes}, {(k, b): [] for k in keys for b in batch_sizes},
               {(k, b): [] for k in keys for b in batch_sizes})
    bar = _bar(len(keys) * len(batch_sizes) * rounds, "time", "burst", progress)
    for b in batch_sizes:
        _warm_up(workers, keys, b, warmup, failed)
        for r in range(rounds):
            for k in round_order(keys, r):
                if k not in workers:
                    continue
                if pause_ms:
                    time.sleep(pause_ms / 1e3)
                try:
                    got = workers[k].call("burst", (b, burst_s, min_calls, max_calls))
                except WorkerError as e:
                    _drop(k, b, e, workers, keys, failed)
                    continue
                t.cold[(k, b)].append(got["cold"])
                t.steady[(k, b)] += got["steady"]
                t.inner[(k, b)] += got["inner"]
                bar.update(1)
            if after_round is not None:
                after_round(b, r)
        if after_batch is not None:
            after_batch(b)
    bar.close()
    return t


def close_workers(workers: dict[str, Any], runners: dict[str, Any]) -> list[str]:
    """Close every worker; the compiled ones first report their compile times (returned as notes)."""
    notes = []
    for k, w in workers.items():
        if runners.get(k, {}).get("compiled"):
            try:
                runners[k] = w.call("describe")
            except WorkerError:
                pass
            took = ", ".join(f"{v:.0f} s (batch {b})" for b, v in sorted(runners[k].get("compile_s", {}).items(), key=lambda kv: int(kv[0])))
            if took:
                notes.append(f"{k}: torch.compile took {took} on the first call of each batch size; that was warm-up, not timed.")
        w.close()
    workers.clear()
    return notes
