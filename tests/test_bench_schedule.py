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
