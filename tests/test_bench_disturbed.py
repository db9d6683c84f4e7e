"""A disturbed run is flagged: a busy machine (two spinning processes) or a row above its compute ceiling."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from pawlens.bench.machine import disturbance, load_check, runnable_others
from pawlens.bench.report import document
from pawlens.bench.results import BenchResult, BenchRow


def _spin(stop, ready):
    ready.release()
    while not stop.is_set():  # the shared Event's lock is taken only between long pure-Python runs: never a wait
        for _ in range(200_000):
            pass


@pytest.fixture()
def two_spinning_processes():
    ctx = mp.get_context("spawn")
    stop, ready = ctx.Event(), ctx.Semaphore(0)
    procs = [ctx.Process(target=_spin, args=(stop, ready), daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    for _ in procs:  # a spawned interpreter re-imports this module first: seconds on a loaded machine, so wait for each
        assert ready.acquire(timeout=60), "a spinning process did not start within 60 s"
    time.sleep(0.2)
    yield procs
    stop.set()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join(5)


@pytest.mark.skipif(runnable_others() is None, reason="needs Linux /proc/stat")
def test_a_busy_machine_is_flagged(two_spinning_processes):
    c = load_check(cores=1, when="during the test")
    assert c["runnable"] >= 2 and c["busy"], c
    why = disturbance([c, {**c, "busy": False, "when": "quiet"}], [])
    assert len(why) == 1 and why[0].startswith("during the test: load average") and "1 cores" in why[0]
    assert all(p.is_alive() for p in two_spinning_processes)


def test_only_threads_running_now_make_the_machine_busy(monkeypatch):
    """A high load average alone (it lags a minute: the demo's own training just before its bench) is no neighbour;
    one other runnable thread on 2 cores is."""
    from pawlens.bench import machine

    monkeypatch.setattr(machine, "load_average", lambda: (2.4, 1.9, 1.2))
    monkeypatch.setattr(machine, "runnable_others", lambda: 0)
    quiet = load_check(cores=2, samples=3, interval_s=0.0)
    assert quiet["load_avg"] == (2.4, 1.9, 1.2) and quiet["runnable"] == 0 and not quiet["busy"]
    counts = iter([1, 0, 1])
    monkeypatch.setattr(machine, "runnable_others", lambda: next(counts))
    assert load_check(cores=2, samples=3, interval_s=0.0)["busy"]  # the median instant has a neighbour running
    monkeypatch.setattr(machine, "runnable_others", lambda: 1)
    assert not load_check(cores=4, samples=3, interval_s=0.0)["busy"]  # one neighbour on 4 cores leaves most of them


def test_a_row_above_its_ceiling_flags_the_run_and_the_report_says_so():
    fast = BenchRow("ort-int8@m.onnx", "ONNX Runtime INT8", "ort", "int8", "cpu", 8)
    fast.of_gemm = 1.3
    ok = BenchRow("torch-fp32", "PyTorch fp32 eager", "torch", "fp32", "cpu", 8)
    ok.of_gemm = 0.9
    why = disturbance([], [fast, ok])
    assert why == ["ONNX Runtime INT8 at batch 8 reads 130% of the int8 GEMM ceiling measured in this run (over 120%: the ceiling "
                   "was measured while the machine was busy)"]
    ok.of_gemm = 1.1  # within the tolerance: a quiet run's convolutions read up to ~113% of a 2048^3 product
    assert disturbance([], [ok]) == []
    s = {"arch": "baseline", "input_size": 32, "embedded_default": False, "isolation": "inline", "warmup": 0, "iters": 1,
         "round_iters": 1, "pause_ms": 0, "threads": None, "cpu": "x", "cores": 2, "cpu_flags": [], "gpu": None,
         "agreement_data": "synthetic", "load_avg_start": None, "load_avg_end": None, "versions": {}, "seconds": 0,
         "disturbed": True, "disturbed_why": why}
    md = document(BenchResult([fast, ok], s, {}, [], [], {}, [])).markdown()
    assert md.split("\n")[2].startswith("> **Disturbed run**: ONNX Runtime INT8 at batch 8 reads 130%")
