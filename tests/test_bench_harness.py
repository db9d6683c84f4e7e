"""bench.harness on its own: a tiny job in a child process, a runner in its own worker process, errors in one line."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pawlens.bench.candidates import checkpoint_candidates
from pawlens.bench.harness import InlineWorker, ProcessWorker, WorkerError, run_in_child, worker_env
from pawlens.models.preprocess import PreprocessConfig


def test_a_tiny_job_runs_in_a_child_process():
    out = run_in_child("pawlens.bench.extras:measure_overhead", PreprocessConfig.for_size(32), 2, 3, env={"OMP_NUM_THREADS": "1"})
    assert out["overhead_frame"] == "640x480" and out["overhead_ms"] == pytest.approx(out["preprocess_ms"] + out["softmax_ms"])
    assert out["preprocess_ms"] > 0


def test_only_listed_functions_run_in_a_child():
    with pytest.raises(WorkerError, match="not a worker function: os:getcwd"):
        run_in_child("os:getcwd")


def test_worker_env_bounds_the_openmp_spin():
    assert worker_env(None, False) == {"GOMP_SPINCOUNT": "20000"}
    assert worker_env(2, True) == {"OMP_NUM_THREADS": "2"}


def test_process_worker_times_a_runner_in_its_own_process(tiny_checkpoint):
    c = checkpoint_candidates(str(tiny_checkpoint), devices=["cpu"], bf16=False, compile=False)[0]
    c.threads = 1
    w = ProcessWorker(c)
    try:
        assert w.pid != os.getpid()
        x = np.zeros((3, 3, 32, 32), np.float32)
        assert w.call("inputs", {3: x}) is True
        times = w.call("time", (3, 4))
        assert len(times) == 4 and all(t > 0 for t in times)
        logits = w.call("logits", (np.zeros((5, 3, 32, 32), np.float32), 2))
        assert logits.shape == (5, 2)
        assert w.call("describe")["name"] == "torch-fp32"
        with pytest.raises(WorkerError):
            w.call("time", (7, 1))  # no inputs of batch 7: a one-line error, the worker lives on
        assert len(w.call("time", (3, 1))) == 1
    finally:
        w.close()


def test_a_candidate_that_cannot_load_fails_in_one_line(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    c = checkpoint_candidates(str(bad), devices=["cpu"], bf16=False, compile=False)[0]
    for make in (ProcessWorker, InlineWorker):
        with pytest.raises(WorkerError) as e:
            make(c)
        assert "broken.pt" in str(e.value) and "\n" not in str(e.value)


class FakeRunner:
    """Stands in for a runtime runner: returns the batch's mean per image as two logits."""

    def __init__(self):
        self.active = False

    def activate(self):
        self.active = True

    def deactivate(self):
        self.active = False

    def describe(self):
        return {"name": "fake"}

    def infer(self, x):
        m = x.reshape(len(x), -1).mean(axis=1)
        return np.stack([m, -m], axis=1)


def test_inline_worker_serves_the_same_commands(tiny_checkpoint):
    c = checkpoint_candidates(str(tiny_checkpoint), devices=["cpu"], bf16=False, compile=False)[0]
    fake = FakeRunner()
    w = InlineWorker(c, runner=fake)
    assert fake.active and w.pid == os.getpid()
    x = np.arange(4 * 3, dtype=np.float32).reshape(4, 3, 1, 1)
    assert np.allclose(w.call("logits", (x, 3))[:, 0], [1, 4, 7, 10])
    w.call("inputs", {2: x[:2]})
    assert len(w.call("time", (2, 5))) == 5
    w.close()
    assert not fake.active
