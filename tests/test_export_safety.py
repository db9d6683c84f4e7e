"""Interrupt-safe, exclusive exports: killed (SIGKILL) or interrupted (SIGINT) at named points, the folder never holds
an ungated artifact under a loadable name, parity.json always matches the folder, a second export into a locked
folder fails at once, and temporary files of killed runs are removed by the next run.

The kills use the export's documented test hook ``PAWLENS_TEST_FAULT=<point>[:INT|KILL]`` (export.pipeline.fault_point):
the process signals itself when it reaches the point, so nothing depends on timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import write_image_folder  # noqa: E402

from pawlens.export.cli import main  # noqa: E402
from pawlens.export.pipeline import FAULT_ENV, LOCK_NAME, export_all  # noqa: E402
from pawlens.fs import FolderLock, atomic_write_bytes, sha256_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOADABLE = (".onnx", ".engine")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def assert_consistent(out: Path) -> dict:
    """Every file under a loadable name passed its gate (a passed row with its sha256); every row names a file that is there."""
    doc = json.loads((out / "parity.json").read_text()) if (out / "parity.json").exists() else {"artifacts": [], "kept": []}
    rows = list(doc["artifacts"]) + list(doc.get("kept", []))
    for r in rows:
        if r.get("file") is not None:
            assert (out / r["file"]).exists(), f"parity.json describes {r['file']}, which is not there"
        if r.get("status") == "passed":
            assert r.get("file"), f"a passed row without its file: {r}"
    passed = {r["file"]: r for r in rows if r.get("status") == "passed"}
    for p in out.iterdir():
        if p.is_file() and p.name.endswith(LOADABLE):
            assert p.name in passed, f"{p.name} is loadable but parity.json has no passed gate for it: {sorted(passed)}"
            assert passed[p.name]["sha256"] == sha256_file(p), f"{p.name} is not the file that passed its gate"
    return doc


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    return write_image_folder(root / "parity", n_per_class=4, size=48, seed=1), write_image_folder(root / "calib", n_per_class=4, size=48, seed=2)


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory, tiny_checkpoint):
    """Checkpoint A (the tiny fixture) and B (other weights), both named tiny.pt."""
    import torch

    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model

    d = tmp_path_factory.mktemp("ckpts")
    (d / "a").mkdir()
    (d / "b").mkdir()
    a = d / "a" / "tiny.pt"
    a.write_bytes(Path(tiny_checkpoint).read_bytes())
    torch.manual_seed(7)
    b = save_checkpoint(d / "b" / "tiny.pt", model=create_model("baseline", num_classes=2), arch="baseline", class_names=["cat", "dog"],
                        preprocess=PreprocessConfig.for_size(32))
    return a, Path(b)


def _export_subprocess(ckpt, out, images, fault: str | None) -> subprocess.CompletedProcess:
    par, cal = images
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "pawlens.export.cli", str(ckpt), "--parity-data", str(par), "--calib", str(cal),
                           "--out", str(out), "--exist-ok", "--no-progress"], env=env, capture_output=True, text=True, timeout=300)


def _source(out: Path, name: str) -> str:
    from pawlens.export.onnx import read_meta

    return read_meta(out / name).source_sha256


@pytest.mark.slow  # seven exports, five of them in subprocesses: ~1.5 min on 2 cores
def test_killed_and_interrupted_exports_leave_only_gated_files(two_checkpoints, images, tmp_path):
    a, b = two_checkpoints
    sha_a, sha_b = sha256_file(a), sha256_file(b)
    out = tmp_path / "exp"
    # 1. Fresh folder, SIGKILL while the fp32 ONNX is being gated: nothing under a loadable name, no parity.json row.
    p = _export_subprocess(a, out, images, "gate:onnx")
    assert p.returncode == -9, p.stderr[-2000:]
    assert not (out / "tiny.onnx").exists() and list(out.glob(".export.tmp-*")), "the killed run's staging folder is left"
    assert_consistent(out)
    # 2. Again, SIGKILL while INT8 is gated: fp32 and fp16 passed and are in place, INT8 is not.
    p = _export_subprocess(a, out, images, "gate:int8")
    assert p.returncode == -9, p.stderr[-2000:]
    doc = assert_consistent(out)
    assert (out / "tiny.onnx").exists() and (out / "tiny.fp16.onnx").exists() and not (out / "tiny.int8.onnx").exists()
    assert {r["format"]: r["status"] for r in doc["artifacts"]} == {"onnx": "passed", "fp16": "passed"}
    assert len(list(out.glob(".export.tmp-*"))) == 1, "the first killed run's staging folder was removed by the second run"
    # 3. A complete export of A: a good folder.
    rep = export_all(a, out_dir=out, parity_images=images[0], calib=images[1], progress=False, exist_ok=True)
    assert rep.exit_code == 0 and not rep.interrupted
    assert not [p for p in out.iterdir() if ".tmp-" in p.name], "temporary files of killed runs are removed"
    good = {f: sha256_file(out / f) for f in ("tiny.onnx", "tiny.fp16.onnx", "tiny.int8.onnx")}
    assert_consistent(out)
    # 4. Re-export of B over the good folder, SIGKILL after B's fp32 ONNX is built but before its gate: A's files stay.
    p = _export_subprocess(b, out, images, "built:onnx")
    assert p.returncode == -9, p.stderr[-2000:]
    assert {f: sha256_file(out / f) for f in good} == good
    assert_consistent(out)
    # 5. SIGKILL while B's fp32 ONNX is gated: the same.
    p = _export_subprocess(b, out, images, "gate:onnx")
    assert p.returncode == -9
    assert {f: sha256_file(out / f) for f in good} == good and _source(out, "tiny.onnx") == sha_a
    assert_consistent(out)
    # 6. SIGKILL once B's fp32 passed and parity.json said so: B's fp32 is in place, A's fp16/int8 kept and described.
    p = _export_subprocess(b, out, images, "done:onnx")
    assert p.returncode == -9
    doc = assert_consistent(out)
    assert _source(out, "tiny.onnx") == sha_b and _source(out, "tiny.int8.onnx") == sha_a
    assert {k["file"] for k in doc["kept"]} == {"tiny.fp16.onnx", "tiny.int8.onnx"}
    # 7. Ctrl-C (SIGINT) while B's fp16 is gated: exit 130, the report says interrupted and names no missing file.
    p = _export_subprocess(b, out, images, "gate:fp16:INT")
    assert p.returncode == 130, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and p.stderr.strip().splitlines()[-1].startswith("pawlens-export: interrupted")
    doc = assert_consistent(out)
    assert doc["interrupted"] and {r["format"]: r["status"] for r in doc["artifacts"]}["fp16"] == "interrupted"
    assert _source(out, "tiny.fp16.onnx") == sha_a, "the good fp16 stays until its replacement has passed"
    # 8. A complete export of B: every file is B's, nothing kept, no temporary files.
    rep = export_all(b, out_dir=out, parity_images=images[0], calib=images[1], progress=False, exist_ok=True)
    doc = assert_consistent(out)
    assert rep.exit_code == 0 and not doc["kept"] and not [p for p in out.iterdir() if ".tmp-" in p.name]
    assert {_source(out, f) for f in good} == {sha_b}


def test_failed_replacement_keeps_the_passing_file_of_the_other_checkpoint(two_checkpoints, images, tmp_path, monkeypatch, capsys):
    import pawlens.export.onnx as eo

    a, b = two_checkpoints
    out = tmp_path / "o"
    assert export_all(a, formats="onnx,fp16", out_dir=out, parity_images=images[0], progress=False).exit_code == 0
    good_fp16 = sha256_file(out / "tiny.fp16.onnx")
    real = eo.convert_fp16

    def broken(src, dst):
        from test_export_pipeline import _perturb_classifier

        p = real(src, dst)
        _perturb_classifier(p, 0.5)
        return p

    monkeypatch.setattr(eo, "convert_fp16", broken)
    rep = export_all(b, formats="onnx,fp16", out_dir=out, parity_images=images[0], progress=False, exist_ok=True)
    assert rep.exit_code == 1
    doc = assert_consistent(out)
    # A's passing fp16 is not pushed aside by B's failed one, which is kept as .failed for inspection; parity.json says
    # whose the kept file is.
    assert sha256_file(out / "tiny.fp16.onnx") == good_fp16 and (out / "tiny.fp16.onnx.failed").exists()
    assert [(k["file"], k["source_sha256"]) for k in doc["kept"]] == [("tiny.fp16.onnx", sha256_file(a))]
    assert "Kept from a previous export" in (out / "parity.md").read_text()
    # The failed row ends with the next step: for fp16, the fp32 ONNX or the exact --gate override.
    row = {r["format"]: r for r in doc["artifacts"]}["fp16"]
    assert "Next: " in row["reason"] and "--gate fp16.max_abs=" in row["reason"]


def test_build_error_over_a_good_folder(two_checkpoints, images, tmp_path, monkeypatch, capsys):
    import pawlens.export.onnx as eo
    from pawlens.errors import ArtifactError

    a, b = two_checkpoints
    out = tmp_path / "o"
    assert export_all(a, formats="onnx,fp16", out_dir=out, parity_images=images[0], progress=False).exit_code == 0
    good_fp16 = sha256_file(out / "tiny.fp16.onnx")

    def refuse(src, dst):
        raise ArtifactError(f"{dst}: onnx.checker rejected the model (simulated)")

    monkeypatch.setattr(eo, "convert_fp16", refuse)
    rc = main([str(b), "--formats", "onnx,fp16", "--parity-data", str(images[0]), "--out", str(out), "--exist-ok", "--no-progress"])
    assert rc == 1
    doc = assert_consistent(out)
    row = {r["format"]: r for r in doc["artifacts"]}["fp16"]
    assert row["status"] == "failed" and row["file"] is None and "simulated" in row["reason"]
    assert sha256_file(out / "tiny.fp16.onnx") == good_fp16 and [k["file"] for k in doc["kept"]] == ["tiny.fp16.onnx"]
    assert "FAIL fp16  (no file written): [artifact]" in capsys.readouterr().err


def test_ungated_leftover_is_renamed_unverified(two_checkpoints, images, tmp_path):
    a, _ = two_checkpoints
    out = tmp_path / "o"
    out.mkdir()
    (out / "tiny.int8.onnx").write_bytes(b"left by an export killed before this version")
    (out / f"tiny.onnx.tmp-{_dead_pid()}").write_bytes(b"partial")
    assert export_all(a, formats="onnx", out_dir=out, parity_images=images[0], progress=False, exist_ok=True).exit_code == 0
    assert (out / "tiny.int8.onnx.unverified").exists() and not (out / "tiny.int8.onnx").exists()
    assert not list(out.glob("*.tmp-*"))
    assert_consistent(out)


def test_second_export_into_a_locked_folder_fails_at_once(tiny_checkpoint, images, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    with FolderLock(out, LOCK_NAME, prog="pawlens-export"):  # as a running export holds it
        rc = main([str(tiny_checkpoint), "--formats", "onnx", "--parity-data", str(images[0]), "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("pawlens-export: error: [output]")
    assert f"another pawlens-export (PID {os.getpid()}" in err[0] and "--out" in err[0]
    assert not list(out.glob("*.onnx")) and not (out / "parity.json").exists()
    # The holder is gone: a lock file left by a dead process is stale and taken over.
    (out / LOCK_NAME).write_text(f"{_dead_pid()} somehost 2026-01-01T00:00:00\n")
    assert main([str(tiny_checkpoint), "--formats", "onnx", "--parity-data", str(images[0]), "--out", str(out), "--no-progress"]) == 0
    assert not (out / LOCK_NAME).exists(), "the lock is removed when the export ends"


def test_atomic_writes_remove_temporaries_of_dead_processes_only(tmp_path, tiny_checkpoint):
    from pawlens.models.checkpoint import load_checkpoint, save_checkpoint

    dead, alive = _dead_pid(), os.getppid()
    (tmp_path / f"last.pt.tmp-{dead}").write_bytes(b"partial save of a killed training")
    (tmp_path / f"last.pt.tmp-{alive}").write_bytes(b"a save in progress in a live process")
    (tmp_path / f"best.pt.tmp-{dead}").write_bytes(b"another file's temporary: removed when best.pt is next saved")
    save_checkpoint(tmp_path / "last.pt", load_checkpoint(tiny_checkpoint))
    assert not (tmp_path / f"last.pt.tmp-{dead}").exists() and (tmp_path / f"last.pt.tmp-{alive}").exists()
    assert (tmp_path / f"best.pt.tmp-{dead}").exists()
    atomic_write_bytes(tmp_path / "best.pt", b"x")
    assert not (tmp_path / f"best.pt.tmp-{dead}").exists()
