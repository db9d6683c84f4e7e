"""pawlens-demo end to end on small configurations (the full-size run is `make demo`)."""

from __future__ import annotations

import json
import os

import pytest

from pawlens.demo.cli import main

#: a short bench (one burst per row, no peer tools) and tune: the demo's stages run, the figures are not the point here
QUICK_BENCH = ["--bench-rounds", "1", "--burst-ms", "5", "--no-peers", "--tune-budget-s", "3"]


def _run_demo(args: list[str], cache) -> tuple[int, str]:
    """The demo in its own interpreter, as a user runs it (training there uses DataLoader worker processes); its tune stage
    stores into ``cache``, not the user's cache folder."""
    import subprocess
    import sys

    env = {**os.environ, "PAWLENS_CACHE_DIR": str(cache)}
    p = subprocess.run([sys.executable, "-m", "pawlens.demo.cli", *args], capture_output=True, text=True, timeout=600, env=env)
    return p.returncode, p.stdout + p.stderr


def _check_report(out, *, expect: list[str], skipped: tuple[str, ...] = ()):
    md = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    for s in expect:
        assert s in md, f"{s!r} missing from report.md"
    assert "<table>" in html and "<img src=" in html
    for rel in __import__("re").findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert os.path.exists(os.path.join(out, rel)), f"report links a missing figure {rel}"
    demo = json.load(open(os.path.join(out, "demo.json")))
    assert all(s["status"] == ("skipped" if s["name"] in skipped else "ok") for s in demo["stages"]) and demo["total_seconds"] > 0
    return md


def _check_gui_command(printed: str) -> None:
    """The closing line is one pasteable command: absolute paths that exist, a model, its reference and a source."""
    import shlex

    lines = printed.splitlines()
    cmd = lines[lines.index(next(ln for ln in lines if "open the GUI" in ln)) + 1].strip()
    argv = shlex.split(cmd)
    assert argv[0] == "pawlens-gui" and {"--model", "--reference", "--source"} <= set(argv), cmd
    for flag in ("--model", "--reference", "--source"):
        path = argv[argv.index(flag) + 1]
        assert os.path.isabs(path) and os.path.exists(path), (flag, path)


def test_gui_command_quotes_and_absolutises(tmp_path):
    import shlex

    from pawlens.demo.pipeline import gui_command

    cmd = gui_command("runs/x y/best.onnx", "runs/x y/best.pt", None)
    argv = shlex.split(cmd)
    assert argv == ["pawlens-gui", "--model", os.path.abspath("runs/x y/best.onnx"), "--reference", os.path.abspath("runs/x y/best.pt")]


@pytest.mark.slow
def test_demo_with_data(tmp_path, capsys):
    from pawlens.synthetic import write_image_folder

    data = write_image_folder(tmp_path / "photos", n_per_class=20, size=48)
    out = tmp_path / "demo"
    rc, printed = _run_demo(["--data", str(data), "--models", "baseline,resnet50", "--weights", str(tmp_path / "missing.pth"),
                             "--img-size", "32", "--epochs", "2", *QUICK_BENCH, "--batch-sizes", "1", "--cam-examples", "4", "--out", str(out)],
                            tmp_path / "cache")
    assert rc == 0, printed
    md = _check_report(out, expect=["From scratch vs. transfer learning (test split)", "| baseline |", "Export and parity",
                                    "PyTorch fp32 eager", "Grad-CAM", "pawlens-gui --model", "**Deployed:", "images seen"],
                       skipped=("train resnet50",))
    assert "from scratch" in md
    # the model that could not be trained: one short line on the first screen, its reason once, under the table
    assert md.count("missing.pth") == 1 and "resnet50: not trained: no ImageNet weights (why: under From scratch" in md
    assert "pawlens-gui --model" in printed and "report.md" in printed and "stage times" in printed
    _check_gui_command(printed)
    for f in ("export/baseline/best.onnx", "export/baseline/best.int8.onnx", "export/baseline/parity.json", "bench/bench.json",
              "gradcam_grid.png", "train/baseline/curves.png", "train/baseline/confusion_matrix.png"):
        assert os.path.exists(out / f), f


@pytest.mark.slow
def test_demo_embedded_default_says_untrained(tmp_path, capsys):
    out = tmp_path / "demo"
    rc, printed = _run_demo(["--no-data", "--embedded-model", "baseline", "--embedded-size", "32", *QUICK_BENCH, "--batch-sizes", "1",
                             "--cam-examples", "2", "--out", str(out)], tmp_path / "cache")
    assert rc == 0, printed
    assert "[demo] tuned embedded_baseline.int8.onnx: batch 1: " in printed and str(tmp_path / "cache") in printed
    md = _check_report(out, expect=["untrained", "synthetic images", "What each gate means", "says little"])
    _check_gui_command(printed)
    assert "Test-split comparison" not in md


def test_demo_help_and_bad_data(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "embedded default" in capsys.readouterr().out
    rc = main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "pawlens-demo: error:" in capsys.readouterr().err


def test_stage_table_says_ok_skipped_or_failed(capsys):
    """A model the demo could not train (no ImageNet weights offline) reads "skipped" in the stage table, not "ok"."""
    from pawlens.demo.cli import Stages

    stages = Stages()
    with stages("train baseline"):
        pass
    with stages("train resnet50") as stage:
        stage.skip()
    with pytest.raises(RuntimeError):
        with stages("export"):
            raise RuntimeError("boom")
    assert [(n, s) for n, _, s in stages.times] == [("train baseline", "ok"), ("train resnet50", "skipped"), ("export", "failed")]
    assert "[demo] train resnet50: skipped in" in capsys.readouterr().out
