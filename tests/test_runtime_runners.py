"""The Runner contract and every backend installable here (torch, onnxruntime, openvino) against the PyTorch reference."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from pawlens.errors import BackendUnavailable, InputError
from pawlens.models.preprocess import load_image, preprocess_numpy
from pawlens.runtime.base import InputSpec, Runner, RunnerError, lazy_import
from pawlens.runtime.compare import compare_logits
from pawlens.runtime.openvino_runner import OpenVINORunner
from pawlens.runtime.ort_runner import OrtRunner
from pawlens.runtime.torch_runner import TorchRunner, cxx_compiler


def _photos(paths, cfg):
    return preprocess_numpy([load_image(p) for p in paths], cfg)


def _run(runner, x, chunk=8):
    with runner:
        return np.concatenate([runner.infer(x[i : i + chunk]) for i in range(0, len(x), chunk)])


# ----------------------------------------------------------------------------- contract


class _Echo(Runner):
    backend = "echo"

    def __init__(self, max_batch=None):
        super().__init__()
        self.calls = []
        self.max_batch = max_batch

    def activate_impl(self):
        pass

    def input_spec(self):
        return InputSpec("input", (None, 3, 4, 4), "float32", max_batch=self.max_batch)

    def infer_impl(self, batch):
        self.calls.append(len(batch))
        return batch.reshape(len(batch), -1)[:, :2].copy()


def test_contract_state_input_checks_and_timing():
    r = _Echo()
    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(RunnerError, match="must be activated"):
        r.infer(x)
    with r:
        assert r.is_active
        with pytest.raises(RunnerError, match="already active"):
            r.activate()
        assert r.last_inference_time() is None
        y = r.infer(x)
        assert y.shape == (2, 2) and r.last_inference_time() > 0
        with pytest.raises(InputError, match="dtype float64"):
            r.infer(x.astype(np.float64))
        with pytest.raises(InputError, match=r"does not match the model's Nx3x4x4"):
            r.infer(np.zeros((2, 3, 5, 4), np.float32))
        with pytest.raises(InputError, match="NumPy array"):
            r.infer([[1.0]])
        with pytest.raises(InputError, match="empty batch"):
            r.infer(np.zeros((0, 3, 4, 4), np.float32))
    assert not r.is_active
    assert r.describe()["backend"] == "echo"


def test_batch_larger_than_max_batch_is_split_into_chunks():
    r = _Echo(max_batch=4)
    x = np.arange(10 * 48, dtype=np.float32).reshape(10, 3, 4, 4)
    with r:
        y = r.infer(x)
    assert r.calls == [4, 4, 2]
    np.testing.assert_array_equal(y, x.reshape(10, -1)[:, :2])


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailable) as e:
        lazy_import("openvino", "openvino", "OpenVINO")
    assert "pip install -e '.[openvino]'" in str(e.value) and "\n" not in str(e.value)


def test_openvino_missing_library_fails_at_activate_in_one_line(monkeypatch, rt_tiny_onnx):
    r = OpenVINORunner(rt_tiny_onnx["fp32"])  # construction only reads metadata
    assert r.meta.class_names == ["cat", "dog"]
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(BackendUnavailable, match=r"\.\[openvino\]"):
        r.activate()
    assert not r.is_active


# ----------------------------------------------------------------------------- torch


def test_torch_runner_precisions_and_describe(tiny_checkpoint):
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    ref = _run(TorchRunner(tiny_checkpoint), x)
    cl = TorchRunner(tiny_checkpoint, channels_last=True)
    np.testing.assert_allclose(_run(cl, x), ref, atol=1e-4)
    bf = TorchRunner(tiny_checkpoint, precision="bf16", channels_last=True)
    out = _run(bf, x)
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 0.1 * max(1.0, np.abs(ref).max())
    d = bf.describe()
    assert d["backend"] == "torch" and d["precision"] == "bf16" and d["channels_last"] and d["device"] == "cpu"
    with pytest.raises(InputError, match="fp16 needs CUDA"):
        TorchRunner(tiny_checkpoint, precision="fp16", device="cpu")
    with pytest.raises(InputError, match="unknown torch precision"):
        TorchRunner(tiny_checkpoint, precision="int4")
    with TorchRunner(tiny_checkpoint) as r:
        with pytest.raises(InputError, match="Nx3x32x32"):
            r.infer(np.zeros((1, 3, 64, 64), np.float32))


@pytest.mark.skipif(cxx_compiler() is None, reason="torch.compile needs a C++ compiler")
def test_torch_runner_compiled_matches_eager_and_reports_compile_time(tiny_checkpoint, caplog):
    """torch.compile (Inductor, frozen weights) computes the eager model's function; each batch size compiles once."""
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    ref = _run(TorchRunner(tiny_checkpoint), x)
    with caplog.at_level("INFO", logger="pawlens"), TorchRunner(tiny_checkpoint, channels_last=True, compile=True) as r:
        out = r.infer(x)
        again = r.infer(x)
        d = r.describe()
    np.testing.assert_allclose(out, ref, atol=1e-4)
    np.testing.assert_array_equal(out, again)
    assert d["compiled"] and list(d["compile_s"]) == [3] and d["compile_s"][3] > 0, d
    assert r.name.endswith("-compiled")
    assert sum("batch 3 compiled" in m for m in caplog.messages) == 1  # logged once, on the compiling call only


def test_torch_runner_compile_without_a_compiler_says_so(tiny_checkpoint, monkeypatch):
    from pawlens.runtime import torch_runner

    monkeypatch.setattr(torch_runner, "cxx_compiler", lambda: None)
    r = TorchRunner(tiny_checkpoint, compile=True)
    with pytest.raises(BackendUnavailable, match="C\\+\\+ compiler.*without --compile"):
        r.activate()
    assert not r.is_active


# ----------------------------------------------------------------------------- onnxruntime


def test_ort_runner_matches_torch_and_reports_providers(rt_tiny_onnx):
    x = np.random.default_rng(1).standard_normal((5, 3, 32, 32)).astype(np.float32)
    ref = _run(TorchRunner(rt_tiny_onnx["pt"]), x)
    r = OrtRunner(rt_tiny_onnx["fp32"], device="cpu", threads=1)
    assert r.meta.precision == "fp32"  # read before activation, without a session
    out = _run(r, x, chunk=5)
    assert np.abs(out - ref).max() < 1e-4
    r.activate()
    d = r.describe()
    r.deactivate()
    assert d["backend"] == "ort" and d["providers"] == ["CPUExecutionProvider"] and d["fallback"] is False and d["device"] == "cpu"
    assert d["spinning"] is False and d["io_binding"] is False
    # the IO-binding path (used on CUDA) gives the same numbers; exercised here on the CPU
    bound = OrtRunner(rt_tiny_onnx["fp32"], device="cpu", io_binding=True)
    np.testing.assert_allclose(_run(bound, x, chunk=3), out, atol=1e-6)


def test_ort_cuda_fallback_is_visible_and_logged_once(rt_tiny_onnx, caplog, monkeypatch):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA EP (the fall-back case needs onnxruntime-gpu)")
    from pawlens.runtime import ort_runner

    if ort_runner.cuda_visible():
        pytest.skip("a CUDA GPU is visible: no fall-back to observe")
    monkeypatch.setattr(ort_runner, "_warned_fallback", set())
    x = np.zeros((2, 3, 32, 32), np.float32)
    with caplog.at_level(logging.WARNING, logger="pawlens"):
        for _ in range(2):
            r = OrtRunner(rt_tiny_onnx["fp32"], device="cuda")
            with r:
                assert r.infer(x).shape == (2, 2)
                d = r.describe()
            assert d["fallback"] is True and d["device"] == "cpu"
            assert d["providers_requested"][0] == "CUDAExecutionProvider" and "CUDAExecutionProvider" not in d["providers"]
    msgs = [m for m in caplog.messages if "CUDA was requested" in m]
    assert len(msgs) == 1, msgs
    # device="auto" does not request CUDA on a machine without a GPU: no fall-back
    with OrtRunner(rt_tiny_onnx["fp32"], device="auto") as r:
        assert r.describe()["fallback"] is False and r.describe()["providers_requested"] == ["CPUExecutionProvider"]


# ----------------------------------------------------------------------------- openvino


def test_openvino_runner_fp32_bf16_int8(rt_tiny_onnx):
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32)
    ref = _run(TorchRunner(rt_tiny_onnx["pt"]), x)
    f32 = OpenVINORunner(rt_tiny_onnx["fp32"], threads=1)
    out = _run(f32, x)
    assert np.abs(out - ref).max() < 1e-3
    f32.activate()
    d = f32.describe()
    f32.deactivate()
    assert d["backend"] == "openvino" and d["precision"] == "fp32" and "32" in d["inference_precision_hint"] and d["device"] == "cpu"
    bf = OpenVINORunner(rt_tiny_onnx["fp32"], precision="bf16")
    assert np.abs(_run(bf, x) - ref).max() < 0.1 * max(1.0, np.abs(ref).max())
    i8 = OpenVINORunner(rt_tiny_onnx["int8"])
    assert i8.effective_precision == "int8"
    assert _run(i8, x).shape == ref.shape
    with pytest.raises(InputError, match="runs on the CPU"):
        OpenVINORunner(rt_tiny_onnx["fp32"], device="cuda")
    with pytest.raises(InputError, match="fp32, bf16"):
        OpenVINORunner(rt_tiny_onnx["fp32"], precision="fp16")


# ----------------------------------------------------------------------------- every backend on real photos


@pytest.mark.realdata
def test_every_backend_agrees_with_torch_on_real_photos(rt_trained_baseline):
    """fp32 backends: logits within the fp32 gate (1e-3) and identical top-1; INT8: >= 90% top-1 on these 16 photos."""
    from pawlens.models.checkpoint import load_checkpoint, preprocess_from_checkpoint

    cfg = preprocess_from_checkpoint(load_checkpoint(rt_trained_baseline["pt"]))
    x = _photos(rt_trained_baseline["photos"], cfg)
    ref = _run(TorchRunner(rt_trained_baseline["pt"]), x)
    assert len(set(ref.argmax(1).tolist())) == 2, "the reference must predict both classes for agreement to mean something"
    fp32 = {
        "torch-cl": TorchRunner(rt_trained_baseline["pt"], channels_last=True),
        "ort": OrtRunner(rt_trained_baseline["fp32"]),
        "openvino": OpenVINORunner(rt_trained_baseline["fp32"]),
    }
    for name, r in fp32.items():
        res = compare_logits(ref, _run(r, x), precision="fp32", name=name)
        assert res.max_abs < 1e-3 and res.top1_agreement == 1.0, (name, res.summary())
    for name, r in {"ort-int8": OrtRunner(rt_trained_baseline["int8"]), "openvino-int8": OpenVINORunner(rt_trained_baseline["int8"])}.items():
        out = _run(r, x)
        agree = float((out.argmax(1) == ref.argmax(1)).mean())
        assert agree >= 0.9 and np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.95, (name, agree)


def test_openvino_compiles_one_static_shape_per_batch_size_once(rt_tiny_onnx, monkeypatch):
    """A batch size is compiled with a static shape on first use and kept; past MAX_STATIC_SHAPES one dynamic compilation
    serves the rest; the logits are the same whichever compilation ran them."""
    from pawlens.runtime import openvino_runner

    monkeypatch.setattr(openvino_runner, "MAX_STATIC_SHAPES", 2)
    r = OpenVINORunner(rt_tiny_onnx["fp32"])
    compiled: list[str] = []
    real = r._compile
    monkeypatch.setattr(r, "_compile", lambda model, what: compiled.append(what) or real(model, what))
    with r:
        assert compiled == [" at batch 1"]  # activation compiles batch 1
        x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
        a = r.infer(x)
        b = r.infer(x)
        one = r.infer(x[:1])
        assert compiled == [" at batch 1", " at batch 3"]  # batch 3 once, batch 1 not again
        assert r.describe()["static_batches"] == [1, 3]
        d = r.infer(np.concatenate([x, x[:2]]))  # a third size: past the limit, the dynamic compilation
        r.infer(np.concatenate([x, x]))
        assert compiled == [" at batch 1", " at batch 3", " with a dynamic batch"]
        assert set(r.describe()["compile_s"]) == {"1", "3", "dynamic"}
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(one, a[:1], atol=1e-5)
        np.testing.assert_allclose(d[:3], a, atol=1e-5)
        assert r.engine_time is not None and 0 < r.engine_time <= r.last_inference_time()


def test_openvino_pads_a_rare_smaller_batch_until_compiling_it_pays(rt_tiny_onnx):
    """Rent or buy: a new batch size below a compiled one runs padded while its calls cost less than a compilation."""
    r = OpenVINORunner(rt_tiny_onnx["fp32"])
    x = np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32)
    with r:
        r.prepare(8)
        full = r.infer(x)
        r._compile_s[8], r._call_s[8] = 1.0, 0.4  # pretend: compiling costs 1 s, a call at batch 8 0.4 s
        first, second = r.infer(x[:3]), r.infer(x[:3])
        assert r.padded_calls == 2 and r.describe()["static_batches"] == [1, 8]
        third = r.infer(x[:3])  # 3 x 0.4 s >= 1 s: batch 3 gets its own shape
        assert r.padded_calls == 2 and r.describe()["static_batches"] == [1, 3, 8]
        for out in (first, second, third):
            assert out.shape == (3, full.shape[1])
            np.testing.assert_allclose(out, full[:3], atol=1e-5)


def test_openvino_compiles_the_callers_batch_at_activation_and_pads_a_short_folder_once(rt_tiny_onnx, monkeypatch):
    """make_runner(batch=8), as predict builds it: activation compiles batch 8 only (not 1 first); a folder with fewer
    frames than that runs one padded call (which times batch 8), and not a compilation of its own size."""
    from pawlens.runtime.factory import make_runner

    r = make_runner(rt_tiny_onnx["fp32"], backend="openvino", batch=8)
    compiled: list[str] = []
    real = r._compile
    monkeypatch.setattr(r, "_compile", lambda model, what: compiled.append(what) or real(model, what))
    x = np.random.default_rng(2).standard_normal((8, 3, 32, 32)).astype(np.float32)
    with r:
        assert compiled == [" at batch 8"] and r.describe()["static_batches"] == [8]
        r._compile_s[8] = 1.0  # pretend compiling costs 1 s (the real one takes milliseconds on this tiny graph)
        three = r.infer(x[:3])
        assert r.padded_calls == 1 and compiled == [" at batch 8"], compiled
        assert 0 < r._call_s[8] == r.engine_time  # the padded call timed batch 8: later rent-or-buy uses it
        r.prepare(3)  # prepare never pads: it compiles
        assert compiled == [" at batch 8", " at batch 3"] and r.describe()["static_batches"] == [3, 8]
        np.testing.assert_allclose(three, r.infer(x[:3]), atol=1e-5)
    with pytest.raises(InputError, match="whole number"):
        make_runner(rt_tiny_onnx["fp32"], backend="openvino", batch=0)


def test_graph_precision_reads_the_graph_not_the_label(rt_tiny_onnx, tmp_path):
    """Quantize operators make int8, float16 weights fp16; the metadata's word is checked against that."""
    from pawlens.export.onnx import convert_fp16
    from pawlens.runtime.onnx_meta import graph_precision

    assert graph_precision(rt_tiny_onnx["fp32"]) == "fp32" and graph_precision(rt_tiny_onnx["int8"]) == "int8"
    fp16 = convert_fp16(rt_tiny_onnx["fp32"], str(tmp_path / "tiny.fp16.onnx"))
    assert graph_precision(fp16) == "fp16"
    assert graph_precision(tmp_path / "missing.onnx") is None


@pytest.mark.parametrize("backend", ["ort", "openvino"])
def test_an_nhwc_array_or_graph_is_refused_the_same_way_on_each_backend(backend, rt_tiny_onnx, tmp_path):
    """#24: an NHWC input got OpenVINO's internal FrontEnd error where ONNX Runtime named the problem.  Both now
    refuse an NHWC array with the same one-line InputError, and an NHWC graph before either backend sees it."""
    pytest.importorskip("onnxruntime" if backend == "ort" else "openvino")
    import onnx
    from onnx import helper

    from pawlens.errors import ArtifactError, InputError
    from pawlens.runtime.factory import make_runner

    with make_runner(rt_tiny_onnx["fp32"], backend=backend) as r:
        with pytest.raises(InputError, match=r"input shape \(1, 32, 32, 3\) does not match the model's Nx3x32x32"):
            r.infer(np.zeros((1, 32, 32, 3), np.float32))
    m = onnx.load(rt_tiny_onnx["fp32"])  # the same graph behind an NHWC input (a Transpose first)
    old = m.graph.input[0]
    m.graph.node.insert(0, helper.make_node("Transpose", ["x_nhwc"], [old.name], perm=[0, 3, 1, 2]))
    m.graph.input.remove(old)
    m.graph.input.insert(0, helper.make_tensor_value_info("x_nhwc", onnx.TensorProto.FLOAT, ["N", 32, 32, 3]))
    onnx.save(m, tmp_path / "nhwc.onnx")
    with pytest.raises(ArtifactError, match=r"has shape \(\?, 32, 32, 3\), expected \(N, 3, S, S\)"):
        make_runner(str(tmp_path / "nhwc.onnx"), backend=backend).activate()
