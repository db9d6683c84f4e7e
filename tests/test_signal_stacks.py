"""OpenVINO objects freed in any order, on any thread, must not leave a dangling alternate signal stack.

OpenVINO's CPU plugin swaps the creating thread's alternate signal stack (openvino PR 11894) and restores the
one it saw when destroyed; out-of-order or cross-thread destruction left the stack pointing at unmapped memory,
and the next signal handled there (torch's DataLoader SIGCHLD handler, Ctrl-C) killed the process with SIGSEGV
(exit 139). Before the fix, the script below exited 139; see runtime/sigstack.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import os, signal, sys, threading, time
import numpy as np
import torch
from pawlens.runtime.factory import make_predictor

path = sys.argv[1]
frame = np.zeros((40, 40, 3), np.uint8)
a, b = make_predictor(path), make_predictor(path)           # backend auto: OpenVINO for an fp32 ONNX on the CPU
assert a.runner.backend == "openvino", a.runner.backend
a.activate(); b.activate(); a.predict(frame); b.predict(frame)
a.deactivate(); b.deactivate()                              # not in LIFO order
del a, b
c = make_predictor(path)
t = threading.Thread(target=c.activate); t.start(); t.join()
c.predict(frame); c.deactivate(); del c                     # created on a thread, freed on the main thread
d = make_predictor(path); d.activate(); d.predict(frame)
t = threading.Thread(target=d.deactivate); t.start(); t.join()
del d                                                       # created on the main thread, freed on another
ds = torch.utils.data.TensorDataset(torch.arange(8.0))
n = sum(len(x) for (x,) in torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2))
time.sleep(0.3)                                             # the workers exit: SIGCHLD runs torch's handler
assert n == 8
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(2)
except KeyboardInterrupt:
    print("survived")
    sys.exit(0)
sys.exit(3)
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack handling is Linux-specific")
def test_openvino_out_of_order_and_cross_thread_then_dataloader_and_sigint(rt_tiny_onnx, tmp_path):
    pytest.importorskip("openvino")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", SCRIPT, rt_tiny_onnx["fp32"]], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and "survived" in p.stdout, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack is Linux-specific")
def test_ensure_signal_stack_installs_a_kept_stack_per_thread():
    from pawlens.runtime.sigstack import STACK_BYTES, current_signal_stack, ensure_signal_stack

    assert ensure_signal_stack() and ensure_signal_stack()  # idempotent
    main = current_signal_stack()
    assert main[1] == STACK_BYTES
    seen = {}

    def worker():
        seen["ok"] = ensure_signal_stack()
        seen["stack"] = current_signal_stack()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["ok"] and seen["stack"][1] == STACK_BYTES and seen["stack"][0] != main[0]
    assert current_signal_stack() == main
    # A Python signal handler runs on it (CPython installs handlers with SA_ONSTACK) and returns normally.
    got = []
    old = signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
    try:
        signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert got == [1]


def test_one_openvino_core_per_process(rt_tiny_onnx):
    pytest.importorskip("openvino")
    from pawlens.runtime.openvino_runner import OpenVINORunner, shared_core

    with OpenVINORunner(rt_tiny_onnx["fp32"]) as r1, OpenVINORunner(rt_tiny_onnx["int8"]) as r2:
        assert r1.is_active and r2.is_active
    assert shared_core() is shared_core()
