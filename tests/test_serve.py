"""Serving on the real Triton server: the repository export writes, `pawlens serve`, and the clients.

One server is started for the module (``served``); the SIGKILL/SIGTERM test starts its own.  Everything skips only where
the serve extra (tritonclient, nvidia-pytriton's tritonserver) is missing.
"""

from __future__ import annotations

import glob
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image_folder

pytest.importorskip("tritonclient.grpc", reason="the serve extra is not installed (pip install -e '.[serve]')")


def _triton_or_skip():
    from pawlens.errors import BackendUnavailable
    from pawlens.serve.server import find_triton

    try:
        return find_triton()
    except BackendUnavailable as e:
        pytest.skip(f"no tritonserver: {e}")


def free_ports(n: int = 3) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def children(pid: int) -> list[int]:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.split("/")[2]))
        except (OSError, IndexError, ValueError):
            continue
    return out


def port_free(port: int) -> bool:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # no listener there (connections in TIME_WAIT do not count)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Serve:
    """``pawlens serve PATH`` in a subprocess, on free ports; ``start()`` returns once its ready line is printed."""

    def __init__(self, path, *extra: str, ports: tuple[int, int, int] | None = None):
        self.http, self.grpc, self.metrics = ports or free_ports()
        self.cmd = [sys.executable, "-m", "pawlens.serve.cli", str(path), "--http-port", str(self.http), "--grpc-port", str(self.grpc),
                    "--metrics-port", str(self.metrics), *extra]
        self.proc = None
        self.lines: list[str] = []

    def start(self, timeout: float = 180.0) -> "Serve":
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            line = self.proc.stdout.readline()
            if line:
                self.lines.append(line.rstrip())
                if line.startswith("pawlens serve: ready"):
                    threading.Thread(target=self._drain, daemon=True).start()
                    return self
            elif self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError("pawlens serve did not become ready:\n" + "\n".join(self.lines[-20:]))

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def server_pid(self) -> int:
        kids = [p for p in children(self.proc.pid) if "tritonserver" in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")]
        assert kids, "no tritonserver child"
        return kids[0]

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait() if self.proc else 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported with --formats onnx,int8,triton: (export folder, report)."""
    from pawlens.export.pipeline import export_all

    d = tmp_path_factory.mktemp("serve")
    imgs = write_image_folder(d / "photos", n_per_class=6, size=48)
    rep = export_all(tiny_checkpoint, formats="onnx,int8,triton", out_dir=d / "export", parity_images=imgs, calib=imgs, progress=False)
    assert rep.triton and rep.triton["status"] == "passed", rep.triton
    return Path(rep.out_dir), rep


@pytest.fixture(scope="module")
def served(exported):
    _triton_or_skip()
    srv = Serve(exported[0]).start()
    yield srv
    srv.stop()


# ----------------------------------------------------------------------------- the repository


def test_repository_configs_parse_with_tritons_schema(exported):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    out, rep = exported
    repo = out / "triton"
    names = sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
    assert names == sorted(rep.triton["models"])
    t = next(n for n in names if n.endswith("_preprocess"))[: -len("_preprocess")]  # the run's name (the checkpoint's folder)
    assert set(names) == {f"{t}_onnx", f"{t}_onnx_pawlens", f"{t}_onnx_image", f"{t}_int8", f"{t}_int8_pawlens", f"{t}_int8_image", f"{t}_preprocess"}
    cfgs = {n: text_format.Parse((repo / n / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()) for n in names}
    native = cfgs[f"{t}_int8"]
    assert native.platform == "onnxruntime_onnx" and native.max_batch_size == 32
    assert [tuple(i.dims) for i in native.input] == [(3, 32, 32)] and native.input[0].data_type == model_config_pb2.TYPE_FP32
    assert [tuple(o.dims) for o in native.output] == [(2,)] and native.output[0].label_filename == "labels.txt"
    assert native.HasField("dynamic_batching")
    assert (repo / f"{t}_int8" / "1" / "model.onnx").read_bytes() == (out / "tiny.int8.onnx").read_bytes()
    assert (repo / f"{t}_int8" / "labels.txt").read_text().split() == ["cat", "dog"]
    py = cfgs[f"{t}_int8_pawlens"]
    assert py.backend == "python" and py.parameters["pawlens.artifact"].string_value == f"{t}_int8/1/model.onnx"
    import json

    assert json.loads(py.parameters["pawlens.preprocess"].string_value)["input_size"] == 32
    assert {i.name: i.optional for i in py.input} == {"input": True, "image": True}
    ens = cfgs[f"{t}_int8_image"]
    assert ens.platform == "ensemble" and [s.model_name for s in ens.ensemble_scheduling.step] == [f"{t}_preprocess", f"{t}_int8"]
    assert "triton" in (out / "parity.md").read_text()


def test_repository_holds_only_passed_artifacts_and_never_replaces_a_foreign_folder(exported, tmp_path):
    from pawlens.errors import OutputError
    from pawlens.serve.repository import read_repository, write_repository

    out, _ = exported
    dest = tmp_path / "triton"
    dest.mkdir()
    (dest / "mine.txt").write_text("user data")
    with pytest.raises(OutputError, match="not written by pawlens-export"):
        write_repository(dest, [("int8", str(out / "tiny.int8.onnx"))], prefix="t")
    assert (dest / "mine.txt").read_text() == "user data"
    own = tmp_path / "own"
    write_repository(own, [("int8", str(out / "tiny.int8.onnx"))], prefix="t")
    repo = write_repository(own, [("onnx", str(out / "tiny.onnx"))], prefix="t")  # its own folder: replaced whole
    assert sorted(read_repository(own).models) == sorted(repo.models) and "t_int8" not in repo.models
    assert not list(tmp_path.glob(".own.tmp-*")) and not list(tmp_path.glob("own.old-*"))


def test_export_triton_with_no_passed_artifact_fails_and_says_so(tiny_checkpoint, tmp_path):
    from pawlens.export.pipeline import export_all
    from pawlens.runtime.compare import Gate

    imgs = write_image_folder(tmp_path / "p", n_per_class=3, size=48)
    rep = export_all(tiny_checkpoint, formats="onnx,triton", out_dir=tmp_path / "e", parity_images=imgs, progress=False,
                     gates={"fp32": Gate(max_abs=-1.0)})  # a gate nothing passes
    assert rep.artifact("onnx").status == "failed"
    assert rep.triton["status"] == "failed" and "nothing to serve" in rep.triton["reason"]
    assert rep.exit_code == 1 and not (tmp_path / "e" / "triton").exists()


# ----------------------------------------------------------------------------- pawlens serve: refusals before starting


def _serve_cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "pawlens.serve.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def test_serve_refuses_a_taken_port_a_missing_server_and_a_bad_path(exported, tmp_path):
    _triton_or_skip()
    out, _ = exported
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    taken = s.getsockname()[1]
    try:
        http, grpc, metrics = free_ports()
        r = _serve_cli(out, "--http-port", taken, "--grpc-port", grpc, "--metrics-port", metrics)
        assert r.returncode == 2 and f"127.0.0.1:{taken} (--http-port) is taken" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    finally:
        s.close()
    r = _serve_cli(out, env={"PAWLENS_TRITONSERVER": str(tmp_path / "no-such-tritonserver")})
    assert r.returncode == 2 and "not an executable tritonserver" in r.stderr
    r = _serve_cli(tmp_path / "nothing-here")
    assert r.returncode == 2 and "no such file or folder" in r.stderr
    (tmp_path / "plain").mkdir()
    r = _serve_cli(tmp_path / "plain")
    assert r.returncode == 2 and "neither an export folder" in r.stderr


def test_serve_says_which_model_fails_to_load(exported, tmp_path):
    import shutil

    _triton_or_skip()
    out, _ = exported
    bad = tmp_path / "repo"
    shutil.copytree(out / "triton", bad)
    py = next(p.name for p in bad.iterdir() if p.name.endswith("_int8_pawlens"))
    (bad / py.replace("_pawlens", "") / "1" / "model.onnx").write_bytes(b"not an onnx file")  # the Python model loads this file
    http, grpc, metrics = free_ports()
    r = _serve_cli(bad, "--http-port", http, "--grpc-port", grpc, "--metrics-port", metrics, "--models", py)
    assert r.returncode == 2, r.stderr
    assert f"failed to load '{py}'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert port_free(http) and port_free(grpc)


# ----------------------------------------------------------------------------- served = local


def test_served_labels_equal_local_labels(served, exported, real_photos):
    from pawlens.runtime.predict import predict_sources

    out, _ = exported
    local, _ = predict_sources(str(out / "tiny.int8.onnx"), real_photos, progress=False, workers=0)
    for url in (served.url, f"grpc://127.0.0.1:{served.grpc}"):
        res, info = predict_sources(None, real_photos, server=url, progress=False, workers=0)
        assert info["backend"] == "triton" and info["model"].endswith("_int8_pawlens")
        assert [r.label for r in res] == [r.label for r in local]
        np.testing.assert_allclose([r.confidence for r in res], [r.confidence for r in local], atol=1e-5)
    # encoded images: the server decodes and preprocesses them with the artifact's own contract
    from pawlens.serve.client import TritonRunner

    with TritonRunner(served.url) as r:
        logits = r.infer_images([Path(p).read_bytes() for p in real_photos[:4]])
    assert list(logits.argmax(1)) == [local[i].index for i in range(4)]


def test_predict_cli_with_server_writes_the_same_csv(served, exported, tmp_path, real_photos):
    import csv

    out, _ = exported
    a, b = tmp_path / "served.csv", tmp_path / "local.csv"
    r = subprocess.run([sys.executable, "-m", "pawlens.runtime.predict", "--server", served.url, *real_photos[:6], "--out", str(a),
                        "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "pawlens.runtime.predict", str(out / "tiny.int8.onnx"), *real_photos[:6], "--out", str(b),
                        "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ra, rb = list(csv.DictReader(a.open())), list(csv.DictReader(b.open()))
    assert [x["label"] for x in ra] == [x["label"] for x in rb] and list(ra[0]) == list(rb[0])


# ----------------------------------------------------------------------------- bad requests


def test_bad_requests_get_errors_and_the_next_request_is_answered(served):
    import tritonclient.http as h
    from tritonclient.utils import InferenceServerException

    c = h.InferenceServerClient(f"127.0.0.1:{served.http}", network_timeout=60)
    model = next(m["name"] for m in c.get_model_repository_index() if m["name"].endswith("_int8_pawlens"))
    good = np.zeros((1, 3, 32, 32), np.float32)

    def tensor(name, arr, dtype):
        i = h.InferInput(name, list(arr.shape), dtype)
        i.set_data_from_numpy(arr, binary_data=True)
        return i

    def ok():
        res = c.infer(model, [tensor("input", good, "FP32")])
        assert res.as_numpy("logits").shape == (1, 2)

    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.full((40, 40, 3), 127, np.uint8)).save(buf, format="JPEG")
    jpeg = np.frombuffer(buf.getvalue(), np.uint8)
    bad = {
        "wrong dtype": (model, [tensor("input", good.astype(np.float64), "FP64")], "data-type"),
        "wrong shape": (model, [tensor("input", np.zeros((1, 3, 31, 31), np.float32), "FP32")], "shape"),
        "empty batch": (model, [tensor("input", np.zeros((0, 3, 32, 32), np.float32), "FP32")], ""),
        "50 MB tensor": (model, [tensor("input", np.zeros((1, 3, 2048, 2048), np.float32), "FP32")], "shape"),
        "50 MB of junk as an image": (model, [tensor("image", np.random.default_rng(0).integers(0, 255, (1, 50_000_000), np.uint8), "UINT8")],
                                      "not a readable image"),
        "corrupt JPEG": (model, [tensor("image", jpeg[: len(jpeg) // 2].reshape(1, -1), "UINT8")], "image"),
        "both inputs": (model, [tensor("input", good, "FP32"), tensor("image", jpeg.reshape(1, -1), "UINT8")], "exactly one"),
        "unknown model": ("no_such_model", [tensor("input", good, "FP32")], "no_such_model"),
    }
    for what, (name, inputs, expect) in bad.items():
        with pytest.raises(InferenceServerException) as e:
            c.infer(name, inputs)
        assert expect.lower() in str(e.value).lower(), (what, str(e.value))
        ok()  # the server still answers
    res = c.infer(model, [tensor("image", jpeg.reshape(1, -1), "UINT8")])  # a good encoded image
    assert res.as_numpy("logits").shape == (1, 2)


def test_client_errors_name_the_url_and_the_fix(served):
    from pawlens.serve.client import TritonRunner
    from pawlens.serve.server import ServeError

    (dead,) = free_ports(1)
    with pytest.raises(ServeError, match=f"127.0.0.1:{dead}: no Triton server answers"):
        TritonRunner(f"http://127.0.0.1:{dead}")
    with pytest.raises(ServeError, match="'nope' is not loaded there; it serves"):
        TritonRunner(served.url, model="nope")


def test_bench_server_rows_side_by_side(served, exported, tmp_path):
    from pawlens.bench.serving import run_serving

    out, _ = exported
    res = run_serving(f"grpc://127.0.0.1:{served.grpc}", concurrency=(1, 4), requests=40, artifact=str(out / "tiny.int8.onnx"),
                      out=str(tmp_path), progress=False)
    names = [r["name"] for r in res["rows"]]
    assert names == ["in-process b=1 (openvino)", "served c=1 (shared memory)", "served c=1 (network)", "served c=4 (shared memory)",
                     "in-process b=4 (openvino)"]
    for r in res["rows"]:
        assert r["errors"] == 0 and r["answered"] == r["requests"] and r["p50_ms"] > 0 and r["throughput"] > 0
    assert sum("within 2.0 ms" in g[0] for g in res["goals"]) == 2  # one per transport
    assert (tmp_path / "serving.md").read_text().count("| served c=") == 3


def test_shared_memory_and_network_give_the_same_logits_and_the_region_goes(served):
    from pawlens.serve.client import TritonRunner

    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with TritonRunner(served.url, shared_memory="off") as net:
        assert net.transport == "network"
        a = net.infer(x)
        a30 = net.infer(np.repeat(x, 10, axis=0))
    with TritonRunner(f"grpc://127.0.0.1:{served.grpc}", shared_memory="on") as mem:
        assert mem.transport == "shared memory"
        b = mem.infer(x)
        c = mem.infer(np.repeat(x, 10, axis=0))  # a larger batch: the region grows
        region = mem._shm[1]
        assert os.path.exists("/dev/shm" + region)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c, a30)
    assert not os.path.exists("/dev/shm" + region)


# ----------------------------------------------------------------------------- killed and stopped


def test_sigkill_under_load_then_serve_again_then_sigterm_leaves_nothing(exported):
    from pawlens.serve.client import TritonRunner
    from pawlens.serve.server import ServeError

    _triton_or_skip()
    out, _ = exported
    repo = out / "triton"
    tmp_before = set(glob.glob("/tmp/pawlens-serve-*"))
    srv = Serve(repo).start()
    errors: list[tuple[float, str]] = []
    done = threading.Event()

    def load():
        r = TritonRunner(srv.url, timeout=10).activate()
        x = np.zeros((1, 3, 32, 32), np.float32)
        while not done.is_set():
            try:
                r.infer(x)
            except ServeError as e:
                errors.append((time.monotonic(), str(e)))
                return

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    pid = srv.server_pid()
    t_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    for t in threads:
        t.join(15)
    done.set()
    assert len(errors) == 4, errors
    assert max(t for t, _ in errors) - t_kill < 10
    assert all(srv.url.split("//")[1] in msg for _, msg in errors)
    rc = srv.proc.wait(30)
    assert rc == 1 and any("stopped on its own (killed by SIGKILL)" in ln for ln in srv.lines), srv.lines[-5:]
    assert not set(glob.glob("/tmp/pawlens-serve-*")) - tmp_before  # its wrapper cleaned up after the killed server
    again = Serve(repo, ports=(srv.http, srv.grpc, srv.metrics)).start()  # the same ports are free again
    with TritonRunner(again.url) as r:
        assert r.infer(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 2)
    server = again.server_pid()
    stubs = children(server)
    t0 = time.monotonic()
    assert again.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 15
    assert not os.path.exists(f"/proc/{server}") and not any(os.path.exists(f"/proc/{p}") for p in stubs)
    assert port_free(srv.http) and port_free(srv.grpc) and port_free(srv.metrics)
    assert not set(glob.glob("/tmp/pawlens-serve-*")) - tmp_before
    assert not glob.glob(f"/dev/shm/pawlens{again.proc.pid}_*") and not glob.glob(f"/dev/shm/pawlens{srv.proc.pid}_*")
