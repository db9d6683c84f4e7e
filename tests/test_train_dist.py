"""pawlens-train under torchrun: two CPU processes with gloo, sharded data, reduced metrics, rank-0 files, resume."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, write_image_folder

from pawlens.models.checkpoint import load_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args, timeout=120):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "pawlens.train.cli", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_process_gloo_run_and_resume(tmp_path):
    data = write_image_folder(tmp_path / "data", n_per_class=12, size=32)
    out = tmp_path / "ddp"
    common = ["--img-size", "32", "--batch-size", "4", "--num-workers", "0", "--device", "cpu"]
    r = _torchrun("--data", data, "--out", out, "--epochs", "1", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "x2 (gloo)" in r.stderr  # rank 0 announced the process group
    assert r.stderr.count("epoch 1/1 [scratch] train loss") == 1  # logged by rank 0 only
    split = json.loads((out / "split.json").read_text())
    n_train, n_val = len(split["splits"]["train"]), len(split["splits"]["val"])
    h = json.loads((out / "history.json").read_text())
    row = h["epochs"][0]
    assert row["train_images"] == n_train  # 16 train images: 8 per rank, summed over both
    assert row["val_images"] == n_val  # sharded without padding, every image counted once
    assert sorted(os.listdir(out)) == sorted(["best.pt", "last.pt", "config.yaml", "split.json", "history.json", "metrics.json",
                                               "curves.png", "confusion_matrix.png", "errors.png"])
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 1

    r = _torchrun("--resume", out / "last.pt", "--epochs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    h = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in h["epochs"]] == [1, 2] and "resumed from" in r.stderr
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 2
