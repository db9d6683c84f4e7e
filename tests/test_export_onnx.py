"""export.onnx / export.quantize: ONNX export (both exporters), FP16 and INT8 conversion, metadata, parity."""

from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from pawlens.errors import ArtifactError, InputError  # noqa: E402
from pawlens.export.onnx import convert_fp16, count_dtypes, export_onnx, read_meta  # noqa: E402
from pawlens.export.quantize import quantize_int8  # noqa: E402
from pawlens.fs import sha256_file  # noqa: E402
from pawlens.models.artifact import ArtifactMeta  # noqa: E402
from pawlens.models.checkpoint import load_checkpoint  # noqa: E402
from pawlens.runtime.compare import compare, default_gate  # noqa: E402
from pawlens.runtime.ort_runner import OrtRunner  # noqa: E402
from pawlens.runtime.torch_runner import TorchRunner  # noqa: E402


def _inputs(n, s, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, s, s)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    p = export_onnx(tiny_checkpoint, d / "tiny.onnx")
    return d, p


@pytest.fixture(scope="module")
def tiny_calib(tmp_path_factory):
    """32 px calibration images made by the runtime's own preprocessing from synthetic photos."""
    from conftest import synthetic_image

    from pawlens.models.preprocess import PreprocessConfig, preprocess_numpy

    rng = np.random.default_rng(3)
    frames = [synthetic_image(i % 2, 64, rng) for i in range(24)]
    return preprocess_numpy(frames, PreprocessConfig.for_size(32))


def test_export_io_names_dynamic_batch_single_file(tiny_onnx):
    d, p = tiny_onnx
    m = onnx.load(p)
    onnx.checker.check_model(m, full_check=True)
    assert [i.name for i in m.graph.input] == ["input"] and [o.name for o in m.graph.output] == ["logits"]
    dim0 = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.HasField("dim_value")
    assert [x.dim_value for x in m.graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 32, 32]
    assert sorted(os.listdir(d)) == ["tiny.onnx"]  # self-contained, no external data, no temp files
    assert not any(t.HasField("data_location") and t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    with OrtRunner(p) as r:
        assert r.infer(_inputs(1, 32)).shape == (1, 2)
        assert r.infer(_inputs(5, 32)).shape == (5, 2)


def test_metadata_round_trip(tiny_onnx, tiny_checkpoint):
    _, p = tiny_onnx
    meta = read_meta(p)
    ckpt = load_checkpoint(tiny_checkpoint)
    want = ArtifactMeta.from_checkpoint(ckpt, source_sha256=sha256_file(tiny_checkpoint))
    assert meta.class_names == ["cat", "dog"] == want.class_names
    assert meta.preprocess == want.preprocess and meta.preprocess.input_size == 32
    assert (meta.arch, meta.precision, meta.input_name, meta.output_name) == ("baseline", "fp32", "input", "logits")
    assert meta.source_sha256 == sha256_file(tiny_checkpoint) and len(meta.source_sha256) == 64
    assert meta.tool_version == want.tool_version and meta.extra["exporter"] == "legacy" and meta.extra["opset"] == 17
    # The runtime reads the same metadata from the session.
    with OrtRunner(p) as r:
        assert r.meta.class_names == meta.class_names and r.meta.preprocess == meta.preprocess


def test_fp32_parity_against_torch(tiny_onnx, tiny_checkpoint):
    _, p = tiny_onnx
    res = compare(TorchRunner(tiny_checkpoint), OrtRunner(p), _inputs(12, 32))
    assert res.passed and res.precision == "fp32"
    assert res.max_abs < 1e-4 and res.top1_agreement == 1.0


def test_dynamo_exporter_opset18(tiny_checkpoint, tmp_path):
    p = export_onnx(tiny_checkpoint, tmp_path / "d.onnx", exporter="dynamo", opset=18)
    m = onnx.load(p)
    assert [i.name for i in m.graph.input] == ["input"] and [o.name for o in m.graph.output] == ["logits"]
    assert {o.domain: o.version for o in m.opset_import}.get("", None) == 18
    assert read_meta(p).extra["exporter"] == "dynamo"
    res = compare(TorchRunner(tiny_checkpoint), OrtRunner(p), _inputs(6, 32))
    assert res.passed and res.max_abs < 1e-4
    assert os.listdir(tmp_path) == ["d.onnx"]


def test_export_option_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(InputError, match="lowest is 18"):
        export_onnx(tiny_checkpoint, tmp_path / "x.onnx", exporter="dynamo", opset=17)
    with pytest.raises(InputError, match="legacy, dynamo"):
        export_onnx(tiny_checkpoint, tmp_path / "x.onnx", exporter="jit")
    with pytest.raises(InputError, match="outside"):
        export_onnx(tiny_checkpoint, tmp_path / "x.onnx", opset=9)
    assert not os.listdir(tmp_path)


def test_fp16_conversion(tiny_onnx, tiny_checkpoint):
    d, p = tiny_onnx
    q = convert_fp16(p, d / "tiny.fp16.onnx")
    m = onnx.load(q)
    onnx.checker.check_model(m, full_check=True)
    assert set(count_dtypes(m)) == {"FLOAT16"}
    F, H = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert m.graph.input[0].type.tensor_type.elem_type == F and m.graph.output[0].type.tensor_type.elem_type == F
    conv_out = next(n.output[0] for n in m.graph.node if n.op_type == "Conv")
    vi = {v.name: v.type.tensor_type.elem_type for v in m.graph.value_info}
    assert vi[conv_out] == H  # compute really is fp16 inside
    assert [n.op_type for n in m.graph.node][0] == "Cast" and m.graph.node[-1].op_type == "Cast"
    meta = read_meta(q)
    assert meta.precision == "fp16" and meta.source_sha256 == read_meta(p).source_sha256 and meta.class_names == ["cat", "dog"]
    res = compare(TorchRunner(tiny_checkpoint), OrtRunner(q), _inputs(12, 32))
    assert res.precision == "fp16" and res.gate == default_gate("fp16")
    assert res.passed and 0 < res.max_abs < 5e-2
    assert os.path.getsize(q) < 0.6 * os.path.getsize(p)


def test_int8_quantization(tiny_onnx, tiny_checkpoint, tiny_calib):
    d, p = tiny_onnx
    q = quantize_int8(p, d / "tiny.int8.onnx", tiny_calib)
    m = onnx.load(q)
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    inits = {t.name: t for t in m.graph.initializer}
    # per-channel: some weight DequantizeLinear has a vector scale
    scales = [onnx.numpy_helper.to_array(inits[n.input[1]]) for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits]
    assert any(s.ndim == 1 and s.size > 1 for s in scales)
    zp_types = {inits[n.input[2]].data_type for n in m.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits}
    assert onnx.TensorProto.UINT8 in zp_types  # U8 activations
    meta = read_meta(q)
    assert meta.precision == "int8"
    assert meta.extra["int8"]["activation"] == "U8" and meta.extra["int8"]["weight"] == "S8" and meta.extra["int8"]["calib_images"] == 24
    x = np.concatenate([tiny_calib[:8], _inputs(4, 32)])
    res = compare(TorchRunner(tiny_checkpoint), OrtRunner(q), x)
    assert res.precision == "int8" and res.passed, res.summary()
    assert res.max_abs > 0  # it really is quantized


def test_int8_rejects_bad_calibration(tiny_onnx, tmp_path):
    _, p = tiny_onnx
    with pytest.raises(InputError, match=r"\(N, 3, 32, 32\)"):
        quantize_int8(p, tmp_path / "q.onnx", np.zeros((4, 3, 64, 64), np.float32))
    with pytest.raises(InputError, match="empty"):
        quantize_int8(p, tmp_path / "q.onnx", np.zeros((0, 3, 32, 32), np.float32))
    with pytest.raises(InputError, match="U8, S8"):
        quantize_int8(p, tmp_path / "q.onnx", np.zeros((2, 3, 32, 32), np.float32), activation="U4")
    assert not os.listdir(tmp_path)


def test_activation_bytes_counts_every_float_tensor(tmp_path):
    from onnx import TensorProto, helper

    from pawlens.export.quantize import activation_bytes

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["r"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, tmp_path / "m.onnx")
    assert activation_bytes(str(tmp_path / "m.onnx")) == 2 * 48 * 4  # r and y, batch 1


def test_histogram_calibration_that_cannot_fit_is_refused_before_any_work(tiny_onnx, tmp_path):
    """entropy / percentile hold every activation of every image (ResNet50 500 x 224 px: OOM-killed at 24 GB)."""
    from pawlens.export.quantize import HISTOGRAM_OVERHEAD, activation_bytes, check_calibration_memory

    _, p = tiny_onnx
    per_image = activation_bytes(p) * HISTOGRAM_OVERHEAD
    check_calibration_memory(p, 10_000, "minmax", available=1)  # streams: never refused
    check_calibration_memory(p, 100, "percentile", available=int(per_image * 1000))
    with pytest.raises(InputError, match=r"--calib-method percentile keeps every activation.*--calib-max 8 or --calib-method minmax"):
        check_calibration_memory(p, 100, "percentile", available=int(per_image * 10))


def test_perturbed_weight_fails_the_gate(tiny_onnx, tiny_checkpoint, tmp_path):
    _, p = tiny_onnx
    m = onnx.load(p)
    gemm_w = next(n.input[1] for n in m.graph.node if n.op_type == "Gemm")  # the classifier's weight
    w = next(t for t in m.graph.initializer if t.name == gemm_w)
    arr = onnx.numpy_helper.to_array(w).copy()
    arr[0] += 0.05
    w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(m, bad)
    res = compare(TorchRunner(tiny_checkpoint), OrtRunner(str(bad)), _inputs(8, 32))
    assert not res.passed and "max_abs" in [c.name for c in res.failed_checks]
    assert res.max_abs > 1e-3


def test_not_a_pawlens_onnx(tmp_path):
    bad = tmp_path / "zero.onnx"
    bad.write_bytes(b"")
    with pytest.raises(ArtifactError, match="zero-byte"):
        convert_fp16(bad, tmp_path / "o.onnx")
