"""bench.peers: each row's runtime's own tool beside it (a fake benchmark_app that reports a known figure), its parsers,
and a gap flagged in the console, bench.md and bench.json."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from pawlens.bench import peers
from pawlens.bench.results import BenchRow

BA_OUTPUT = """[Step 11/11] Dumping statistics report
[ INFO ] Execution Devices:['CPU']
[ INFO ] Count:            1200 iterations
[ INFO ] Duration:         3002.10 ms
[ INFO ] Latency:
[ INFO ]    Median:        2.45 ms
[ INFO ]    Average:       2.50 ms
[ INFO ]    Min:           2.30 ms
[ INFO ]    Max:           3.10 ms
[ INFO ] Throughput:   400.00 FPS
"""

TRT_OUTPUT = ("[12/06/2026-10:00:00] [I] Latency: min = 0.51 ms, max = 0.80 ms, mean = 0.56 ms, median = 0.55 ms, "
              "percentile(90%) = 0.60 ms\n[12/06/2026-10:00:00] [I] Enqueue Time: min = 0.1 ms, median = 0.12 ms\n")


def _fake_tool(tmp_path, name: str, median_ms: float, log: str) -> str:
    """An executable that records its arguments and prints benchmark_app's report with a known median."""
    p = tmp_path / name
    text = BA_OUTPUT.replace("2.45", f"{median_ms:.2f}")
    p.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\ncat <<'EOT'\n{text}EOT\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


def _fake_tool_by_run(tmp_path, name: str, medians: list[float], log: str) -> str:
    """A benchmark_app whose k-th run on the same arguments reports ``medians[k-1]`` (it counts its calls in ``log``)."""
    p = tmp_path / name
    cases = "\n".join(f"  {k}) m={v:.2f} ;;" for k, v in enumerate(medians, 1))
    p.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nn=$(grep -cxF -- \"$*\" {log})\ncase $n in\n{cases}\n  *) m=1.00 ;;\nesac\n"
                 f"cat <<EOT\n{BA_OUTPUT.replace('2.45', '$m')}EOT\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


def test_peer_runs_are_spread_over_the_rounds():
    assert peers.peer_rounds(5, 3) == [0, 2, 4]
    assert peers.peer_rounds(5, 1) == [4]  # one run: after the last round, as before
    assert peers.peer_rounds(2, 3) == [0, 0, 1]  # more runs than rounds: every run still happens
    for rounds in range(1, 8):
        for runs in range(1, 9):
            got = peers.peer_rounds(rounds, runs)
            assert len(got) == runs and got[-1] == rounds - 1 and all(0 <= r < rounds for r in got)
            assert len(set(got)) == min(rounds, runs)


def test_parsers_read_the_median_and_nothing_else():
    assert peers.parse_benchmark_app(BA_OUTPUT) == 2.45
    assert peers.parse_benchmark_app("[ INFO ] Throughput: 400 FPS\n") is None
    assert peers.parse_benchmark_app(BA_OUTPUT.replace("2.45 ms", "829.95 us")) == pytest.approx(0.82995)  # below 1 ms
    assert peers.parse_trtexec(TRT_OUTPUT) == 0.55
    assert peers.parse_trtexec("[I] Enqueue Time: median = 0.12 ms") is None


def test_a_missing_or_failing_tool_gives_no_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("PAWLENS_TRTEXEC", str(tmp_path / "nope"))
    assert peers.find_tool("trtexec") is None
    bad = tmp_path / "bad"
    bad.write_text("#!/bin/sh\necho 'cannot read model' >&2\nexit 1\n")
    bad.chmod(0o755)
    with pytest.raises(peers.PeerError, match="exited 1 without a median latency: cannot read model"):
        peers.benchmark_app("m.onnx", batch=1, input_name="input", size=32, hint="f32", threads=None, seconds=0.1, exe=str(bad))


@pytest.mark.skipif(peers.find_tool("benchmark_app") is None, reason="OpenVINO's benchmark_app is not installed")
@pytest.mark.parametrize("threads", [None, 1])
def test_the_real_benchmark_app_takes_the_command(rt_tiny_onnx, threads):
    """The command the bench builds is one the real tool accepts (it refuses -nthreads beside -hint latency)."""
    ms, cmd = peers.benchmark_app(rt_tiny_onnx["int8"], batch=2, input_name="input", size=32, hint="f32", threads=threads, seconds=0.2)
    assert ms > 0 and ("-nthreads" in cmd) == bool(threads)


def test_set_peer_flags_a_gap_beyond_the_tolerance():
    r = BenchRow("k", "OpenVINO INT8", "openvino", "int8", "cpu", 1)
    r.set_samples([0.0042] * 3)
    r.set_peer("benchmark_app", 2.45, 0.10)
    assert r.vs_peer == pytest.approx(4.2 / 2.45) and r.peer_gap is True
    r.set_peer("benchmark_app", 4.0, 0.10)
    assert r.peer_gap is False
    r.set_peer("benchmark_app", [4.1, 7.3, 2.0], 0.10)  # several runs: their median, one noisy run outvoted
    assert r.peer_ms == 4.1 and r.peer_runs_ms == [4.1, 7.3, 2.0] and r.peer_gap is False


def test_bench_puts_benchmark_app_beside_each_openvino_row(rt_tiny_onnx, tmp_path, monkeypatch, caplog):
    """A fake benchmark_app reports 1000 ms: every OpenVINO row is flagged, with the same file, batch, shape and precision passed."""
    from pawlens.bench.run import run_bench

    log = tmp_path / "calls.txt"
    # three runs per row and batch, one after each round, reading 900, 5000 and 1000 ms: the row's figure is their median
    monkeypatch.setenv("PAWLENS_BENCHMARK_APP", _fake_tool_by_run(tmp_path, "benchmark_app", [900.0, 5000.0, 1000.0], str(log)))
    with caplog.at_level(logging.WARNING, logger="pawlens"):
        res = run_bench(rt_tiny_onnx["pt"], [rt_tiny_onnx["fp32"], rt_tiny_onnx["int8"]], batch_sizes=(1, 2), warmup=1, rounds=3,
                        burst_ms=5, backends=("torch", "ort", "openvino"), isolation="inline", out=str(tmp_path / "b"), n_images=2,
                        cam=False, progress=False, peer_s=0.2, peer_runs=3, threads=1)
    ov = [r for r in res.rows if r.backend == "openvino"]
    assert ov and all(r.peer == "benchmark_app" and r.peer_ms == 1000.0 and r.peer_gap for r in ov)
    assert all(r.peer_runs_ms == [900.0, 5000.0, 1000.0] for r in ov)
    calls = log.read_text().splitlines()
    assert len(calls) == 3 * len(ov)
    assert any(f"-m {rt_tiny_onnx['int8']} -d CPU -hint none -nstreams 1 -nthreads 1 -t 1 -shape input[2,3,32,32] -infer_precision f32"
               == c for c in calls), calls
    ort = [r for r in res.rows if r.backend == "ort"]  # the bare InferenceSession loop, really run
    assert ort and all(r.peer == "InferenceSession loop" and r.peer_ms > 0 for r in ort)
    torch_rows = [r for r in res.rows if r.backend == "torch"]
    assert all(not r.peer and r.peer_gap is None for r in torch_rows)
    assert all(r.method == "burst" and r.cold_ms > 0 and r.overhead_ms == r.overhead_ms for r in res.rows)
    assert any("benchmark_app" in m and "more than 10% apart" in m for m in caplog.messages)
    md = open(res.files["md"]).read()
    assert "1000.00 (benchmark_app, 3 runs 900.00-5000.00)" in md and "GAP" in md and "cold ms" in md and "steady state" in md
    goal = next(g for g in res.goals if "benchmark_app" in g["goal"] and g["goal"].startswith("every row"))
    assert goal["ok"] is False and f"0 of {len(ov)} rows" in goal["measured"]
    doc = json.loads(open(res.files["json"]).read())
    row = next(r for r in doc["rows"] if r["backend"] == "openvino")
    assert row["peer_ms"] == 1000.0 and row["peer_runs_ms"] == [900.0, 5000.0, 1000.0] and row["peer_gap"] is True
    assert row["method"] == "burst"
    assert doc["settings"]["method"] == "burst" and doc["settings"]["peers"] is True and doc["settings"]["peer_runs"] == 3


def test_no_benchmark_app_is_a_note_not_a_figure(rt_tiny_onnx, tmp_path, monkeypatch):
    from pawlens.bench.run import run_bench

    monkeypatch.setenv("PAWLENS_BENCHMARK_APP", os.fspath(tmp_path / "missing"))
    res = run_bench(rt_tiny_onnx["pt"], [rt_tiny_onnx["fp32"]], batch_sizes=(1,), warmup=0, rounds=1, burst_ms=2,
                    backends=("torch", "openvino"), isolation="inline", write=False, n_images=2, cam=False, progress=False, peer_s=0.1)
    assert all(not r.peer for r in res.rows)
    assert sum("benchmark_app not found" in n for n in res.notes) == 1
