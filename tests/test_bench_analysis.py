"""bench.analysis on its own: fixed samples and a hand-made BenchResult give an expected rows and goals table."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from pawlens.bench import analysis
from pawlens.bench.results import BenchResult, BenchRow


def _row(key, label, backend, precision, p50, mn, **kw) -> BenchRow:
    r = BenchRow(key, label, backend, precision, "cpu", 1, model="resnet50", **kw)
    r.p50_ms, r.min_ms = p50, mn
    return r


def _result(real_photos: bool) -> BenchResult:
    rows = [_row("torch-fp32", "PyTorch fp32 eager", "torch", "fp32", 100.0, 90.0),
            _row("ort-fp32@m.onnx", "ONNX Runtime fp32", "ort", "fp32", 40.0, 36.0),
            _row("ort-int8@m.int8.onnx", "ONNX Runtime INT8", "ort", "int8", 20.0, 18.0, top1_agreement=0.995)]
    analysis.set_speedups(rows, "resnet50")
    settings = {"batch_sizes": [1], "model": "resnet50", "embedded_default": False, "real_photos": real_photos}
    extras = {"overhead_frame": "640x480", "overhead_ms": 2.0, "cam_vs_forward": 1.2, "cam_ms": 12.0, "forward_ms": 10.0}
    return BenchResult(rows, settings, extras, [], [], {}, [])


EXPECTED = [
    ("ONNX Runtime fp32 at batch 1 <= 0.45x PyTorch fp32 eager", "0.40x (40.0 vs 100.0 ms); on min latency 0.40x", True),
    ("fastest INT8 path at batch 1 <= 0.15x PyTorch fp32 eager", "ONNX Runtime INT8: 0.20x (20.0 vs 100.0 ms); on min latency 0.20x", False),
    ("INT8 top-1 agreement >= 99% on real photos", "99.50% (ONNX Runtime INT8)", True),
    ("runtime overhead (preprocess 640x480 + softmax) <= 3.0 ms", "2.00 ms", True),
    ("Grad-CAM of one frame <= 1.3x one PyTorch fp32 forward (CPU)", "1.20x (12.0 vs 10.0 ms)", True),
    ("TensorRT FP16 >= 3.0x PyTorch fp32 eager (CUDA) at batch 1", "not measured", None),
]


def test_goals_table_of_a_hand_made_result():
    goals = analysis.evaluate_goals(_result(real_photos=True))
    assert [(g["goal"], g["measured"], g["ok"]) for g in goals] == EXPECTED
    assert goals[-1]["note"] == "no GPU / TensorRT in this run"


def test_int8_agreement_is_judged_only_on_real_photos():
    """The inputs' real_photos field decides, not the wording of the agreement note."""
    res = _result(real_photos=False)
    res.settings["agreement_data"] = "8 real photos, really"  # a note that says so does not count
    g = next(g for g in analysis.evaluate_goals(res) if g["goal"].startswith("INT8 top-1 agreement"))
    assert g["ok"] is None and g["note"].startswith("not judged")


def test_goals_come_from_the_data_file(tmp_path):
    assert analysis.load_goals()["int8_vs_eager_b1"] == 0.15 and "_about" not in analysis.load_goals()
    f = tmp_path / "goals.json"
    f.write_text('{"_why": "looser", "ort_fp32_vs_eager_b1": 0.45, "int8_vs_eager_b1": 0.25, "int8_agreement": 0.99, '
                 '"torch_best_vs_eager": 0.6, "overhead_ms": 1.0, "cam_vs_forward": 1.3, "trt_fp16_speedup_b1": 3.0, '
                 '"fastest_vs_resnet50_eager_b1": 0.06, "auto_tolerance": 1.05}')
    goals = analysis.evaluate_goals(_result(True), analysis.load_goals(str(f)))
    assert goals[1]["goal"].startswith("fastest INT8 path at batch 1 <= 0.25x") and goals[1]["ok"] is True
    assert goals[3]["goal"].endswith("<= 1.0 ms") and goals[3]["ok"] is False


def test_rows_from_fixed_samples_and_parity():
    cands = [SimpleNamespace(key="torch-fp32", label="PyTorch fp32 eager", backend="torch", precision="fp32", device="cpu", path="m.pt"),
             SimpleNamespace(key="ort-fp32@m.onnx", label="ONNX Runtime fp32", backend="ort", precision="fp32", device="cpu",
                             path="/x/m.onnx")]
    samples = {("torch-fp32", 2): [0.010, 0.012, 0.011], ("ort-fp32@m.onnx", 2): [0.004, 0.005]}
    parity = {"ort-fp32@m.onnx": SimpleNamespace(top1_agreement=1.0, max_abs=2e-6, passed=True, precision="fp32", cand_acc=0.75,
                                                    decisive_flips=0, n_judged=8)}
    rows = analysis.make_rows(cands, [2], samples, {"ort-fp32@m.onnx": "died"}, parity, iters=3, model_of=lambda c: "resnet50")
    eager, ort = rows
    assert (eager.n, eager.p50_ms, eager.min_ms, eager.status, eager.artifact) == (3, pytest.approx(11.0), pytest.approx(10.0), "ok", "checkpoint")
    assert eager.images_per_s == pytest.approx(2 / 0.011) and eager.samples_ms == [10.0, 12.0, 11.0]
    assert ort.status == "failed: died" and ort.n == 2 and ort.artifact == "m.onnx"  # fewer samples than asked: failed, figures kept
    assert (ort.top1_agreement, ort.within_gate, ort.gate, ort.accuracy) == (1.0, True, "fp32 gate", 0.75)
    analysis.set_speedups(rows, "resnet50")
    assert ort.speedup == pytest.approx(11.0 / 4.5) and ort.vs_eager == pytest.approx(4.5 / 11.0)
    analysis.apply_ceiling(rows, {"macs": 1e9, "fp32_gflops": 500.0}, "resnet50")
    assert eager.gops == pytest.approx(2 * 1e9 * 2 / 0.011 / 1e9) and eager.of_gemm == pytest.approx(eager.gops / 500.0)


def test_auto_verdict_counts_only_rows_in_the_artifacts_precision():
    rows = [_row("openvino-fp32@m.onnx", "OpenVINO fp32", "openvino", "fp32", 10.0, 9.0, within_gate=True),
            _row("ort-fp32@m.onnx", "ONNX Runtime fp32", "ort", "fp32", 10.3, 9.0, within_gate=True),
            _row("openvino-bf16@m.onnx", "OpenVINO bf16", "openvino", "bf16", 5.0, 4.0, within_gate=True)]
    by_key = {"openvino-fp32@m.onnx": SimpleNamespace(gate_precision="fp32", backend="openvino"),
              "ort-fp32@m.onnx": SimpleNamespace(gate_precision="fp32", backend="ort"),
              "openvino-bf16@m.onnx": SimpleNamespace(gate_precision="fp32", backend="openvino")}
    plan = SimpleNamespace(backend="ort", kwargs={"device": "cpu"}, reason="asked")
    meta = SimpleNamespace(precision="fp32")
    key = analysis.key_for_plan(plan, "/x/m.onnx", meta)
    assert key == "ort-fp32@m.onnx"
    d = analysis.judge_auto("/x/m.onnx", meta, plan, key, rows, [1], by_key, tolerance=1.05)
    pb = d["per_batch"][1]
    assert pb["ok"] is True and pb["fastest"] == "openvino-fp32@m.onnx" and pb["ratio"] == pytest.approx(1.03)  # bf16 never competes
    d = analysis.judge_auto("/x/m.onnx", meta, plan, key, rows, [1], by_key, tolerance=1.01)
    assert d["per_batch"][1]["ok"] is False
    assert math.isnan(BenchRow("k", "l", "b", "p", "cpu", 1).p50_ms)


def test_auto_verdict_for_a_checkpoint_ignores_another_models_rows():
    """With --checkpoint A B, the main checkpoint's auto pick competes only with its own PyTorch rows, not B's faster ones."""
    rows = [_row("torch-fp32", "PyTorch fp32 eager", "torch", "fp32", 15.0, 14.0, within_gate=True),
            _row("torch-fp32-cl", "PyTorch fp32 channels_last", "torch", "fp32", 14.0, 13.0, within_gate=True),
            _row("torch-fp32#baseline", "PyTorch fp32 eager [baseline]", "torch", "fp32", 3.6, 3.5, within_gate=True)]
    cand = dict(gate_precision="fp32", backend="torch", device="cpu", compiled=False)
    by_key = {"torch-fp32": SimpleNamespace(group="", **cand), "torch-fp32-cl": SimpleNamespace(group="", **cand),
              "torch-fp32#baseline": SimpleNamespace(group="baseline", **cand)}
    plan = SimpleNamespace(backend="torch", kwargs={"device": "cpu"}, reason="PyTorch checkpoint")
    d = analysis.judge_auto("/x/best.pt", SimpleNamespace(precision="fp32"), plan, "torch-fp32", rows, [1], by_key, tolerance=1.1)
    pb = d["per_batch"][1]
    assert d["artifact"] == "checkpoint (.pt)" and pb["fastest"] == "torch-fp32-cl" and pb["ok"] is True
