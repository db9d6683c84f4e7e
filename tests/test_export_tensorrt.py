"""export.tensorrt: version logic, profile, precision audit, sidecar; build_engine against a fake ``tensorrt``; the real one (trt)."""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest

from pawlens.errors import BackendUnavailable, InputError, ParityError
from pawlens.export import tensorrt as T
from pawlens.fs import sha256_file

# ----------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize("version,fp16_flag,expected", [
    ("8.6.1.6", True, T.FP16_FLAG),
    ("10.3.0", True, T.FP16_FLAG),
    ("10.11.0.33", True, T.FP16_FLAG),
    ("10.12.0.36", True, T.STRONGLY_TYPED),
    ("10.16.1", True, T.STRONGLY_TYPED),
    ("11.4.0", False, T.STRONGLY_TYPED),
    ("11.0.0rc1", True, T.STRONGLY_TYPED),
    ("10.8.0", False, T.STRONGLY_TYPED),  # bindings without BuilderFlag.FP16
])
def test_choose_build_mode(version, fp16_flag, expected):
    assert T.choose_build_mode(version, has_fp16_flag=fp16_flag) == expected


def test_parse_version():
    assert T.parse_version("10.12.0.36") == (10, 12, 0, 36)
    assert T.parse_version("11.4.0rc1") == (11, 4, 0)
    with pytest.raises(Exception, match="cannot parse"):
        T.parse_version("dev")


def test_profile_shapes():
    assert T.profile_shapes(224, 1, 8, 32) == {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]}
    with pytest.raises(InputError, match="min <= opt <= max"):
        T.profile_shapes(224, 1, 64, 32)
    with pytest.raises(InputError, match="min <= opt <= max"):
        T.profile_shapes(224, 0, 8, 32)


def _layer(kind, fmt_in, fmt_out=None):
    return {"Name": kind, "LayerType": kind, "Inputs": [{"Name": "a", "Format/Datatype": fmt_in}],
            "Outputs": [{"Name": "b", "Format/Datatype": fmt_out or fmt_in}]}


def test_audit_precision_counts_layers():
    info = {"Layers": [
        _layer("Reformat", "Row major linear FP32 format", "Row major linear FP16 format"),
        *[_layer("CaskConvolution", "Channel major FP16 format where channel % 8 == 0") for _ in range(8)],
        _layer("CaskPooling", "Half"),
        _layer("CaskGemm", "Row major linear FP32 format"),
        _layer("Reformat", "Row major linear FP16 format", "Row major linear FP32 format"),
    ], "Bindings": ["input", "logits"]}
    a = T.audit_precision(json.dumps(info))
    assert a == {"fp16_layers": 9, "fp32_layers": 1, "other_layers": 2, "fraction_fp16": 0.9, "passed": True}
    mostly32 = {"Layers": [_layer("CaskConvolution", "Float") for _ in range(9)] + [_layer("CaskConvolution", "Half")]}
    b = T.audit_precision(mostly32)
    assert (b["fp32_layers"], b["fp16_layers"], b["passed"]) == (9, 1, False)
    # Layer names only (built without ProfilingVerbosity.DETAILED) or unresolved dynamic shapes: no evidence, fails.
    assert not T.audit_precision({"Layers": ["conv1 + relu", "fc"]})["passed"]
    assert not T.audit_precision({"Layers": [_layer("CaskConvolution", "N/A due to dynamic shapes")]})["passed"]
    assert T._tensor_precision("Thirty-two wide channel vectorized row major Int8 format.") == "int8"
    assert T._tensor_precision("Row major linear BF16 format") == "bf16"


def _meta():
    from pawlens.models.artifact import ArtifactMeta
    from pawlens.models.preprocess import PreprocessConfig

    return ArtifactMeta(["cat", "dog"], PreprocessConfig.for_size(224), arch="resnet50", precision="fp16", source_sha256="ab" * 32,
                        tool_version="0.1.0")


def test_sidecar_schema_round_trip(tmp_path):
    prof = T.profile_shapes(224)
    audit = {"fp16_layers": 50, "fp32_layers": 2, "other_layers": 3, "fraction_fp16": 0.9615, "passed": True}
    sc = T.build_sidecar(_meta(), tensorrt_version="10.16.1", gpu_name="NVIDIA H200", compute_capability="9.0", profile=prof,
                         source_onnx_sha256="cd" * 32, engine_sha256="ef" * 32, build_mode=T.STRONGLY_TYPED, precision_audit=audit)
    assert tuple(sc) == T.SIDECAR_KEYS
    assert sc["preprocess"]["input_size"] == 224 and sc["profile"]["max"] == [32, 3, 224, 224]
    assert json.loads(json.dumps(sc)) == sc  # plain JSON
    # The consumer (runtime.trt_runner) reads what the writer wrote.
    rt = pytest.importorskip("pawlens.runtime.trt_runner")
    eng = tmp_path / "m.fp16.engine"
    eng.write_bytes(b"x")
    (tmp_path / "m.fp16.engine.json").write_text(json.dumps(sc))
    back = rt.read_sidecar(str(eng))
    assert back == sc
    meta = rt.meta_from_sidecar(back)
    assert meta.preprocess == _meta().preprocess and meta.class_names == ["cat", "dog"] and meta.precision == "fp16"
    assert rt.sidecar_path(str(eng)) == T.sidecar_path(eng)
    assert T.sidecar_path("a/b.fp16.engine") == "a/b.fp16.engine.json"
    assert T.timing_cache_path("a/b.fp16.engine") == "a/b.fp16.timing.cache"


def test_tensorrt_absent_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(BackendUnavailable) as ei:
        T.build_engine("x.onnx", "x.engine")
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith("[tensorrt] TensorRT is not installed") and "--formats" in msg
    ok, why = T.tensorrt_available()
    assert not ok and why == msg


# ----------------------------------------------------------------------------- fake tensorrt


def make_fake_trt(version: str, *, fp16_flag: bool = True, ignore_fp16: bool = False):
    """A tiny stand-in for the TensorRT Python API as the docs describe it; records what was called.

    The fake "engine" runs in FP16 when the FP16 flag was set or when the parsed ONNX has fp16 weights
    (strongly typed); ``ignore_fp16`` makes it come out FP32 anyway (to test the audit).
    """
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: dict = {"flags": [], "parsed": None, "set_flags": [], "pool": None, "profile": None, "cache_in": None, "ctx_shape": None}
    trt.calls = calls

    class Logger:
        WARNING = 2

        def __init__(self, sev):
            self.sev = sev

    class NCF:
        STRONGLY_TYPED = 1
        EXPLICIT_BATCH = 0

    class BuilderFlag:
        pass

    if fp16_flag:
        BuilderFlag.FP16 = 0
    trt.Logger, trt.NetworkDefinitionCreationFlag, trt.BuilderFlag = Logger, NCF, BuilderFlag
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.ProfilingVerbosity = types.SimpleNamespace(DETAILED="detailed", LAYER_NAMES_ONLY="names")
    trt.LayerInformationFormat = types.SimpleNamespace(JSON="json", ONELINE="oneline")

    class Network:
        num_inputs = 1

        def get_input(self, i):
            return types.SimpleNamespace(name="input")

    class Parser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            import onnx

            calls["parsed"] = path
            m = onnx.load(path)
            calls["onnx_fp16"] = any(t.data_type == onnx.TensorProto.FLOAT16 for t in m.graph.initializer)
            return True

    class Cache:
        def __init__(self, blob):
            self.blob = bytes(blob)

        def serialize(self):
            return b"CACHE" + self.blob[:5]

    class Config:
        profiling_verbosity = None

        def set_memory_pool_limit(self, pool, n):
            calls["pool"] = (pool, n)

        def set_flag(self, f):
            calls["set_flags"].append(f)

        def add_optimization_profile(self, p):
            calls["profile"] = p.shape

        def create_timing_cache(self, blob):
            calls["cache_in"] = bytes(blob)
            return Cache(blob)

        def set_timing_cache(self, c, ignore_mismatch):
            self.cache = c
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, mn, opt, mx):
            self.shape = (name, list(mn), list(opt), list(mx))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["flags"].append(flags)
            return Network()

        def create_builder_config(self):
            self.config = Config()
            return self.config

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls["verbosity"] = config.profiling_verbosity
            fp16 = (0 in calls["set_flags"]) or (calls["onnx_fp16"] and bool(calls["flags"][-1] & 2))
            calls["engine_fp16"] = fp16 and not ignore_fp16
            return b"FAKE-ENGINE-" + (b"fp16" if calls["engine_fp16"] else b"fp32")

    class Inspector:
        execution_context = None

        def get_engine_information(self, fmt):
            assert fmt == "json" and self.execution_context is not None
            dt = "Row major linear FP16 format" if calls["engine_fp16"] else "Row major linear FP32 format"
            layers = [_layer("Reformat", "Row major linear FP32 format", dt)] + [_layer("CaskConvolution", dt) for _ in range(10)]
            return json.dumps({"Layers": layers + [_layer("Reformat", dt, "Row major linear FP32 format")], "Bindings": ["input", "logits"]})

    class Context:
        def set_input_shape(self, name, shape):
            calls["ctx_shape"] = (name, list(shape))
            return True

    class Engine:
        def create_execution_context(self):
            return Context()

        def create_engine_inspector(self):
            return Inspector()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            assert data.startswith(b"FAKE-ENGINE")
            return Engine()

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, Parser, Runtime
    return trt


@pytest.fixture(scope="module")
def tiny_onnx_pair(tiny_checkpoint, tmp_path_factory):
    pytest.importorskip("onnx")
    from pawlens.export.onnx import convert_fp16, export_onnx

    d = tmp_path_factory.mktemp("trt")
    p = export_onnx(tiny_checkpoint, d / "tiny.onnx")
    q = convert_fp16(p, d / "tiny.fp16.onnx")
    return p, q


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(T, "gpu_info", lambda: ("NVIDIA H200", "9.0"))


def test_build_engine_fp16_flag_mode(monkeypatch, fake_gpu, tiny_onnx_pair, tmp_path):
    p, q = tiny_onnx_pair
    trt = make_fake_trt("10.8.0.43")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    eng = tmp_path / "tiny.fp16.engine"
    sc = T.build_engine(p, eng, fp16_onnx_path=q, batch_opt=4, batch_max=16, workspace_gb=2)
    c = trt.calls
    assert c["parsed"] == p and c["set_flags"] == [0] and c["flags"] == [0]  # FP32 ONNX + BuilderFlag.FP16, weakly typed
    assert c["pool"] == ("workspace", 2 * (1 << 30)) and c["verbosity"] == "detailed"
    assert c["profile"] == ("input", [1, 3, 32, 32], [4, 3, 32, 32], [16, 3, 32, 32]) and c["ctx_shape"] == ("input", [4, 3, 32, 32])
    assert tuple(sc) == T.SIDECAR_KEYS and sc["build_mode"] == T.FP16_FLAG and sc["tensorrt_version"] == "10.8.0.43"
    assert (sc["gpu_name"], sc["compute_capability"], sc["precision"]) == ("NVIDIA H200", "9.0", "fp16")
    assert sc["precision_audit"] == {"fp16_layers": 10, "fp32_layers": 0, "other_layers": 2, "fraction_fp16": 1.0, "passed": True}
    assert sc["engine_sha256"] == sha256_file(eng) and sc["source_onnx_sha256"] == sha256_file(p)
    assert json.loads((tmp_path / "tiny.fp16.engine.json").read_text()) == sc
    cache = tmp_path / "tiny.fp16.timing.cache"
    assert cache.read_bytes() == b"CACHE" and c["cache_in"] == b""
    # The second build reads the saved timing cache.
    T.build_engine(p, eng, fp16_onnx_path=q)
    assert trt.calls["cache_in"] == b"CACHE"


def test_build_engine_strongly_typed_mode(monkeypatch, fake_gpu, tiny_onnx_pair, tmp_path):
    p, q = tiny_onnx_pair
    trt = make_fake_trt("11.4.0", fp16_flag=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    sc = T.build_engine(p, tmp_path / "e.engine", fp16_onnx_path=q)
    c = trt.calls
    assert c["parsed"] == q and c["onnx_fp16"] and c["set_flags"] == [] and c["flags"] == [2]  # STRONGLY_TYPED, FP16 ONNX
    assert sc["build_mode"] == T.STRONGLY_TYPED and sc["source_onnx_sha256"] == sha256_file(q) and sc["precision_audit"]["passed"]
    # Without an FP16 ONNX it makes one on the fly (and leaves no temporary file behind).
    trt2 = make_fake_trt("10.16.1")
    monkeypatch.setitem(sys.modules, "tensorrt", trt2)
    sc2 = T.build_engine(p, tmp_path / "f.engine")
    assert trt2.calls["onnx_fp16"] and sc2["build_mode"] == T.STRONGLY_TYPED and not os.path.exists(trt2.calls["parsed"])


def test_mostly_fp32_engine_is_a_failure(monkeypatch, fake_gpu, tiny_onnx_pair, tmp_path):
    p, q = tiny_onnx_pair
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt("10.8.0", ignore_fp16=True))
    eng = tmp_path / "m.fp16.engine"
    with pytest.raises(ParityError, match="10 of 10 compute layers run in FP32"):
        T.build_engine(p, eng, fp16_onnx_path=q)
    assert not eng.exists() and (tmp_path / "m.fp16.engine.failed").exists()
    bad = json.loads((tmp_path / "m.fp16.engine.failed.json").read_text())
    assert bad["precision_audit"]["passed"] is False and bad["precision_audit"]["fraction_fp16"] == 0.0


def test_no_gpu_is_one_line(monkeypatch, tiny_onnx_pair, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt("10.16.1"))
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="no CUDA GPU") as ei:
        T.build_engine(tiny_onnx_pair[0], tmp_path / "e.engine")
    assert "\n" not in str(ei.value)


# ----------------------------------------------------------------------------- the real thing


@pytest.mark.trt
@pytest.mark.gpu
def test_real_tensorrt_engine(real_tensorrt, tiny_checkpoint, tmp_path):
    """Build a real FP16 engine and gate it with the runtime's TrtRunner (needs TensorRT + a CUDA GPU)."""
    trt_runner = pytest.importorskip("pawlens.runtime.trt_runner")
    from pawlens.export.onnx import convert_fp16, export_onnx
    from pawlens.runtime.compare import compare
    from pawlens.runtime.torch_runner import TorchRunner

    p = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx")
    q = convert_fp16(p, tmp_path / "tiny.fp16.onnx")
    sc = T.build_engine(p, tmp_path / "tiny.fp16.engine", fp16_onnx_path=q, batch_max=16)
    assert sc["precision_audit"]["passed"], sc["precision_audit"]
    x = np.random.default_rng(0).standard_normal((20, 3, 32, 32)).astype(np.float32)
    res = compare(TorchRunner(tiny_checkpoint), trt_runner.TrtRunner(str(tmp_path / "tiny.fp16.engine")), x, precision="fp16")
    assert res.passed, res.summary()
