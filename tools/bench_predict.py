"""pawlens-predict on a folder against each of its stages alone, in one run: is a folder as fast as its slowest stage?

    .venv/bin/python tools/bench_predict.py runs/export/NAME/best.int8.onnx ../shared/data/catsdogs
    .venv/bin/python tools/bench_predict.py MODEL FOLDER --workers 2 --batch-size 8 --limit 600 --rounds 2 --json r.json

Each round times, one after another on the same files (sorted, every k-th when ``--limit`` is given):

- decode alone: ``load_image`` over the files, in this thread and on a pool of ``--workers`` threads (OpenCV's own
  threads set to 1 on the pools, as the pipeline sets them);
- preprocess alone: ``preprocess_numpy`` of each decoded image (decoded untimed, 64 at a time), in this thread and on
  the pool;
- decode + preprocess on the pool (what the pipeline's workers do: ``runtime.media.prepared_frames``);
- inference alone: the runner on batches already preprocessed (``--batch-size``, the same groups as predict's), once
  before the predict rows and once more after them on a fresh runner; the stage's rate is from both;
- predict serial (``predict_sources(workers=0)``) and predict pipelined (``workers=--workers``), without Grad-CAM or
  files written; their rate is from the first file read to the last result (model loading left out).  OpenVINO
  compiles the ``--batch-size`` shape when the model loads, and any other batch size on its first call, inside this
  time (the last, smaller batch is usually padded instead); ``excl. compile`` is the rate without those seconds (the
  runner's ``compile_s``).

It prints images/s and CPU milliseconds per image (all threads) for each, and the ratio pipelined / slowest stage
alone, where the slowest stage is the slowest of decode, preprocess (both on the pool) and inference.  On a machine
with few cores the stages share them, so the pipeline can also be compared with ``cores / (CPU s per image of all
stages)``, the rate at which the stages' CPU time alone would fill every core (printed as ``CPU bound``).  Each round
also says how much of the machine other processes used meanwhile (Linux only): timings taken beside other work are not
comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/bench_predict.py` from a checkout that is not pip-installed
    sys.path.insert(0, ROOT)

from pawlens.console import HelpFormatter  # noqa: E402
from pawlens.models.preprocess import IMAGE_EXTENSIONS, load_image, preprocess_numpy  # noqa: E402
from pawlens.runtime.media import default_workers, frames_ahead, list_media, prepared_frames  # noqa: E402
from pawlens.runtime.predict import predict_sources  # noqa: E402


def _cpu_jiffies() -> tuple[int, int] | None:
    """(all, idle) CPU jiffies since boot from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(v), v[3] + v[4]


class Clock:
    """Wall and process CPU seconds of a block (``with Clock() as c: ...; c.wall, c.cpu``)."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w0, time.process_time() - self.c0


def _row(name: str, n: int, wall: float, cpu: float) -> dict:
    return {"stage": name, "images": n, "wall_s": round(wall, 3), "images_per_s": round(n / wall, 1) if wall > 0 else None,
            "cpu_ms_per_image": round(cpu * 1e3 / n, 2) if n else None}


def _decode(files: list[str], workers: int) -> list[dict]:
    with Clock() as c1:
        for f in files:
            load_image(f)
    with _opencv_threads(1), Clock() as cn, ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(load_image, files):
            pass
    return [_row("decode alone, 1 thread", len(files), c1.wall, c1.cpu), _row(f"decode alone, {workers} threads", len(files), cn.wall, cn.cpu)]


def _time_infer(runner, xs, batch: int) -> tuple[float, float]:
    """Wall and CPU seconds of the runner's calls on ``xs`` in groups of ``batch`` (the same groups as predict's)."""
    wall = cpu = 0.0
    for j in range(0, len(xs), batch):
        x = xs[j : j + batch]
        with Clock() as c:
            runner.infer(x)
        wall, cpu = wall + c.wall, cpu + c.cpu
    return wall, cpu


def _preprocess_and_infer(files: list[str], cfg, runner, workers: int, batch: int) -> list[dict]:
    """Preprocess alone (1 thread, pool) and inference alone, 64 decoded images at a time (decoding untimed)."""
    import numpy as np

    t = {k: [0.0, 0.0] for k in ("pre1", "pren", "infer")}

    def add(key, clock):
        t[key][0] += clock.wall
        t[key][1] += clock.cpu

    with ThreadPoolExecutor(workers) as pool:
        for i in range(0, len(files), 64):
            imgs = [load_image(f) for f in files[i : i + 64]]
            with Clock() as c:
                xs = [preprocess_numpy([im], cfg)[0] for im in imgs]
            add("pre1", c)
            with _opencv_threads(1), Clock() as c:
                list(pool.map(lambda im: preprocess_numpy([im], cfg)[0], imgs))
            add("pren", c)
            wall, cpu = _time_infer(runner, np.stack(xs), batch)
            t["infer"][0] += wall
            t["infer"][1] += cpu
    n = len(files)
    return [_row("preprocess alone, 1 thread", n, *t["pre1"]), _row(f"preprocess alone, {workers} threads", n, *t["pren"]),
            _row(f"inference alone (batch {batch})", n, *t["infer"])]


def _warm_up(runner, cfg, n_files: int, batch: int) -> None:
    """One untimed call at each batch size the rows use (``batch`` and the last, smaller one), so the timed loops hold
    no first-call cost: on OpenVINO ``batch`` was compiled at activation, and the smaller one is usually padded to it
    rather than compiled."""
    import numpy as np

    for n in {batch, n_files % batch or batch}:
        runner.infer(np.zeros((n, 3, cfg.input_size, cfg.input_size), np.float32))


def _infer_again(model: str, files: list[str], backend: str, batch: int) -> dict:
    """Inference alone once more, on a fresh runner after the predict rows (decoding and preprocessing untimed): the
    stage's rate is then taken from before and after the runs it is compared with, so drift of the machine's speed
    over the round (tens of percent on a shared VM) does not fall on one side only."""

    from pawlens.runtime.factory import make_runner

    runner = make_runner(model, backend=backend, batch=batch)
    cfg = runner.meta.preprocess
    wall = cpu = 0.0
    with runner:
        _warm_up(runner, cfg, len(files), batch)
        for i in range(0, len(files), 64):
            w, c = _time_infer(runner, preprocess_numpy([load_image(f) for f in files[i : i + 64]], cfg), batch)
            wall, cpu = wall + w, cpu + c
    return _row(f"inference alone (batch {batch}), after", len(files), wall, cpu)


def _prepare_pool(files: list[str], cfg, workers: int, batch: int) -> dict:
    """What the pipeline's workers do, alone: ``prepared_frames`` with nobody inferring."""
    with Clock() as c, prepared_frames(files, cfg, workers=workers, ahead=frames_ahead(batch, workers)) as items:
        for _ in items:
            pass
    return _row(f"decode + preprocess, {workers} threads", len(files), c.wall, c.cpu)


@contextlib.contextmanager
def _opencv_threads(n: int):
    """OpenCV's own threads set to ``n`` inside the block, as the pipeline sets them (1) beside its workers."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _predict(model: str, files: list[str], backend: str, batch: int, workers: int) -> dict:
    c0 = time.process_time()
    results, info = predict_sources(model, files, backend=backend, batch_size=batch, workers=workers, progress=False)
    t = info["throughput"]
    name = "predict serial (--workers 0)" if workers == 0 else f"predict pipelined (--workers {workers})"
    row = _row(name, t["frames"], t["wall_s"], time.process_time() - c0)  # CPU includes loading the model
    row["busy_s"] = {k: t[f"{k}_s"] for k in ("decode", "preprocess", "infer")}
    # the --batch-size shape is compiled in activate(), before the timed loop; any other one inside it
    compile_s = sum(v for k, v in (info.get("compile_s") or {}).items() if str(k) != str(batch))
    row["compile_s"] = round(compile_s, 3)
    row["images_per_s_excl_compile"] = round(t["frames"] / (t["wall_s"] - compile_s), 1) if t["wall_s"] > compile_s else None
    return row


def bench_round(model: str, files: list[str], *, backend: str, workers: int, batch: int) -> dict:
    """One round of every row; returns ``{"rows": [...], "ratio": pipelined / slowest stage, "cpu_bound": ...}``."""
    from pawlens.runtime.factory import make_runner

    j0, c0 = _cpu_jiffies(), time.process_time()
    runner = make_runner(model, backend=backend, batch=batch)  # as predict_sources makes it
    cfg = runner.meta.preprocess
    with runner:
        _warm_up(runner, cfg, len(files), batch)
        rows = _decode(files, workers)
        rows += _preprocess_and_infer(files, cfg, runner, workers, batch)
        desc = runner.describe()
    rows.append(_prepare_pool(files, cfg, workers, batch))
    rows.append(_predict(model, files, backend, batch, 0))
    rows.append(_predict(model, files, backend, batch, workers))
    pipelined_row = rows[-1]
    rows.append(_infer_again(model, files, backend, batch))
    by = {r["stage"]: r for r in rows}
    before, after = by[f"inference alone (batch {batch})"], by[f"inference alone (batch {batch}), after"]
    infer = _row(f"inference alone (batch {batch}), before and after", len(files), (before["wall_s"] + after["wall_s"]) / 2,
                 (before["cpu_ms_per_image"] + after["cpu_ms_per_image"]) * len(files) / 2e3)
    rows.append(infer)
    stages = [by[f"decode alone, {workers} threads"], by[f"preprocess alone, {workers} threads"], infer]
    slowest = min(stages, key=lambda r: r["images_per_s"])
    cpu_ms = by["decode alone, 1 thread"]["cpu_ms_per_image"] + by["preprocess alone, 1 thread"]["cpu_ms_per_image"] + \
        infer["cpu_ms_per_image"]
    pipelined = pipelined_row["images_per_s"]
    j1, c1 = _cpu_jiffies(), time.process_time()
    others = None
    if j0 and j1 and j1[0] > j0[0]:
        hz = os.sysconf("SC_CLK_TCK")
        others = round(max(0.0, (j1[0] - j0[0] - (j1[1] - j0[1])) / hz - (c1 - c0)) / ((j1[0] - j0[0]) / hz), 3)
    return {"rows": rows, "slowest": slowest["stage"], "ratio": round(pipelined / slowest["images_per_s"], 3),
            "ratio_excl_compile": round((pipelined_row["images_per_s_excl_compile"] or 0) / slowest["images_per_s"], 3),
            "other_processes_cpu_share": others,
            "cpu_bound_images_per_s": round((os.cpu_count() or 1) * 1e3 / cpu_ms, 1),
            "speedup_vs_serial": round(pipelined / by["predict serial (--workers 0)"]["images_per_s"], 3), "runner": desc}


def format_round(r: dict) -> str:
    lines = [f"{'stage':44s} {'images/s':>9s} {'CPU ms/img':>10s} {'wall s':>7s}  excl. compile"]
    for row in r["rows"]:
        extra = f"  {row['images_per_s_excl_compile']:.1f} ({row['compile_s']:.2f} s compiling)" if "compile_s" in row else ""
        lines.append(f"{row['stage']:44s} {row['images_per_s']:9.1f} {row['cpu_ms_per_image']:10.2f} {row['wall_s']:7.2f}{extra}")
    lines.append(f"pipelined / slowest stage alone ({r['slowest']}): {r['ratio']:.2f} ({r['ratio_excl_compile']:.2f} excl. compile); "
                 f"pipelined / serial: {r['speedup_vs_serial']:.2f}; CPU bound ({os.cpu_count()} cores / the stages' CPU per image): "
                 f"{r['cpu_bound_images_per_s']:.1f} images/s")
    if r["other_processes_cpu_share"] is not None:
        lines.append(f"other processes used {100 * r['other_processes_cpu_share']:.1f}% of the CPU during this round")
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("model", help="an exported model (.onnx, .pt, .engine)")
    p.add_argument("folder", help=f"a folder of images ({', '.join(IMAGE_EXTENSIONS)}), searched recursively")
    p.add_argument("--backend", default="auto", help="inference backend, as pawlens-predict's --backend")
    p.add_argument("--workers", type=int, default=default_workers(), help="decode threads of the pipelined run and the pools")
    p.add_argument("--batch-size", type=int, default=8, help="frames per inference call")
    p.add_argument("--limit", type=int, default=0, help="use at most this many files, evenly spread (0: all)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every row this many times (timings move between rounds)")
    p.add_argument("--json", default=None, help="also write the rounds to this JSON file")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    files = [f for f in list_media(args.folder) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if args.limit and len(files) > args.limit:
        files = files[:: -(-len(files) // args.limit)]
    if not files or args.workers < 1:
        print(f"bench_predict: error: {'no images in ' + args.folder if not files else '--workers must be >= 1'}", file=sys.stderr)
        return 2
    print(f"{len(files)} images from {args.folder}; {os.cpu_count()} CPU cores; load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    rounds = []
    for i in range(args.rounds):
        r = bench_round(args.model, files, backend=args.backend, workers=args.workers, batch=args.batch_size)
        rounds.append(r)
        print(f"\nround {i + 1} ({r['runner'].get('backend')} {r['runner'].get('precision', '')}):\n{format_round(r)}")
    if len(rounds) > 1:
        ratios, excl = [r["ratio"] for r in rounds], [r["ratio_excl_compile"] for r in rounds]
        print(f"\npipelined / slowest stage over {len(rounds)} rounds: median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-"
              f"{max(ratios):.2f}); excl. compile: median {statistics.median(excl):.2f} (range {min(excl):.2f}-{max(excl):.2f})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": args.model, "folder": args.folder, "images": len(files), "rounds": rounds}, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
