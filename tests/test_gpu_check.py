"""tools/gpu_check.py on this CPU machine, so the GPU check cannot rot between the rare runs on a lent GPU.

Two runs, each in a subprocess as a user would start it:

* the plain run on a machine without CUDA (what ``make gpu-check`` does here): one line says so, steps 1 and
  6 run on the CPU with real figures, steps 2-5 are skipped with a reason, the exit code is 0;
* the dry run (``--device cpu --quick --inline``): every step's body on the CPU, so a broken step (a typo, an
  API that moved) fails here and not on the GPU machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _run(args, tmp_path: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("OUT", None)  # the script would write there instead of --out
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("GOMP_SPINCOUNT", "20000")  # bounded OpenMP spin: a busy 2-core machine otherwise slows torch 10x
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def no_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the test checks the no-CUDA path; run `make gpu-check` instead")


@pytest.mark.realdata
def test_no_cuda_runs_steps_1_and_6(tmp_path, shared_data, no_cuda):
    subset = tmp_path / "subset"
    p = _run(["--make-subset", str(subset), "--photos", str(shared_data / "catsdogs"), "--per-class", "10"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(list((subset / "cat").glob("*.jpg"))) == 10 and len(list((subset / "dog").glob("*.jpg"))) == 10

    out = tmp_path / "out"
    p = _run(["--photos", str(subset), "--quick", "--out", str(out)], tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    notice = [ln for ln in p.stdout.splitlines() if ln.startswith("gpu_check: no CUDA GPU")]
    assert len(notice) == 1, p.stdout

    report = json.loads((out / "gpu_check.json").read_text())
    steps = {s["step"]: s for s in report["steps"]}
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]
    assert report["exit_code"] == 0

    s1 = steps[1]
    assert s1["status"] == "ok", s1
    f1 = s1["figures"]
    assert f1["cuda_available"] is False
    assert all(c["ok"] for c in f1["resolve"]) and any(c["want"] == "BackendUnavailable" for c in f1["resolve"])
    assert len(f1["describe"]) >= 4 and all(d["ok"] and d["describe.device"] == "cpu" for d in f1["describe"])

    s6 = steps[6]
    assert s6["status"] == "ok", s6
    row = s6["figures"]["checkpoints"]["baseline"]
    assert row["status"] == "passed" and row["exit_code"] == 0
    assert 0 <= row["max_abs"] <= row["gate"]["max_abs"] == 1e-3
    assert row["n"] >= 10 and Path(row["file"]).is_file()
    assert "UNTRAINED" in row["origin"]  # no step 2 ran, and the row says so

    for n in (2, 3, 4, 5):
        assert steps[n]["status"].startswith("skipped: needs a CUDA GPU"), steps[n]

    md = (out / "gpu_check.md").read_text()
    assert "| step | what | status | figures | seconds |" in md
    assert "| 6 onnx |" in md and "skipped: needs a CUDA GPU" in md
    assert "| step | what | status |" in p.stdout  # the table is printed too


def test_dry_run_of_every_step_on_the_cpu(tmp_path, no_cuda):
    out = tmp_path / "out"
    p = _run(["--device", "cpu", "--quick", "--inline", "--photos", "synthetic", "--models", "baseline,resnet50", "--out", str(out)],
             tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    steps = {s["step"]: s for s in report["steps"]}
    assert [steps[n]["status"] for n in range(1, 7)] == ["ok"] * 6, {n: (s["status"], s.get("reason")) for n, s in steps.items()}

    train = steps[2]["figures"]["models"]
    assert train["baseline"]["status"] == "ok" and train["baseline"]["epochs"] == 2
    assert Path(train["baseline"]["checkpoint"]).is_file() and train["baseline"]["cpu_reload"]["tensors_on_cpu"]
    assert train["resnet50"]["status"] in ("ok", "skipped: no weights")  # offline: ImageNet weights cannot be had

    rows = steps[3]["figures"]["checkpoints"]["baseline"]["rows"]
    assert rows["fp32"]["status"] == "ok" and rows["fp32"]["max_abs"] <= 1e-3
    assert rows["bf16 channels_last"]["status"] == "ok"
    assert rows["fp16"]["status"].startswith("skipped: fp16 needs CUDA")

    cam = steps[4]["figures"]["checkpoints"]["baseline"]
    assert cam["heat_max_diff"] <= 1e-5  # the same model on the same device

    bench = steps[5]["figures"]["checkpoints"]["baseline"]
    assert bench["exit_code"] == 0 and {r["batch"] for r in bench["rows"]} == {1, 8}
    assert all(r["p50_ms"] for r in bench["rows"])

    onnx = steps[6]["figures"]["checkpoints"]["baseline"]
    assert onnx["status"] == "passed" and "trained in step 2" in onnx["origin"]
