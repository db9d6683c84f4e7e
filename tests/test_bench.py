"""pawlens-bench on a tiny model: all four files written, sane figures, goals computed from the run, both isolation modes."""

from __future__ import annotations

import csv
import json
import math
import os

import pytest
from PIL import Image

from pawlens.bench.cli import main
from pawlens.bench.run import run_bench
from pawlens.errors import ArtifactError
from pawlens.runtime.torch_runner import cxx_compiler


def _check_row_sanity(rows, batch_sizes):
    for r in rows:
        assert r.status == "ok", (r.key, r.status)
        assert r.n > 0 and 0 < r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms, r
        assert r.images_per_s == pytest.approx(r.batch / (r.p50_ms / 1e3))
        assert r.batch in batch_sizes


def test_run_bench_inline_writes_four_files(rt_tiny_onnx, tmp_path):
    res = run_bench(rt_tiny_onnx["pt"], [rt_tiny_onnx["fp32"], rt_tiny_onnx["int8"]], batch_sizes=(1, 3), iters=3, warmup=1,
                    isolation="inline", out=str(tmp_path / "b"), n_images=6, compile="off", progress=False, rounds=2, burst_ms=10,
                    peers=False)
    assert set(res.files) == {"json", "csv", "md", "png"}
    from pawlens.models.device import cpu_supports_bf16

    keys = {r.key for r in res.rows}
    assert {"torch-fp32", "torch-fp32-cl", "ort-fp32@tiny.onnx", "ort-int8@tiny.int8.onnx", "openvino-fp32@tiny.onnx",
            "openvino-int8@tiny.int8.onnx"} <= keys
    bf16 = {"torch-bf16-cl", "torch-bf16ac-cl", "openvino-bf16@tiny.onnx"}
    if cpu_supports_bf16():
        assert bf16 <= keys
    else:  # emulated bf16 would be many times slower than fp32: left out, and said so
        assert not bf16 & keys and any("no native bf16" in n for n in res.notes)
    _check_row_sanity(res.rows, (1, 3))
    eager = res.row("torch-fp32", 1)
    assert eager.speedup == pytest.approx(1.0) and eager.max_abs == 0.0 and eager.top1_agreement == 1.0
    ort = res.row("ort-fp32@tiny.onnx", 3)
    assert ort.max_abs < 1e-3 and ort.top1_agreement == 1.0 and ort.within_gate
    assert ort.speedup == pytest.approx(res.row("torch-fp32", 3).p50_ms / ort.p50_ms)
    assert res.extras["overhead_ms"] > 0 and res.extras["cam_vs_forward"] > 0
    # compute rate of every CPU row against the GEMM rate measured in the same run
    assert res.extras["macs"] > 0 and res.extras["fp32_gflops"] > 0 and res.extras["int8_gops"] > 0
    for r in res.rows:
        assert r.gops == pytest.approx(2 * res.extras["macs"] * r.batch / (r.p50_ms / 1e3) / 1e9)
        assert r.of_gemm > 0 or r.precision not in ("fp32", "bf16", "int8"), r
    # files
    doc = json.loads(open(res.files["json"]).read())
    assert len(doc["rows"]) == len(res.rows) and doc["settings"]["isolation"] == "inline" and doc["goals"]
    rows = list(csv.DictReader(open(res.files["csv"])))
    assert len(rows) == len(res.rows) and {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "images_per_s", "speedup", "top1_agreement",
                                           "max_abs", "gops", "of_gemm"} <= set(rows[0])
    md = open(res.files["md"]).read()
    for text in ("| backend | precision | device | batch | p50 ms", "## How the figures were taken", "allow_spinning = 0",
                 "## Goals", "Grad-CAM", "overhead", "What `--backend auto` picks", "synthetic frames", "Against this CPU's compute limit"):
        assert text in md, text
    with Image.open(res.files["png"]) as im:
        assert im.format == "PNG" and im.size[0] > 400
    # auto's pick is judged for every artifact, bf16 rows never compete for an fp32 artifact
    picks = {a["artifact"]: a for a in res.auto_picks}
    assert picks["tiny.onnx"]["auto_key"] == "openvino-fp32@tiny.onnx"
    for pb in picks["tiny.onnx"]["per_batch"].values():
        assert "bf16" not in pb.get("fastest", "")


def test_run_bench_process_isolation_and_embedded_default(rt_tiny_onnx, tmp_path):
    """No --checkpoint: an untrained model of the --models file's architecture; each row in its own process.

    With a C++ compiler the torch.compile rows run too: same function as eager, compile time reported, not timed.
    """
    res = run_bench(None, [rt_tiny_onnx["fp32"]], batch_sizes=(2,), iters=2, warmup=1, backends=("torch", "ort"), isolation="process",
                    out=str(tmp_path / "p"), n_images=2, cam=False, progress=False, compile="auto", method="rounds", peers=False)
    from pawlens.models.device import cpu_supports_bf16

    bf16 = cpu_supports_bf16()
    want = {"torch-fp32", "torch-fp32-cl", "ort-fp32@tiny.onnx"} | ({"torch-bf16-cl", "torch-bf16ac-cl"} if bf16 else set())
    compiled = ({"torch-fp32-cl-compiled"} | ({"torch-bf16-cl-compiled"} if bf16 else set())) if cxx_compiler() else set()
    assert {r.key for r in res.rows} == want | compiled
    _check_row_sanity(res.rows, (2,))
    for k in compiled:
        assert res.runners[k]["compiled"] and res.runners[k]["compile_s"], res.runners[k]
        assert any(n.startswith(f"{k}: torch.compile took") for n in res.notes), res.notes
    if compiled:
        assert all(res.row(k, 2).within_gate for k in compiled)
    assert res.settings["embedded_default"] and res.settings["arch"] == "baseline" and res.settings["input_size"] == 32
    ort = res.row("ort-fp32@tiny.onnx", 2)
    assert math.isnan(ort.top1_agreement)  # weights unknown: no agreement claimed
    md = open(res.files["md"]).read()
    assert "Embedded default" in md and "own worker process" in md and "GOMP_SPINCOUNT=20000" in md
    assert res.runners["ort-fp32@tiny.onnx"]["providers"] == ["CPUExecutionProvider"]


def test_compile_rows_only_when_asked_for():
    from pawlens.bench.cli import get_args_parser

    p = get_args_parser()
    assert p.parse_args([]).compile == "off" and p.parse_args(["--compile"]).compile == "auto"
    assert p.parse_args(["--compile", "on"]).compile == "on"
    import inspect

    assert inspect.signature(run_bench).parameters["compile"].default == "off"


def test_cli_bad_arguments(capsys, tmp_path):
    assert main(["--batch-sizes", "1,x", "--out", str(tmp_path)]) == 2
    assert "--batch-sizes" in capsys.readouterr().err
    assert main(["--backends", "tflite", "--out", str(tmp_path)]) == 2
    assert "choose from" in capsys.readouterr().err


@pytest.mark.realdata
def test_run_bench_with_real_photos(rt_trained_baseline, shared_data, tmp_path):
    res = run_bench(rt_trained_baseline["pt"], [rt_trained_baseline["fp32"], rt_trained_baseline["int8"]], batch_sizes=(1,), iters=2,
                    warmup=0, backends=("torch", "ort"), isolation="inline", images=str(shared_data / "catsdogs"), n_images=6,
                    cam=False, out=str(tmp_path / "r"), compile="off", progress=False, rounds=1, burst_ms=5, peers=False)
    assert "6 real photos" in res.settings["agreement_data"]
    int8 = res.row("ort-int8@base64.int8.onnx", 1)
    assert math.isfinite(int8.top1_agreement) and math.isfinite(int8.max_abs)
    goal = next(g for g in res.goals if g["goal"].startswith("INT8 top-1 agreement"))
    assert goal["ok"] is not None  # judged: a real checkpoint and real photos


@pytest.mark.realdata
def test_two_models_accuracy_against_latency(rt_trained_baseline, shared_data, tmp_path):
    """A second checkpoint in the same run: its own eager reference, its own artifacts, accuracies, pareto.png, the latency reference."""
    import shutil

    import torch

    from pawlens.export.onnx import export_onnx
    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model

    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / "m2" / "best.pt", model=create_model("baseline", num_classes=2), arch="baseline",
                            class_names=["cat", "dog"], preprocess=PreprocessConfig.for_size(48))
    other_onnx = export_onnx(other, tmp_path / "m2" / "best.onnx")
    photos = tmp_path / "photos"
    for p in rt_trained_baseline["photos"]:
        d = photos / os.path.basename(os.path.dirname(p))
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d)
    res = run_bench(rt_trained_baseline["pt"], [rt_trained_baseline["fp32"], other_onnx], checkpoints=[other], batch_sizes=(1,), iters=2,
                    warmup=0, backends=("torch", "ort"), isolation="inline", images=str(photos), n_images=16, cam=False,
                    out=str(tmp_path / "r"), compile="off", progress=False, latency_reference="resnet50", rounds=1, burst_ms=5,
                    peers=False)
    models = res.settings["models_compared"]
    assert len(models) == 3 and "resnet50 (latency reference)" in models
    second = "baseline (m2)"  # the two baselines are told apart by their run folder
    assert models[:2] == ["baseline", second]
    eager2 = next(r for r in res.rows if r.key == f"torch-fp32#{second}")
    onnx2 = next(r for r in res.rows if r.key == f"ort-fp32@best.onnx#{second}")
    assert onnx2.model == second and onnx2.max_abs < 1e-3 and onnx2.within_gate  # compared with ITS checkpoint
    assert onnx2.speedup == pytest.approx(eager2.p50_ms / onnx2.p50_ms)
    assert 0 <= onnx2.accuracy <= 1 and onnx2.accuracy == eager2.accuracy  # same function, same photos: same accuracy
    main_eager = res.row("torch-fp32", 1)
    assert main_eager.model == "baseline" and math.isfinite(main_eager.accuracy)
    ref = next(r for r in res.rows if r.key.startswith("torch-fp32#resnet50"))
    assert math.isfinite(ref.p50_ms) and not math.isfinite(ref.accuracy)  # untrained: timed, never scored
    goal = next(g for g in res.goals if g["goal"].startswith("fastest CPU path of baseline"))
    assert "x (" in goal["measured"]
    assert "pareto" in res.files
    with Image.open(res.files["pareto"]) as im:
        assert im.format == "PNG"
    md = open(res.files["md"]).read()
    assert "## Accuracy against latency (batch 1)" in md and "on the frontier" in md


def test_the_tuned_choice_is_timed_beside_the_static_rule(rt_tiny_onnx, tmp_path, monkeypatch):
    """A file ``pawlens tune`` measured gets a row of its own (the tuned configuration, with its thread count), and auto's
    verdict is given for the tuned choice with the static rule's beside it."""
    from pawlens.runtime import tuned

    monkeypatch.setenv("PAWLENS_CACHE_DIR", str(tmp_path / "cache"))
    cfg = {"backend": "ort", "precision": None, "channels_last": None, "threads": 1}
    static = {"backend": "openvino", "precision": "fp32", "channels_last": None, "threads": None}
    tuned.store(rt_tiny_onnx["fp32"], cfg, batch=1, p50_ms=1.0, static=static, static_ms=1.2)
    tuned.store(rt_tiny_onnx["int8"], {**static, "threads": 1}, batch=1, p50_ms=1.0, static=static, static_ms=1.2, artifact_precision="int8")
    res = run_bench(rt_tiny_onnx["pt"], [rt_tiny_onnx["fp32"], rt_tiny_onnx["int8"]], batch_sizes=(1,), warmup=0, rounds=1, burst_ms=5,
                    backends=("torch", "ort", "openvino"), isolation="inline", write=False, n_images=2, cam=False, progress=False,
                    peers=False)
    row = res.row("tuned@tiny.onnx", 1)
    assert row is not None and row.backend == "ort" and row.label == "auto, tuned: ONNX Runtime fp32, 1 thread" and row.within_gate
    assert res.runners["tuned@tiny.onnx"]["threads"] == 1
    i8 = res.row("tuned@tiny.int8.onnx", 1)  # OpenVINO's f32 hint on an INT8 file, as the factory rebuilds it
    assert i8.status == "ok" and i8.label == "auto, tuned: OpenVINO INT8, f32 hint, 1 thread", i8
    pick = next(a for a in res.auto_picks if a["artifact"] == "tiny.onnx")
    assert pick["source"] == "tuned" and pick["auto_key"] == "tuned@tiny.onnx" and pick["reason"].startswith("tuned on this machine")
    assert pick["static"]["auto_key"] == "openvino-fp32@tiny.onnx" and pick["static"]["source"] == "static"
    from pawlens.bench.report import auto_line

    assert "Without the tuning (the static rule): openvino-fp32@tiny.onnx" in auto_line(pick)
    assert res.row("torch-tuned", 1) is None  # the checkpoint was not tuned: no row, the static verdict only
    assert next(a for a in res.auto_picks if a["artifact"] == "checkpoint (.pt)")["source"] == "static"


def test_a_truncated_artifact_loses_its_rows_not_the_run(rt_tiny_onnx, tmp_path):
    bad = tmp_path / "cut.onnx"
    data = open(rt_tiny_onnx["fp32"], "rb").read()
    bad.write_bytes(data[: len(data) // 3])
    res = run_bench(rt_tiny_onnx["pt"], [rt_tiny_onnx["fp32"], str(bad)], batch_sizes=(1,), warmup=0, rounds=1, burst_ms=5,
                    backends=("torch", "ort"), isolation="inline", write=False, n_images=2, cam=False, progress=False, peers=False)
    assert res.row("ort-fp32@tiny.onnx", 1) is not None and not any("cut.onnx" in r.key for r in res.rows)
    assert any(n.startswith(f"skipped {bad}:") for n in res.notes), res.notes
    with pytest.raises(ArtifactError, match="none of the --models could be read"):
        run_bench(rt_tiny_onnx["pt"], [str(bad)], batch_sizes=(1,), write=False, progress=False, peers=False, cam=False)


def test_bench_judges_exported_files_on_the_photos_their_export_gated(tmp_path, monkeypatch):
    """Without --images, files from a pawlens export are judged on that export's own gate photos (the run's split.json,
    all of its test split), and each row says so; on other photos the row says what the export found instead."""
    from test_export_runs import _split_run

    from pawlens.bench.report import main_table_row
    from pawlens.export.cli import main as export_main

    monkeypatch.chdir(tmp_path)
    ckpt = _split_run(tmp_path)
    assert export_main([str(ckpt), "--formats", "onnx,int8", "--no-progress"]) == 0
    out = tmp_path / "runs" / "export" / "baseline"
    files = [str(out / "best.onnx"), str(out / "best.int8.onnx")]
    kw = dict(batch_sizes=(1,), warmup=0, rounds=1, burst_ms=5, backends=("torch", "ort"), isolation="inline", write=False, cam=False,
              progress=False, peers=False)
    res = run_bench(str(ckpt), files, **kw)
    rows = [r for r in res.rows if r.artifact in ("best.onnx", "best.int8.onnx") and r.within_gate is not None]
    assert rows and all(r.export_sample and r.agreement_n == 2 and r.export_gate.startswith("passed on 2 photos") for r in rows)
    assert "split.json" in res.settings["agreement_data"]
    assert all("on the export's own 2 photos" in main_table_row(r)[-1] for r in rows)
    other = run_bench(str(ckpt), files, images=str(tmp_path / "photos"), n_images=6, **kw)
    rows = [r for r in other.rows if r.artifact in ("best.onnx", "best.int8.onnx") and r.within_gate is not None]
    assert rows and all(not r.export_sample and r.agreement_n == 6 for r in rows)
    assert all("on 6 other photos; the export: passed on 2 photos" in main_table_row(r)[-1] for r in rows)
    assert any("other photos than their export gated them on" in n for n in other.notes)
    (out / "best.onnx").write_bytes((out / "best.onnx").read_bytes() + b"\0")  # replaced since: its record no longer applies
    from pawlens.bench.inputs import export_gate

    assert export_gate(out / "best.onnx") is None and export_gate(out / "best.int8.onnx")["n"] == 2
