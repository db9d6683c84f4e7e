"""models.progress: a bar in a terminal, plain done/total + rate + ETA lines when stderr is a file or a pipe."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pytest

from pawlens import progress as P

LINE = re.compile(r"^\[(?P<desc>[^\]]*(?:\][^\]]*)*)\] (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) \(\d+%\), [\d.e+]+ \w+/s, elapsed \w+")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_default_interval_is_ten_to_fifteen_seconds():
    assert 10.0 <= P.DEFAULT_INTERVAL_S <= 15.0
    assert P.Progress(total=3, stream=io.StringIO()).interval == P.DEFAULT_INTERVAL_S


def test_a_slow_loop_into_a_pipe_prints_done_total_and_eta_in_time():
    """A child process whose stderr is a pipe (no terminal): the lines arrive while the loop runs, not only at its end."""
    code = ("import time\nfrom pawlens.progress import progress\n"
            "for _ in progress(range(40), desc='slow', unit='step', interval=0.5):\n    time.sleep(0.05)\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    first, first_t = proc.stderr.readline(), time.monotonic() - t0
    rest = proc.stderr.read().splitlines()
    assert proc.wait(timeout=60) == 0
    m = LINE.match(first)
    assert m, first
    assert m["desc"] == "slow" and m["total"] == "40" and 0 < int(m["done"]) < 40 and "ETA " in first
    assert first_t < 15, f"first progress line after {first_t:.1f} s"
    assert rest and rest[-1].endswith(", done") and "40/40 step (100%)" in rest[-1] and "ETA" not in rest[-1]
    dones = [int(LINE.match(x)["done"]) for x in [first, *rest]]
    assert dones == sorted(dones)


def test_lines_follow_the_interval_and_carry_the_postfix(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(P.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = P.progress(total=10, desc="epoch 1/3 [head]", unit="batch", interval=12, stream=out)
    for _ in range(10):
        clock[0] += 5.0  # 5 s a batch: a line at 15 s, 30 s, 45 s
        bar.set_postfix(loss="0.6931")
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == "[epoch 1/3 [head]] 3/10 batch (30%), 0.2 batch/s, elapsed 15s, ETA 35s, loss=0.6931"
    assert lines[-1] == "[epoch 1/3 [head]] 10/10 batch (100%), 0.2 batch/s, elapsed 50s, loss=0.6931, done"


def test_a_short_loop_prints_nothing_and_disabled_prints_nothing():
    out = io.StringIO()
    assert list(P.progress(range(5), stream=out)) == list(range(5))
    assert out.getvalue() == ""
    bar = P.progress(total=3, stream=out, enabled=False, interval=1e-9)
    bar.update(3)
    bar.close()
    assert out.getvalue() == "" and bar.disable


def test_unknown_total_has_no_eta():
    out = io.StringIO()
    bar = P.progress(desc="predict", unit="frame", stream=out, interval=1e-9)
    time.sleep(0.01)
    bar.update(4)
    assert out.getvalue().startswith("[predict] 4 frame, ") and "ETA" not in out.getvalue()


def test_a_terminal_gets_the_tqdm_bar():
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w") as tty:
            bar = P.progress(total=2, desc="x", stream=tty)
            assert bar.tty and bar._bar is not None
            bar.update(2)
            bar.close()
            assert bar.lines == 0
    finally:
        os.close(master)


def test_training_and_evaluation_report_progress_without_a_terminal(tmp_path, monkeypatch, capsys):
    from conftest import write_image_folder

    from pawlens.train.loop import train

    monkeypatch.setattr(P, "DEFAULT_INTERVAL_S", 1e-9)  # every update writes a line (the real default is tested above)
    data = write_image_folder(tmp_path / "data", n_per_class=12, size=40)
    train({"data": str(data), "out": str(tmp_path / "run"), "img_size": 32, "batch_size": 8, "num_workers": 0, "epochs": 1})
    lines = capsys.readouterr().err.splitlines()
    train_lines = [x for x in lines if x.startswith("[epoch 1/1") and " val]" not in x]
    val_lines = [x for x in lines if x.startswith("[epoch 1/1") and " val] " in x]
    test_lines = [x for x in lines if x.startswith("[test] ")]
    assert train_lines and val_lines and test_lines, lines
    assert all(LINE.match(x) for x in train_lines + val_lines + test_lines)
    assert "loss=" in train_lines[0] and "ETA" in train_lines[0] and train_lines[-1].endswith(", done")


def test_predict_reports_progress_without_a_terminal(rt_tiny_onnx, image_folder, monkeypatch, capsys):
    from pawlens.runtime.predict import main

    monkeypatch.setattr(P, "DEFAULT_INTERVAL_S", 1e-9)
    assert main([rt_tiny_onnx["fp32"], str(image_folder), "--batch-size", "8", "--quiet"]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[predict] ")]
    assert [LINE.match(x)["done"] for x in lines[:2]] == ["8", "16"] and all("/24 frame" in x for x in lines), lines
    assert lines[-1].startswith("[predict] 24/24 frame (100%)") and lines[-1].endswith("done")


def test_set_description_renames_the_lines():
    out = io.StringIO()
    bar = P.progress(total=2, desc="[1/2] onnx", unit="step", stream=out, interval=1e-9)
    time.sleep(0.01)
    bar.update(1)
    bar.set_description("[2/2] int8")
    time.sleep(0.01)
    bar.update(1)
    assert [x.split("] ", 1)[0] for x in out.getvalue().splitlines()] == ["[[1/2", "[[2/2"]
    assert "int8] 2/2 step" in out.getvalue().splitlines()[1]


def test_a_step_line_is_written_once_and_an_infinite_interval_adds_none():
    """Export's step log and the bench's bars go through Progress: write() puts a line of its own; with
    interval=inf (the export's) no timed line is added, and a disabled one writes nothing."""
    out = io.StringIO()
    p = P.Progress(total=2, desc="export", unit="step", interval=float("inf"), stream=out)
    p.write("[1/2] onnx: passed")
    p.update(1)
    p.update(1)
    p.close()
    assert out.getvalue() == "[1/2] onnx: passed\n"
    quiet = io.StringIO()
    P.Progress(total=1, enabled=False, stream=quiet).write("x")
    assert quiet.getvalue() == ""
