"""pawlens tune and the tune cache: the key, auto reading the stored winner, the gate, a bad cache file, the CLI."""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import pytest

from pawlens.bench import tune as tune_cmd
from pawlens.bench.harness import InlineWorker
from pawlens.runtime import tuned
from pawlens.runtime.base import InputSpec, Runner
from pawlens.runtime.factory import make_runner, plan_runner
from pawlens.runtime.onnx_meta import read_onnx_meta
from pawlens.runtime.openvino_runner import OpenVINORunner
from pawlens.runtime.ort_runner import OrtRunner
from pawlens.runtime.torch_runner import TorchRunner

ORT_1 = {"backend": "ort", "precision": None, "channels_last": None, "threads": 1}
OV = {"backend": "openvino", "precision": "fp32", "channels_last": None, "threads": None}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty tune cache of this test's own (and no warnings remembered from other tests)."""
    monkeypatch.setenv("PAWLENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tuned, "_warned", set())
    return tmp_path / "cache"


@pytest.fixture
def warnings_seen():
    """The pawlens logger's warning lines while the test runs."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                lines.append(record.getMessage())

    h = Keep()
    log = logging.getLogger("pawlens")
    log.addHandler(h)
    yield lines
    log.removeHandler(h)


def _store(path, cfg, static=OV, batch=1, p50=1.0, static_ms=2.0, precision="fp32"):
    return tuned.store(path, cfg, batch=batch, p50_ms=p50, static=static, static_ms=static_ms, artifact_precision=precision)


# ----------------------------------------------------------------------------- the key


def test_cpu_identity_hashes_the_whole_flag_set():
    a = tuned.cpu_identity("model name\t: Some CPU\nflags\t\t: sse avx2 avx512f\n")
    assert a["model"] == "Some CPU"
    assert tuned.cpu_identity("model name: Some CPU\nflags: avx512f sse avx2\n") == a  # order does not matter
    assert tuned.cpu_identity("model name: Some CPU\nflags: sse avx2 avx512f amx_bf16\n")["flags"] != a["flags"]


def test_key_misses_with_another_cpu_flag_set_or_a_changed_file(tmp_path, cache, monkeypatch):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"model bytes")
    _store(f, ORT_1)
    assert tuned.lookup(f)["config"] == ORT_1
    assert tuned.lookup(f, batch=8) is None  # each batch size on its own
    real = tuned.this_cpu()
    monkeypatch.setattr(tuned, "this_cpu", lambda: {**real, "flags": "0" * 16})
    assert tuned.lookup(f) is None
    monkeypatch.setattr(tuned, "this_cpu", lambda: real)
    f.write_bytes(b"model bytes, re-exported")
    assert tuned.lookup(f) is None
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(b"model bytes")
    assert tuned.lookup(copy)["config"] == ORT_1  # the content decides, not the name


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PAWLENS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tuned.cache_dir() == str(tmp_path / "xdg" / "pawlens")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert tuned.cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "pawlens")
    monkeypatch.setenv("PAWLENS_CACHE_DIR", str(tmp_path / "own"))
    assert tuned.cache_dir() == str(tmp_path / "own")


# ----------------------------------------------------------------------------- auto reads it


def test_auto_runs_the_stored_winner_and_tuned_false_the_static_rule(rt_tiny_onnx, cache):
    path = rt_tiny_onnx["int8"]
    static = plan_runner(path, device="cpu")
    assert static.source == "static" and static.backend == "openvino" and static.reason.endswith("measures this machine)")
    _store(path, ORT_1, p50=1.2, static_ms=1.5, precision="int8")
    plan = plan_runner(path, device="cpu")
    assert (plan.backend, plan.kwargs, plan.threads, plan.source) == ("ort", {"device": "cpu"}, 1, "tuned")
    assert plan.reason.startswith("tuned on this machine (pawlens tune, ") and "1.2 ms vs static 1.5 ms" in plan.reason
    r = make_runner(path)
    assert isinstance(r, OrtRunner) and r.threads == 1 and r.plan_reason == plan.reason
    assert make_runner(path, threads=2).threads == 2  # threads given by hand win
    assert plan_runner(path, device="cpu", tuned=False).backend == "openvino"
    assert isinstance(make_runner(path, tuned=False), OpenVINORunner)
    meta = read_onnx_meta(path)
    for asked in ({"backend": "openvino"}, {"precision": "int8"}):  # only auto with no precision asked reads the cache
        assert plan_runner(path, device="cpu", meta=meta, **asked).source == "static"
    assert plan_runner(path, device="cpu", batch=8).source == "static"


def test_a_plan_rebuilds_with_its_backend_named(rt_tiny_onnx, cache):
    """``Plan.make_kwargs()``: what the bench passes to make_runner to time auto's choice as a row of its own."""
    path = rt_tiny_onnx["int8"]
    _store(path, {**OV, "threads": 1}, precision="int8")
    plan = plan_runner(path, device="cpu", meta=read_onnx_meta(path))
    assert plan.source == "tuned" and plan.make_kwargs() == {"backend": "openvino"}
    r = make_runner(path, threads=plan.threads, **plan.make_kwargs())
    assert isinstance(r, OpenVINORunner) and r.precision == "fp32" and r.threads == 1


def test_auto_applies_a_tuned_memory_layout_to_a_checkpoint(rt_tiny_onnx, cache):
    pt = rt_tiny_onnx["pt"]
    assert not make_runner(pt).channels_last
    _store(pt, {"backend": "torch", "precision": "fp32", "channels_last": True, "threads": None},
           static={"backend": "torch", "precision": "fp32", "channels_last": False, "threads": None})
    r = make_runner(pt)
    assert isinstance(r, TorchRunner) and r.channels_last and r.threads is None and "channels_last" in r.plan_reason
    assert not make_runner(pt, channels_last=False).channels_last


@pytest.mark.parametrize("content", [b"{not json", b'{"schema": "someone.else/1"}', b"\xff\xfe"])
def test_a_bad_cache_file_is_ignored_with_one_warning(rt_tiny_onnx, cache, warnings_seen, content):
    path = rt_tiny_onnx["fp32"]
    f = tuned.entry_path(tuned.cache_key(path))
    os.makedirs(os.path.dirname(f), exist_ok=True)
    with open(f, "wb") as fh:
        fh.write(content)
    for _ in range(3):
        assert plan_runner(path, device="cpu").source == "static"
    assert isinstance(make_runner(path), OpenVINORunner)
    assert len(warnings_seen) == 1 and f in warnings_seen[0] and "\n" not in warnings_seen[0]


def test_an_entry_of_another_key_is_foreign(rt_tiny_onnx, cache, warnings_seen):
    path = rt_tiny_onnx["fp32"]
    stored = _store(path, ORT_1)
    entry = json.load(open(stored))
    entry["key"]["sha256"] = "0" * 64
    with open(stored, "w") as fh:
        json.dump(entry, fh)
    assert tuned.lookup(path) is None and len(warnings_seen) == 1


# ----------------------------------------------------------------------------- the choice


def test_candidates_never_lower_an_fp32_artifact():
    both = ["ort", "openvino"]
    fp32 = tune_cmd.configs_for(".onnx", "fp32", installed=both, bf16=True, cores=2)
    assert {c["precision"] for c in fp32 if c["backend"] == "openvino"} == {"fp32"}
    assert len(fp32) == 4 and {c["threads"] for c in fp32} == {None, 1}
    int8 = tune_cmd.configs_for(".onnx", "int8", installed=both, bf16=True, cores=2)
    assert {c["precision"] for c in int8 if c["backend"] == "openvino"} == {"fp32", "bf16"}
    assert all(c["precision"] != "bf16" for c in tune_cmd.configs_for(".onnx", "int8", installed=both, bf16=False, cores=2))
    pt = tune_cmd.configs_for(".pt", "fp32", installed=both, bf16=True, cores=1)
    assert [(c["channels_last"], c["threads"]) for c in pt] == [(False, None), (True, None)]


def test_bursts_fit_the_budget():
    lat = [0.002] * 4
    rounds, burst, calls = tune_cmd.plan_bursts(lat, 10.0)
    assert (rounds, calls) == (tune_cmd.ROUNDS, tune_cmd.MIN_CALLS) and burst == pytest.approx(tune_cmd.MAX_BURST_S)
    rounds, burst, calls = tune_cmd.plan_bursts(lat, 1.0)
    spent = rounds * sum(x + max(burst, calls * x) + tune_cmd.PAUSE_S for x in lat)
    assert spent <= 1.0 + 1e-6 and burst < tune_cmd.MAX_BURST_S
    assert tune_cmd.plan_bursts([0.5] * 4, 0.1) == (1, 0.0, tune_cmd.MIN_CALLS)  # too small a budget: still one burst each


class _Fake(Runner):
    """Logits from the input's mean (``flip``: the classes swapped), after ``delay_s``."""

    backend = "fake"

    def __init__(self, delay_s: float, flip: bool = False):
        super().__init__("fake")
        self.delay_s, self.flip = delay_s, flip

    def activate_impl(self):
        pass

    def input_spec(self):
        return InputSpec("input", (None, 3, None, None))

    def infer_impl(self, batch):
        time.sleep(self.delay_s)
        m = batch.reshape(len(batch), -1).mean(axis=1) * 10
        out = np.stack([m, -m], axis=1).astype(np.float32)
        return out[:, ::-1].copy() if self.flip else out


def test_a_candidate_outside_the_gate_is_not_chosen(rt_tiny_onnx, cache):
    path = rt_tiny_onnx["fp32"]
    delay = {"openvino-fp32-tdefault": 0.006, "openvino-fp32-t1": 0.005, "ort-fp32-tdefault": 0.003, "ort-fp32-t1": 0.001}

    def make(c):
        return InlineWorker(c, runner=_Fake(delay[c.key], flip=c.key == "ort-fp32-t1"))

    res = tune_cmd.tune(path, budget_s=1.5, progress=False, make=make)
    rows = {r.cand.key: r for r in res.rows}
    assert set(rows) == set(delay) and rows["openvino-fp32-tdefault"].static
    assert rows["ort-fp32-t1"].in_gate is False and "FAIL" in rows["ort-fp32-t1"].gate_note
    assert res.winners[1].cand.key == "ort-fp32-tdefault"
    assert tuned.lookup(path)["config"] == {"backend": "ort", "precision": None, "channels_last": None, "threads": None}
    table = tune_cmd.format_table(res)
    assert "outside the gate, not eligible" in table and "* winner (batch 1)" in table and "static rule" in table


def test_a_near_tie_keeps_the_static_rule():
    def row(key, ms, static=False):
        cand = tune_cmd.candidate("m.onnx", {**OV, "threads": None if static else 1}, "fp32", 2)
        return tune_cmd.Row(cand, cand.runner, key, static=static, p50_ms={1: ms}, in_gate=True)

    static, other = row("s", 1.00, static=True), row("o", 0.99)
    assert tune_cmd.pick([static, other], 1) is static
    other.p50_ms[1] = 0.80
    assert tune_cmd.pick([static, other], 1) is other


# ----------------------------------------------------------------------------- for real, and the CLI


def test_tune_end_to_end_on_a_tiny_onnx(rt_tiny_onnx, cache, capsys):
    path = rt_tiny_onnx["fp32"]
    rc = tune_cmd.main([path, "--budget-s", "3", "--n-images", "4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "* winner (batch 1)" in out and "static rule" in out and "batch 1: " in out and str(cache) in out
    entry = tuned.lookup(path)
    assert entry is not None and entry["p50_ms"] > 0 and entry["static"] == OV
    assert make_runner(path).plan_reason == plan_runner(path, device="cpu").reason
    assert plan_runner(path, device="cpu").reason.startswith("tuned on this machine")


def test_cli_help_and_one_line_errors(tmp_path, capsys):
    from pawlens.cli import main as pawlens_main

    with pytest.raises(SystemExit) as e:
        tune_cmd.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--budget-s", "--batch-sizes", "--images", "--n-images", "--no-store"):
        assert flag in text
    assert "default 30" in text and "default 1)" in text
    assert pawlens_main(["tune", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pawlens-tune: error: [artifact]") and "not found" in err and "\n" not in err
    (tmp_path / "m.fp16.engine").write_bytes(b"x")
    assert tune_cmd.main([str(tmp_path / "m.fp16.engine")]) == 2
    assert "nothing to tune" in capsys.readouterr().err
    assert tune_cmd.main([str(tmp_path / "m.fp16.engine"), "--budget-s", "0"]) == 2
    assert "--budget-s 0" in capsys.readouterr().err
