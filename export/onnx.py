"""Checkpoint -> ONNX (fp32, dynamic batch, self-describing) and ONNX -> FP16 ONNX.

    export_onnx("runs/train/x/best.pt", "runs/export/best/best.onnx")          # legacy exporter, opset 17
    export_onnx(ckpt, "m.onnx", exporter="dynamo", opset=18)                    # torch.export-based exporter
    convert_fp16("m.onnx", "m.fp16.onnx")                                       # fp16 weights + compute, fp32 I/O
    read_meta("m.onnx")                                                         # models.artifact.ArtifactMeta

Every file written here has one input ``input`` (N, 3, S, S) float32 and one output ``logits`` (N, C)
float32 with a symbolic batch dimension, carries the pawlens metadata (class names, preprocessing,
architecture, the source checkpoint's sha256, the tool version) in ``metadata_props``, passes
``onnx.checker`` with ``full_check=True`` and is written atomically as one self-contained file (external
data only for models over 2 GB, which no pawlens model is).

Exporters (torch 2.14): ``legacy`` (TorchScript-based, ``dynamo=False``; deprecated but fast and exact on
our models) and ``dynamo`` (``torch.export``-based; its lowest opset is 18). Neither is trusted blindly:
the export pipeline gates every file against PyTorch (:mod:`runtime.compare`).

FP16 conversion is done with ``onnx`` itself (``onnxconverter-common`` is not a dependency): float
initializers and constants become float16, ``Cast`` nodes are added after each float input and before
each float output, and the tensor types are re-inferred.  ONNX Runtime on a CPU runs such a model by
casting back to fp32 internally, so on CPU it is a GPU/TensorRT artifact whose parity can still be checked.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import warnings
from typing import Any

import numpy as np

from pawlens.errors import ArtifactError, InputError, one_line
from pawlens.fs import atomic_write_bytes, sha256_file
from pawlens.models.artifact import ArtifactMeta

LOG = logging.getLogger("pawlens")

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EXPORTERS = ("legacy", "dynamo")
#: Opsets exercised by the tests (legacy: 17, dynamo: 18); others in this range are allowed but untested.
TESTED_OPSETS = (17, 18)
MIN_OPSET, MAX_OPSET = 13, 21
_TWO_GB = 2 * 1024**3


def _onnx():
    from pawlens.runtime.base import lazy_import

    return lazy_import("onnx", "export", "onnx")


# ----------------------------------------------------------------------------- metadata


def set_meta(model, meta: ArtifactMeta) -> None:
    """Replace the ``pawlens.*`` entries of ``model.metadata_props`` with ``meta``; other entries are kept."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith("pawlens.")]
    del model.metadata_props[:]
    for k, v in keep + sorted(meta.to_props().items()):
        e = model.metadata_props.add()
        e.key, e.value = k, v


def read_meta(path: str | os.PathLike) -> ArtifactMeta:
    """The pawlens metadata of an ONNX file, read without building a session."""
    from pawlens.runtime.onnx_meta import read_onnx_meta

    return read_onnx_meta(os.fspath(path))


def checkpoint_sha256(ckpt: dict[str, Any] | str | os.PathLike) -> str:
    """sha256 of the checkpoint file (``ckpt['sha256']`` if the caller already computed it)."""
    if isinstance(ckpt, dict):
        if ckpt.get("sha256"):
            return str(ckpt["sha256"])
        p = ckpt.get("path")
        return sha256_file(p) if p and os.path.isfile(p) else ""
    return sha256_file(ckpt)


# ----------------------------------------------------------------------------- checks and saving


def check_io(model, *, path: str, input_size: int | None = None, num_classes: int | None = None) -> None:
    """Check the graph has exactly ``input`` (N,3,S,S) float32 -> ``logits`` (N,C) float32 with a symbolic N."""
    onnx = _onnx()
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise ArtifactError(f"{path}: expected one input and one output, found {len(inputs)} and {len(g.output)}; re-export it")
    for vi, name, rank in ((inputs[0], INPUT_NAME, 4), (g.output[0], OUTPUT_NAME, 2)):
        t = vi.type.tensor_type
        dims = t.shape.dim
        if vi.name != name or t.elem_type != onnx.TensorProto.FLOAT or len(dims) != rank:
            raise ArtifactError(
                f"{path}: I/O {vi.name!r} ({onnx.TensorProto.DataType.Name(t.elem_type)}, rank {len(dims)}) is not "
                f"{name!r} float32 of rank {rank}; re-export it with pawlens-export"
            )
        if dims[0].HasField("dim_value"):
            raise ArtifactError(f"{path}: the batch dimension of {name!r} is fixed to {dims[0].dim_value}; it must be dynamic")
    d = inputs[0].type.tensor_type.shape.dim
    if input_size is not None and [x.dim_value for x in d[1:]] != [3, input_size, input_size]:
        raise ArtifactError(f"{path}: input shape {[x.dim_value or x.dim_param for x in d]} is not [N, 3, {input_size}, {input_size}]")
    o = g.output[0].type.tensor_type.shape.dim
    if num_classes is not None and o[1].HasField("dim_value") and o[1].dim_value != num_classes:
        raise ArtifactError(f"{path}: the model outputs {o[1].dim_value} classes, its metadata names {num_classes}")


def save_model(model, out_path: str | os.PathLike, *, full_check: bool = True) -> str:
    """``onnx.checker`` (full check) then an atomic write of one self-contained file (external data over 2 GB)."""
    onnx = _onnx()
    out = os.fspath(out_path)
    size = model.ByteSize()
    if size < _TWO_GB:
        try:
            onnx.checker.check_model(model, full_check=full_check)
        except Exception as e:
            raise ArtifactError(f"{out}: onnx.checker rejected the model ({one_line(e, 200, with_type=False)})") from None
        atomic_write_bytes(out, model.SerializeToString())
        return out
    # Over protobuf's 2 GB limit: weights go to <name>.data beside the model (the checker then needs the path).
    tmp = f"{out}.tmp-{os.getpid()}"
    data_name = os.path.basename(out) + ".data"
    try:
        onnx.save_model(model, tmp, save_as_external_data=True, all_tensors_to_one_file=True, location=data_name)
        onnx.checker.check_model(tmp, full_check=full_check)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return out


# ----------------------------------------------------------------------------- export


def export_onnx(ckpt, out_path: str | os.PathLike, *, opset: int = 17, exporter: str = "legacy", batch_example: int = 2) -> str:
    """Export a pawlens checkpoint to ONNX with a dynamic batch axis and embedded metadata.

    Args:
        ckpt: path of a pawlens checkpoint, or a dict returned by ``models.checkpoint.load_checkpoint``.
        out_path: where to write the ``.onnx`` file (atomically).
        opset: ONNX opset; the dynamo exporter needs 18 or more.
        exporter: ``legacy`` (``dynamo=False``) or ``dynamo``.
        batch_example: batch size of the tracing example (2 or more, so the batch axis is not specialised).

    Returns:
        ``out_path`` as a string.

    Raises:
        InputError: unknown exporter, unsupported opset or batch_example.
        CheckpointError: the checkpoint cannot be loaded.
        ArtifactError: the exported graph fails the checker or the I/O contract.
    """
    import torch

    from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint

    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}; choose one of: {', '.join(EXPORTERS)}")
    opset = int(opset)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"--opset {opset} is outside {MIN_OPSET}..{MAX_OPSET} (tested: {', '.join(map(str, TESTED_OPSETS))})")
    if exporter == "dynamo" and opset < 18:
        raise InputError(f"the dynamo exporter cannot target opset {opset} (its lowest is 18); use --opset 18 or --exporter legacy")
    if int(batch_example) < 2:
        raise InputError("batch_example must be at least 2 so the exporter keeps the batch axis dynamic")
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    out = os.fspath(out_path)
    meta = ArtifactMeta.from_checkpoint(ckpt, precision="fp32", source_sha256=checkpoint_sha256(ckpt))
    s = meta.preprocess.input_size
    model = model_from_checkpoint(ckpt).float().eval()
    example = torch.randn(int(batch_example), 3, s, s, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation, tracer warnings: the parity gate decides
        proto = _export_legacy(model, example, opset) if exporter == "legacy" else _export_dynamo(model, example, opset)
    _rename_io(proto)
    meta.extra = {"exporter": exporter, "opset": opset, "torch": str(torch.__version__)}
    set_meta(proto, meta)
    proto.producer_name = "pawlens"
    proto.producer_version = meta.tool_version
    check_io(proto, path=out, input_size=s, num_classes=len(meta.class_names))
    return save_model(proto, out)


def _export_legacy(model, example, opset: int):
    import torch

    onnx = _onnx()
    buf = io.BytesIO()
    torch.onnx.export(
        model, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, do_constant_folding=True,
    )
    return onnx.load_model_from_string(buf.getvalue())


def _export_dynamo(model, example, opset: int):
    import torch

    onnx = _onnx()
    batch = torch.export.Dim("batch", min=1, max=4096)
    prog = torch.onnx.export(
        model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},), external_data=False, verbose=False,
    )
    # save() with external_data=False gives one self-contained file (no .data sidecar to lose).
    with tempfile.TemporaryDirectory(prefix="pawlens-dynamo-") as d:
        p = os.path.join(d, "m.onnx")
        prog.save(p, external_data=False)
        return onnx.load(p)


def _rename_io(model) -> None:
    """Force the I/O names to ``input``/``logits`` (the dynamo exporter may keep the forward's argument name)."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    renames = {}
    if len(inputs) == 1 and inputs[0].name != INPUT_NAME:
        renames[inputs[0].name] = INPUT_NAME
    if len(g.output) == 1 and g.output[0].name != OUTPUT_NAME:
        renames[g.output[0].name] = OUTPUT_NAME
    if not renames:
        return
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name in renames:
            vi.name = renames[vi.name]
    for n in g.node:
        for i, x in enumerate(n.input):
            if x in renames:
                n.input[i] = renames[x]
        for i, x in enumerate(n.output):
            if x in renames:
                n.output[i] = renames[x]


# ----------------------------------------------------------------------------- fp16

#: Inputs that must stay float32 whatever the data type (op type -> input positions).
_FP32_ONLY_INPUTS = {"Resize": {1, 2}, "Upsample": {1}}
_FP16_MAX = float(np.finfo(np.float16).max)


def convert_fp16(src_onnx: str | os.PathLike, out_path: str | os.PathLike) -> str:
    """Convert an fp32 ONNX model to fp16 weights and compute, keeping float32 inputs and outputs.

    Float initializers and ``Constant`` values become float16 (values beyond fp16's range are clipped,
    and the count is logged), ``Cast(to=FLOAT)`` nodes become ``Cast(to=FLOAT16)``, a ``Cast`` to fp16 is
    inserted after each float graph input and a ``Cast`` to fp32 before each float graph output, and
    the intermediate types are re-inferred.  Metadata is copied with ``precision="fp16"``.

    Raises:
        ArtifactError: the source is not a pawlens ONNX file, or uses control flow (If/Loop/Scan).
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    src, out = os.fspath(src_onnx), os.fspath(out_path)
    meta = read_meta(src)
    m = onnx.load(src)
    g = m.graph
    for n in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise ArtifactError(f"{src}: node {n.name or n.op_type} has a subgraph; fp16 conversion of control flow is not supported")

    keep32 = {n.input[i] for n in g.node for i in _FP32_ONLY_INPUTS.get(n.op_type, ()) if i < len(n.input)}
    clipped = 0

    def to16(arr: np.ndarray) -> np.ndarray:
        nonlocal clipped
        clipped += int(np.count_nonzero(np.abs(arr) > _FP16_MAX))
        return np.clip(arr, -_FP16_MAX, _FP16_MAX).astype(np.float16)

    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT and t.name not in keep32:
            g.initializer[i].CopyFrom(numpy_helper.from_array(to16(numpy_helper.to_array(t)), t.name))
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
            elif a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT and not any(o in keep32 for o in n.output):
                a.t.CopyFrom(numpy_helper.from_array(to16(numpy_helper.to_array(a.t)), a.t.name))
    if clipped:
        LOG.warning("[fp16] %s: %d weight values exceed the float16 range and were clipped to +-%g", os.path.basename(src), clipped, _FP16_MAX)

    inits = {t.name for t in g.initializer}
    new_nodes = []
    for vi in g.input:
        if vi.name in inits or vi.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{vi.name}__fp16"
        for n in g.node:
            for i, x in enumerate(n.input):
                if x == vi.name:
                    n.input[i] = inner
        new_nodes.append(helper.make_node("Cast", [vi.name], [inner], to=TensorProto.FLOAT16, name=f"{vi.name}_cast_to_fp16"))
    tail = []
    for vo in g.output:
        if vo.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{vo.name}__fp16"
        for n in g.node:
            for i, x in enumerate(n.output):
                if x == vo.name:
                    n.output[i] = inner
            for i, x in enumerate(n.input):
                if x == vo.name:
                    n.input[i] = inner
        tail.append(helper.make_node("Cast", [inner], [vo.name], to=TensorProto.FLOAT, name=f"{vo.name}_cast_to_fp32"))
    nodes = new_nodes + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    except Exception as e:
        raise ArtifactError(f"{src}: type inference failed after the fp16 conversion ({one_line(e, 200, with_type=False)})") from None
    meta.precision = "fp16"
    meta.extra = dict(meta.extra, fp16_source=os.path.basename(src), fp16_clipped_values=clipped)
    set_meta(m, meta)
    check_io(m, path=out, input_size=meta.preprocess.input_size, num_classes=len(meta.class_names))
    return save_model(m, out)


def count_dtypes(path_or_model) -> dict[str, int]:
    """Initializer counts by data type name (e.g. ``{"FLOAT16": 53, "INT64": 2}``): a quick audit of a conversion."""
    onnx = _onnx()
    m = onnx.load(os.fspath(path_or_model)) if isinstance(path_or_model, (str, os.PathLike)) else path_or_model
    out: dict[str, int] = {}
    for t in m.graph.initializer:
        k = onnx.TensorProto.DataType.Name(t.data_type)
        out[k] = out.get(k, 0) + 1
    return out
