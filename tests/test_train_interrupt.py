"""Ctrl-C always wins during training: a KeyboardInterrupt swallowed by the interpreter (an at-fork callback while
DataLoader workers start, a ``__del__``) still stops the run, and the resume hint names the epoch last.pt holds."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_image_folder

from pawlens.models.checkpoint import load_checkpoint
from pawlens.train.loop import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def syn(tmp_path):
    return write_image_folder(tmp_path / "data", n_per_class=12, size=40)


def _cfg(data, out, **kw):
    return {"data": str(data), "out": str(out), "img_size": 32, "batch_size": 8, "num_workers": 0, "epochs": 3, **kw}


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def pawlens_log():
    h = _Lines()
    log = logging.getLogger("pawlens")
    log.addHandler(h)
    yield h.lines
    log.removeHandler(h)


def test_swallowed_ctrl_c_still_stops_training(syn, tmp_path, pawlens_log):
    sent = []

    def on_batch(i, loss):
        if not sent:  # a real SIGINT whose KeyboardInterrupt is swallowed, as threading/multiprocessing internals do
            sent.append(1)
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(2)
            except KeyboardInterrupt:
                pass

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(syn, tmp_path / "o"), on_batch=on_batch)
    assert not (tmp_path / "o" / "last.pt").exists(), "stopped at the next batch, in epoch 1"
    assert any("interrupted during epoch 1: no epoch was saved" in ln for ln in pawlens_log), pawlens_log
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler is put back"


def test_resume_hint_names_the_epoch_last_pt_holds(syn, tmp_path, monkeypatch, pawlens_log):
    import pawlens.models.checkpoint as mc

    real = mc.save_checkpoint
    saves = []

    def save(path, *a, **k):
        if os.path.basename(str(path)) == "last.pt":
            saves.append(path)
            if len(saves) == 2:  # Ctrl-C while epoch 2 is being saved: the atomic write leaves epoch 1's file
                raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(mc, "save_checkpoint", save)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(syn, out))
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 1
    hint = next(ln for ln in pawlens_log if ln.startswith("interrupted"))
    assert "at the end of epoch 2, before last.pt was updated" in hint and f"{out / 'last.pt'} holds epoch 1;" in hint, hint


SCRIPT = r'''
import os, signal, sys, time
fired = []

def interrupt_in_the_fork_callback():
    # SIGINT arriving while DataLoader workers are being forked: its KeyboardInterrupt is raised inside an at-fork
    # callback, where CPython prints "Exception ignored in ..." and carries on (as in logging's _releaseLock).
    if not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)

os.register_at_fork(after_in_parent=interrupt_in_the_fork_callback)
from pawlens.train.cli import train_main
sys.exit(train_main(sys.argv[1:]))
'''


def test_ctrl_c_during_dataloader_worker_start_exits_130(syn, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "o"
    p = subprocess.run([sys.executable, "-c", SCRIPT, "--data", str(syn), "--out", str(out), "--img-size", "32", "--batch-size", "8",
                        "--epochs", "2", "--num-workers", "1", "--errors-grid", "0"], env=env, capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 130, (p.returncode, p.stderr[-3000:])
    assert "Exception ignored" in p.stderr, "the interrupt was raised where the interpreter swallows it"
    assert not (out / "metrics.json").exists()


def test_ctrl_c_in_start_up_stays_a_ctrl_c_when_the_restore_fails(syn, tmp_path, monkeypatch):
    """A Ctrl-C that lands while torch imports inductor's config for use_deterministic_algorithms left torch._dynamo
    half-imported, and the restore in train()'s finally then raised AttributeError (exit 1 instead of 130)."""
    import torch

    import pawlens.train.loop as loop

    real = torch.use_deterministic_algorithms
    calls = []

    def flaky(*a, **k):
        calls.append(a)
        if len(calls) >= 3:  # the restore, after the start-up call and set_deterministic's
            raise AttributeError("module 'torch._dynamo' has no attribute 'utils'")
        return real(*a, **k)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "use_deterministic_algorithms", flaky)
    monkeypatch.setattr(loop, "set_deterministic", lambda on, dev: flaky(bool(on), warn_only=True))
    monkeypatch.setattr(loop, "_run", lambda *a, **k: (loop.set_deterministic(True, "cpu"), interrupted()))
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(syn, tmp_path / "o"))
    assert len(calls) == 3


def test_ctrl_c_swallowed_in_start_up_still_stops_training(syn, tmp_path, monkeypatch):
    """A SIGINT whose KeyboardInterrupt is swallowed before the epochs start (an import, the data scan) used to be lost:
    training ran to the end and exited 0 (1 of 10 start-up delays)."""
    import pawlens.train.loop as loop

    real = loop.resolve_config

    def swallowing(cfg):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass
        return real(cfg)

    monkeypatch.setattr(loop, "resolve_config", swallowing)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(syn, tmp_path / "o"))
    assert not (tmp_path / "o" / "last.pt").exists()
