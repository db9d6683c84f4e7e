"""bench.report on its own: a hand-made result renders expected markdown rows, CSV and a Document the demo includes."""

from __future__ import annotations

import csv
import io

from pawlens.bench.report import CSV_COLUMNS, document, main_table_row, to_csv, to_markdown
from pawlens.bench.results import BenchResult, BenchRow
from pawlens.document import Document


def _result() -> BenchResult:
    r = BenchRow("ort-int8@m.int8.onnx", "ONNX Runtime INT8", "ort", "int8", "cpu", 8, model="baseline", artifact="m.int8.onnx")
    r.set_samples([0.0125, 0.0100, 0.0150])
    r.speedup, r.top1_agreement, r.max_abs, r.within_gate = 2.5, 0.96875, 0.0123, True
    r.set_burst([0.020, 0.030, 0.025], [0.0125, 0.0100, 0.0150], [0.0120, 0.0095, 0.0140])
    r.set_peer("InferenceSession loop", 11.0, 0.10)
    failed = BenchRow("trt-fp16@m.engine", "TensorRT FP16", "trt", "fp16", "cuda", 1, status="failed: no GPU")
    settings = {"arch": "baseline", "input_size": 64, "embedded_default": False, "models_compared": ["baseline"], "batch_sizes": [8],
                "isolation": "inline", "warmup": 1, "iters": 3, "round_iters": 2, "pause_ms": 10.0, "spinning": False, "threads": None,
                "cpu": "Test CPU", "cores": 2, "cpu_flags": ["avx2"], "gpu": None, "agreement_data": "3 real photos from x",
                "load_avg_start": [0.5, 0.4, 0.3], "load_avg_end": [0.6, 0.5, 0.4], "versions": {"python": "3.11"}, "seconds": 1.5}
    goals = [{"goal": "fastest INT8 path at batch 1 <= 0.15x PyTorch fp32 eager", "measured": "0.20x", "ok": False, "note": ""}]
    picks = [{"artifact": "m.int8.onnx", "precision": "int8", "auto_key": "ort-int8@m.int8.onnx", "reason": "asked for",
              "per_batch": {8: {"ok": True, "auto_ms": 12.5, "fastest": "ort-int8@m.int8.onnx", "fastest_ms": 12.5}}}]
    return BenchResult([r, failed], settings, {}, goals, picks, {}, ["a note"])


def test_a_row_renders_as_expected():
    res = _result()
    assert main_table_row(res.rows[0]) == ["ONNX Runtime INT8", "int8", "cpu", "8", "12.5", "14.5", "14.9", "25.0", "640.0", "2.50x",
                                           "11.00 (InferenceSession loop): 1.14x GAP", "0.500", "96.9%", "1.23e-02 (in gate)"]
    md = to_markdown(res)
    assert ("| ONNX Runtime INT8 | int8 | cpu | 8 | 12.5 | 14.5 | 14.9 | 25.0 | 640.0 | 2.50x | 11.00 (InferenceSession loop): 1.14x GAP "
            "| 0.500 | 96.9% | 1.23e-02 (in gate) |") in md
    assert "| TensorRT FP16 | fp16 | cuda | 1 | failed: no GPU |  |  |  |  |  |  |  |  |  |" in md
    assert md.startswith("# pawlens-bench: baseline at 64 px\n")
    assert "| fastest INT8 path at batch 1 <= 0.15x PyTorch fp32 eager | 0.20x | no |" in md
    assert ("- m.int8.onnx (int8): ort-int8@m.int8.onnx - asked for; batch 8: fastest within the gate (12.5 ms; fastest "
            "ort-int8@m.int8.onnx 12.5 ms)") in md
    assert "- Load average at start / end: 0.50, 0.40, 0.30 / 0.60, 0.50, 0.40" in md and "## Notes\n\n- a note" in md


def test_csv_has_every_column_per_row():
    rows = list(csv.DictReader(io.StringIO(to_csv(_result()))))
    assert len(rows) == 2 and tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["p50_ms"] == "12.5000" and rows[0]["within_gate"] == "True" and rows[1]["p50_ms"] == ""


def test_the_demo_includes_the_bench_document():
    bench = document(_result())
    assert isinstance(bench, Document) and "Goals (ratios from this run)" in bench.headings()
    demo = Document("Pawlens demo")
    demo.include(bench, heading="Latency, side by side")
    md = demo.markdown()
    assert "## Latency, side by side" in md and "### Goals (ratios from this run)" in md and "# pawlens-bench" not in md
    assert "<table>" in demo.html()


def test_openvino_default_precision_and_its_price_are_stated():
    from pawlens.bench.report import openvino_precision_lines

    res = _result()
    assert openvino_precision_lines(res) == []  # no OpenVINO rows: nothing to say
    f32 = BenchRow("openvino-fp32@m.onnx", "OpenVINO fp32", "openvino", "fp32", "cpu", 1, artifact="m.onnx")
    f32.set_samples([0.040, 0.040, 0.040])
    b16 = BenchRow("openvino-bf16@m.onnx", "OpenVINO bf16 hint (fp32 model)", "openvino", "bf16", "cpu", 1, artifact="m.onnx")
    b16.set_samples([0.020, 0.020, 0.020])
    res.rows += [f32, b16]
    (line,) = openvino_precision_lines(res)
    assert "runs an fp32 file in bf16" in line and "40.0 ms against 20.0 ms" in line and "(2.00x)" in line
    assert line in to_markdown(res)


def test_goals_and_ceilings_can_go_to_an_appendix():
    """bench.md carries everything; the demo's flow shows what a user decides on, and the goals and ceilings after it."""
    from pawlens.bench.report import appendix_document

    res = _result()
    main = document(res, appendix=False)
    assert "Goals (ratios from this run)" not in main.headings() and "What `--backend auto` picks" in main.headings()
    appendix = appendix_document(res)
    assert "Goals (ratios from this run)" in appendix.headings() and "How the figures were taken" in appendix.headings()
    assert document(res).blocks == main.blocks + appendix.blocks
