"""bench.schedule on its own: fake workers, so the interleaving, warm-up and failure handling are exact."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pawlens.bench.harness import WorkerError
from pawlens.bench.schedule import close_workers, collect_logits, round_order, start_workers, time_rounds


class FakeWorker:
    """Answers "time" with fixed per-call seconds and logs every call in a shared list."""

    def __init__(self, key: str, log: list, seconds: float, fail_at_batch: int | None = None):
        self.key, self.log, self.seconds, self.fail_at_batch = key, log, seconds, fail_at_batch
        self.closed = False

    def call(self, cmd, arg=None):
        self.log.append((self.key, cmd, arg))
        if cmd == "time":
            b, n = arg
            if b == self.fail_at_batch:
                raise WorkerError(f"{self.key} broke")
            return [self.seconds] * n
        if cmd == "logits":
            return f"logits of {self.key}"
        if cmd == "describe":
            return {"name": self.key}
        return True

    def close(self):
        self.closed = True


def test_round_order_rotates_and_reverses():
    assert [round_order("abc", r) for r in range(4)] == [list("abc"), list("acb"), list("cab"), list("cba")]
    assert round_order([], 3) == []


def test_time_rounds_interleaves_and_collects_every_call():
    log: list = []
    workers = {k: FakeWorker(k, log, s) for k, s in (("a", 0.01), ("b", 0.02))}
    samples = time_rounds(workers, [1, 4], iters=5, warmup=2, round_iters=2, pause_ms=0, failed={})
    assert samples == {("a", 1): [0.01] * 5, ("b", 1): [0.02] * 5, ("a", 4): [0.01] * 5, ("b", 4): [0.02] * 5}
    timed = [(k, a) for k, cmd, a in log if cmd == "time"]
    # batch 1: warm-up a, b (2 calls each), then rounds of 2, 2, 1 calls (with two workers, rotating and reversing cancel out)
    assert timed[:8] == [("a", (1, 2)), ("b", (1, 2)), ("a", (1, 2)), ("b", (1, 2)), ("a", (1, 2)), ("b", (1, 2)), ("a", (1, 1)), ("b", (1, 1))]
    assert timed[8] == ("a", (4, 2))


def test_a_failing_worker_is_dropped_and_said_why():
    log: list = []
    workers = {"ok": FakeWorker("ok", log, 0.01), "bad": FakeWorker("bad", log, 0.01, fail_at_batch=8)}
    bad = workers["bad"]
    failed: dict = {}
    samples = time_rounds(workers, [1, 8], iters=2, warmup=1, round_iters=1, pause_ms=0, failed=failed)
    assert failed == {"bad": "batch 8: bad broke"} and bad.closed and "bad" not in workers
    assert len(samples[("bad", 1)]) == 2 and samples[("bad", 8)] == [] and len(samples[("ok", 8)]) == 2


def test_start_workers_and_logits_with_fake_workers():
    log: list = []
    cands = [SimpleNamespace(key=k, label=k, backend=b, group="", runner={}) for k, b in (("t", "torch"), ("o", "ort"), ("x", "ort"))]

    def make(c):
        if c.key == "x":
            raise WorkerError("x cannot load")
        return FakeWorker(c.key, log, 0.01)

    workers, runners, failed = start_workers(cands, lambda c: {1: "inputs"}, isolation="inline", spinning=False, make=make)
    assert list(workers) == ["t", "o"] and failed == {"x": "x cannot load"} and runners["o"] == {"name": "o"}
    assert cands[1].runner == {"spinning": False} and cands[0].runner == {}  # ONNX Runtime rows are told about spinning
    logits = collect_logits(cands, workers, runners, lambda c: "agree", failed, skip=lambda c: c.key == "t")
    assert logits == {"o": "logits of o"}
    ws = list(workers.values())
    assert close_workers(workers, runners) == [] and not workers and all(w.closed for w in ws)


@pytest.mark.parametrize("iters,round_iters", [(1, 4), (7, 3)])
def test_exactly_iters_timed_calls(iters, round_iters):
    workers = {"a": FakeWorker("a", [], 0.5)}
    assert len(time_rounds(workers, [2], iters=iters, warmup=0, round_iters=round_iters, pause_ms=0, failed={})[("a", 2)]) == iters


class BurstWorker(FakeWorker):
    def call(self, cmd, arg=None):
        if cmd == "burst":
            self.log.append((self.key, cmd, arg))
            b, min_s, min_calls, max_calls = arg
            if b == self.fail_at_batch:
                raise WorkerError(f"{self.key} broke")
            return {"cold": 10 * self.seconds, "steady": [self.seconds] * min_calls, "inner": [self.seconds / 2] * min_calls}
        return super().call(cmd, arg)


def test_time_bursts_interleaves_bursts_and_keeps_the_cold_call_apart():
    from pawlens.bench.schedule import time_bursts

    log: list = []
    workers = {k: BurstWorker(k, log, s, fail_at_batch=4 if k == "c" else None) for k, s in (("a", 0.01), ("b", 0.02), ("c", 0.03))}
    failed: dict = {}
    t = time_bursts(workers, [1, 4], rounds=3, burst_s=0.05, min_calls=2, warmup=1, pause_ms=0, failed=failed)
    assert t.steady[("a", 1)] == [0.01] * 6 and t.cold[("a", 1)] == [0.1] * 3 and t.inner[("b", 4)] == [0.01] * 6
    assert t.steady[("c", 1)] == [0.03] * 6 and t.steady[("c", 4)] == [] and "c" not in workers and "batch 4" in failed["c"]
    bursts = [(k, a) for k, cmd, a in log if cmd == "burst"]
    assert [k for k, _ in bursts[:9]] == ["a", "b", "c", "a", "c", "b", "c", "a", "b"]  # rotating, every other round reversed
    assert all(a[1:] == (0.05, 2, 500) for _, a in bursts)
    warm = [(k, a) for k, cmd, a in log if cmd == "time"]
    assert warm[:3] == [("a", (1, 1)), ("b", (1, 1)), ("c", (1, 1))]


def test_a_burst_times_a_cold_call_then_steady_calls_for_long_enough():
    """The worker's own burst: one call first, then calls until both the time and the count are reached (or the cap)."""
    import time as _time

    import numpy as np

    from pawlens.bench.harness import _Session
    from pawlens.runtime.base import InputSpec, Runner

    class Slow(Runner):
        backend = "fake"
        calls = 0

        def activate_impl(self):
            pass

        def input_spec(self):
            return InputSpec("x", (None, 1))

        def infer_impl(self, x):
            Slow.calls += 1
            _time.sleep(0.002)
            return np.zeros((len(x), 2), np.float32)

    s = _Session({}, runner=Slow())
    s.handle("inputs", {1: np.zeros((1, 1), np.float32)})
    got = s.handle("burst", (1, 0.03, 3, 500))
    assert got["cold"] >= 0.002 and len(got["steady"]) == len(got["inner"]) == Slow.calls - 1
    assert sum(got["steady"]) >= 0.03 and 3 <= len(got["steady"]) < 20
    assert all(0 < i <= w for i, w in zip(got["inner"], got["steady"]))
    few = s.handle("burst", (1, 10.0, 3, 5))  # the cap ends a burst whose time is not reached
    assert len(few["steady"]) == 5
    many = s.handle("burst", (1, 0.0, 4, 500))  # the count ends a burst whose time is reached at once
    assert len(many["steady"]) == 4
