"""``pawlens bench --server URL``: served throughput and latency per client concurrency, beside the same artifact
in-process, in one run.

    pawlens bench --server grpc://127.0.0.1:8001 --concurrency 1,4,16 --requests 2000 --models runs/export/lite0/best.int8.onnx

Each concurrency level runs ``--requests`` batch-1 requests from that many closed-loop clients (threads, each with its
own Triton client, each sending its next request when the last one is answered) after an untimed warm-up.  A row
gives throughput (answered requests per second of the level's wall time), p50/p90/p99 of the answered requests'
round trips, and its errors (counted, the first few kept).  The in-process rows run the artifact on this machine's
runner (the same :func:`pawlens.runtime.factory.make_runner` the Python-backend model uses): batch 1 back to back
(the latency a served p50 is compared with), and batch = the largest concurrency (what batching can reach).

The clients share this machine's cores with the server when both are local: the served figures then include the load
generator's own CPU time, as any single-machine measurement does.  Figures go to ``serving.json`` and ``serving.md``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from pawlens.errors import InputError, one_line
from pawlens.fs import atomic_write_text, ensure_writable_dir
from pawlens.runtime.formats import ENGINE, ONNX

#: The figures this bench is held to (issue 22).
GOALS = {"errors_at_16": 0, "throughput_16_over_1": 1.5, "p50_c1_minus_in_process_ms": 2.0}


@dataclass
class Row:
    name: str  # "served c=4" / "in-process b=1"
    concurrency: int
    batch: int
    requests: int
    answered: int
    errors: int
    seconds: float
    throughput: float  # images per second
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    first_errors: list[str] = field(default_factory=list)


def _pct(ms: list[float], q: float) -> float | None:
    return round(float(np.percentile(ms, q)), 3) if ms else None


def _row(name: str, conc: int, batch: int, n: int, lat_s: list[float], errors: list[str], wall: float) -> Row:
    ms = [t * 1e3 for t in lat_s]
    return Row(name, conc, batch, n, len(lat_s), len(errors), round(wall, 3), round(len(lat_s) * batch / wall, 2) if wall > 0 else 0.0,
               _pct(ms, 50), _pct(ms, 90), _pct(ms, 99), errors[:5])


class Level:
    """``concurrency`` closed-loop clients that run batch-1 requests in chunks: :meth:`run` sends ``n`` more,
    :meth:`row` sums them up (chunks let a level be interleaved with others).  Each client is a thread of its own that
    makes its :class:`TritonRunner` and keeps it: Triton's HTTP client (gevent) works only in the thread that made it."""

    def __init__(self, url: str, model: str | None, concurrency: int, x: np.ndarray, *, send: str = "tensor", image: bytes | None = None,
                 shared_memory: str = "auto", timeout: float = 30.0, warmup: int = 2):
        import queue

        self.concurrency, self.x, self.send, self.image = int(concurrency), x, send, image
        self.lat: list[float] = []
        self.errors: list[str] = []
        self.wall = 0.0
        self.sent = 0
        self._jobs = [queue.Queue() for _ in range(self.concurrency)]
        self._done: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i, url, model, timeout, shared_memory, warmup), daemon=True)
                         for i in range(self.concurrency)]
        for t in self._threads:
            t.start()
        replies = [self._done.get() for _ in range(self.concurrency)]
        failed = [r[1] for r in replies if r[0] == "failed"]
        if failed:
            self.close()
            raise failed[0]
        self.transport = replies[0][1] if send == "tensor" else "network"

    def _call(self, r) -> None:
        if self.send == "image":
            r.infer_images([self.image])
        else:
            r.infer(self.x)

    def _client(self, i: int, url, model, timeout, shared_memory, warmup) -> None:
        from pawlens.serve.client import TritonRunner

        try:
            r = TritonRunner(url, model=model, timeout=timeout, shared_memory=shared_memory).activate()
            for _ in range(warmup):
                self._call(r)
        except Exception as e:
            self._done.put(("failed", e))
            return
        self._done.put(("ready", r.transport))
        while True:
            counter = self._jobs[i].get()
            if counter is None:
                r.deactivate()
                return
            mine: list[float] = []
            errs: list[str] = []
            while True:
                with self._lock:
                    k = next(counter, None)
                if k is None:
                    break
                t0 = time.perf_counter()
                try:
                    self._call(r)
                    mine.append(time.perf_counter() - t0)
                except Exception as e:  # a served error is a figure of this row, not the end of the bench
                    errs.append(one_line(e, 200, with_type=False))
            with self._lock:
                self.lat.extend(mine)
                self.errors.extend(errs)
            self._done.put(("chunk", None))

    def run(self, n: int) -> None:
        counter = iter(range(n))
        t0 = time.perf_counter()
        for q in self._jobs:
            q.put(counter)
        for _ in self._jobs:
            self._done.get()
        self.wall += time.perf_counter() - t0
        self.sent += n

    def close(self) -> None:
        """End the clients; each deactivates its runner (unregisters and removes its shared-memory region) before this returns."""
        for q in self._jobs:
            q.put(None)
        for t in self._threads:
            t.join(30)

    def row(self) -> Row:
        self.close()
        how = "images" if self.send == "image" else self.transport
        return _row(f"served c={self.concurrency} ({how})", self.concurrency, 1, self.sent, self.lat, self.errors, self.wall)


class InProcess:
    """The artifact on this machine's runner (the one the Python-backend model makes), calls of ``batch`` back to back."""

    def __init__(self, path: str, batch: int, x1: np.ndarray):
        from pawlens.runtime.factory import make_runner

        self.batch, self.x = batch, np.repeat(x1, batch, axis=0)
        self.runner = make_runner(path, batch=batch).activate()
        if hasattr(self.runner, "prepare"):
            self.runner.prepare(batch)
        for _ in range(3):
            self.runner.infer(self.x)
        self.lat: list[float] = []
        self.wall = 0.0

    def run(self, n: int) -> None:
        t_start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            self.runner.infer(self.x)
            self.lat.append(time.perf_counter() - t0)
        self.wall += time.perf_counter() - t_start

    def row(self) -> Row:
        name = f"in-process b={self.batch} ({self.runner.backend})"
        self.runner.deactivate()
        return _row(name, 1, self.batch, len(self.lat), self.lat, [], self.wall)


def find_artifact(sha: str, roots: Sequence[str] = ("runs/export",)) -> str | None:
    """A local file whose sha256 is ``sha`` (the served model's ``pawlens.artifact_sha256``), under ``roots``."""
    from pawlens.fs import sha256_file

    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f.endswith((ONNX, ENGINE)):
                    p = os.path.join(dirpath, f)
                    try:
                        if sha256_file(p) == sha:
                            return p
                    except OSError:
                        continue
    return None


def goals(rows: list[Row]) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for the issue's three figures, where the rows hold them (each transport on its own)."""
    def how(r: Row) -> str:
        return r.name.split(" (", 1)[1].rstrip(")") if " (" in r.name else ""

    served = [r for r in rows if r.name.startswith("served ")]
    inp = next((r for r in rows if r.name.startswith("in-process b=1")), None)
    out = []
    for c16 in (r for r in served if r.concurrency == 16):
        out.append((f"0 errors at c=16 ({how(c16)})", f"{c16.errors} of {c16.requests}", c16.errors == GOALS["errors_at_16"]))
        c1 = next((r for r in served if r.concurrency == 1 and how(r) == how(c16)), None)
        if c1 and c1.throughput:
            ratio = c16.throughput / c1.throughput
            out.append((f"throughput c=16 >= {GOALS['throughput_16_over_1']}x c=1 ({how(c16)})", f"{ratio:.2f}x",
                        ratio >= GOALS["throughput_16_over_1"]))
    for c1 in (r for r in served if r.concurrency == 1):
        if inp and c1.p50_ms is not None and inp.p50_ms is not None:
            d = c1.p50_ms - inp.p50_ms
            out.append((f"served p50 at c=1 within {GOALS['p50_c1_minus_in_process_ms']} ms of in-process ({how(c1)})", f"{d:+.2f} ms",
                        d <= GOALS["p50_c1_minus_in_process_ms"]))
    return out


def to_markdown(res: dict[str, Any]) -> str:
    lines = [f"# Served vs in-process: {res['model']} at {res['url']}", "",
             f"{res['requests']} batch-1 requests per level ({res['send']}s); in-process: `{res.get('artifact') or '-'}`; "
             f"{res['machine']}", "",
             "| row | clients | batch | answered | errors | images/s | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {r['name']} | {r['concurrency']} | {r['batch']} | {r['answered']} | {r['errors']} | {r['throughput']:.1f} | "
                     f"{f(r['p50_ms'])} | {f(r['p90_ms'])} | {f(r['p99_ms'])} |")
    if res.get("goals"):
        lines += ["", "| goal | measured | met |", "|---|---|---|"] + [f"| {g} | {m} | {'yes' if ok else '**no**'} |" for g, m, ok in res["goals"]]
    errs = [(r["name"], e) for r in res["rows"] for e in r["first_errors"]]
    if errs:
        lines += ["", "First errors:"] + [f"- {n}: {e}" for n, e in errs[:10]]
    if res.get("note"):
        lines += ["", res["note"]]
    return "\n".join(lines) + "\n"


def run_serving(url: str, *, model: str | None = None, concurrency: Sequence[int] = (1, 4, 16), requests: int = 2000,
                artifact: str | None = None, send: str = "tensor", out: str | None = None, image: str | None = None,
                progress: bool = True, shared_memory: str = "auto", rounds: int = 10) -> dict[str, Any]:
    """The whole bench (see the module docstring); returns what ``serving.json`` holds."""
    from pawlens.bench.machine import cpu_name
    from pawlens.models.preprocess import load_image, preprocess_numpy
    from pawlens.serve.client import TritonRunner
    from pawlens.serve.repository import config_params
    from pawlens.synthetic import synthetic_image

    if requests < 1 or not concurrency or min(concurrency) < 1:
        raise InputError("--requests and every --concurrency level must be >= 1")
    probe = TritonRunner(url, model=model)
    model = probe.model
    cfg = probe.meta.preprocess
    sha = config_params(probe.config).get("pawlens.artifact_sha256", "")
    probe.deactivate()
    if image:
        with open(image, "rb") as f:
            raw = f.read()
        frame = load_image(image)
    else:
        import io

        from PIL import Image

        frame = synthetic_image(0, size=cfg.resize_size, rng=np.random.default_rng(0))
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=90)
        raw = buf.getvalue()
    x1 = preprocess_numpy([frame], cfg)
    note = ""
    if artifact is None and sha:
        artifact = find_artifact(sha)
        if artifact is None:
            note = "No in-process rows: no local file has the served artifact's sha256 under runs/export; pass --models FILE."
    rows: list[Row] = []
    levels = [int(c) for c in concurrency]
    # Concurrency 1 and in-process batch 1, interleaved in rounds: the speed of these machines drifts by tens of percent
    # over minutes, so figures taken one after the other would compare two different machines.
    first: list = []
    if artifact:
        first.append(InProcess(artifact, 1, x1))
    if 1 in levels:
        lv = Level(url, model, 1, x1, send=send, image=raw, shared_memory=shared_memory)
        first.append(lv)
        if lv.transport == "shared memory":  # the network path too, so both are on record
            first.append(Level(url, model, 1, x1, send=send, image=raw, shared_memory="off"))
    if first:
        if progress:
            print(f"pawlens-bench: {', '.join(type(f).__name__ for f in first)} at concurrency 1, {rounds} interleaved rounds ...", flush=True)
        per = max(1, requests // rounds)
        for _ in range(rounds):
            for f in first:
                f.run(per)
        rows += [f.row() for f in first]
    for c in levels:
        if c == 1:
            continue
        if progress:
            print(f"pawlens-bench: served, {c} clients, {requests} requests ...", flush=True)
        lv = Level(url, model, c, x1, send=send, image=raw, shared_memory=shared_memory)
        lv.run(requests)
        rows.append(lv.row())
    if artifact and max(levels) > 1:
        b = InProcess(artifact, max(levels), x1)
        b.run(max(20, min(requests // max(levels), 200)))
        rows.append(b.row())
    res = {"url": url, "model": model, "send": send, "requests": requests, "artifact": artifact, "machine": f"{cpu_name()}, {os.cpu_count()} cores",
           "rows": [asdict(r) for r in rows], "goals": goals(rows), "note": note}
    if out:
        ensure_writable_dir(out)
        atomic_write_text(os.path.join(out, "serving.json"), json.dumps(res, indent=2) + "\n")
        atomic_write_text(os.path.join(out, "serving.md"), to_markdown(res))
        res["files"] = [os.path.join(out, "serving.json"), os.path.join(out, "serving.md")]
    return res
