"""Read an ONNX file's ``metadata_props`` without the onnx package, and notice truncated files.

    props = read_onnx_props("model.onnx")          # {"pawlens.class_names": "[...]", ...}

The runtime-only installs (``.[cpu]``, ``.[openvino]``) have no ``onnx`` package, yet the factory
must know an artifact's class names, preprocessing and precision before any backend loads it.  An
ONNX file is one protobuf ``ModelProto``; this walks its top-level fields (skipping the graph by its
length prefix, so a 100 MB model costs a few microseconds after the ``mmap``) and decodes field 14,
``repeated StringStringEntryProto metadata_props``.  A field that runs past the end of the file
means the file was cut short, which is reported as such.

Model files from elsewhere are untrusted input: this reader only decodes lengths and strings and
never executes anything, but a backend that loads the graph parses much more.
"""

from __future__ import annotations

import mmap
import os

from pawlens.errors import ArtifactError
from pawlens.models.artifact import ArtifactMeta

_METADATA_PROPS = 14
_GRAPH = 7


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise EOFError
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf, pos: int, end: int):
    """Yield (field_number, wire_type, value_or_(start, stop)) for one protobuf message."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            val, pos = _varint(buf, pos, end)
            yield field, wire, val
        elif wire == 1:
            if pos + 8 > end:
                raise EOFError
            yield field, wire, None
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise EOFError
            yield field, wire, (pos, pos + n)
            pos += n
        elif wire == 5:
            if pos + 4 > end:
                raise EOFError
            yield field, wire, None
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")


def read_onnx_props(path: str | os.PathLike) -> dict[str, str]:
    """Return the model's ``metadata_props`` as a dict.

    Raises:
        ArtifactError: missing, empty, truncated, or not an ONNX model file.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ArtifactError(f"{p}: model file not found")
    size = os.path.getsize(p)
    if size == 0:
        raise ArtifactError(f"{p}: zero-byte model file; re-export it with pawlens-export")
    props: dict[str, str] = {}
    seen_graph = False
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            for field, wire, val in _fields(buf, 0, size):
                if field == _GRAPH and wire == 2:
                    seen_graph = True
                elif field == _METADATA_PROPS and wire == 2:
                    key = value = ""
                    for f2, w2, v2 in _fields(buf, val[0], val[1]):
                        if w2 == 2 and f2 in (1, 2):
                            s = bytes(buf[v2[0] : v2[1]]).decode("utf-8", errors="replace")
                            if f2 == 1:
                                key = s
                            else:
                                value = s
                    props[key] = value
        except EOFError:
            raise ArtifactError(f"{p}: truncated ONNX file (it ends inside a field); copy or re-export it with pawlens-export") from None
        except ValueError:
            raise ArtifactError(f"{p}: not an ONNX model (cannot be decoded as one); pass a .onnx file written by pawlens-export") from None
    if not seen_graph:
        raise ArtifactError(f"{p}: not an ONNX model (no graph); pass a .onnx file written by pawlens-export")
    return props


def read_onnx_output_shape(path: str | os.PathLike) -> list[int | None] | None:
    """The declared shape of the graph's first output (``None`` for a symbolic dimension), or ``None`` if not declared.

    Walks ``ModelProto.graph`` (7) -> ``GraphProto.output`` (12) -> ``ValueInfoProto.type`` (2) ->
    ``TypeProto.tensor_type`` (1) -> ``shape`` (2) -> ``dim`` (1): ``dim_value`` (1) or ``dim_param`` (2).
    Nodes and initializers are skipped by their length prefix.  Call :func:`read_onnx_props` first for
    the error messages about missing or truncated files; here an undecodable file just gives ``None``.
    """
    p = os.fspath(path)

    def sub(buf, span, field):
        for f, w, v in _fields(buf, span[0], span[1]):
            if f == field and w == 2:
                return v
        return None

    try:
        with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            graph = sub(buf, (0, len(buf)), _GRAPH)
            out = graph and sub(buf, graph, 12)
            shape = out and sub(buf, out, 2)
            shape = shape and sub(buf, shape, 1)
            shape = shape and sub(buf, shape, 2)
            if not shape:
                return None
            dims: list[int | None] = []
            for f2, w2, v2 in _fields(buf, shape[0], shape[1]):
                if f2 != 1 or w2 != 2:
                    continue
                value = None
                for f3, w3, v3 in _fields(buf, v2[0], v2[1]):
                    if f3 == 1 and w3 == 0:
                        value = int(v3)
                dims.append(value)
            return dims
    except (OSError, ValueError, EOFError):
        return None


#: Operators that only a quantized graph holds (QDQ, QOperator and dynamic quantization).
_QUANT_OPS = frozenset({b"QuantizeLinear", b"DequantizeLinear", b"DynamicQuantizeLinear", b"QLinearConv", b"QLinearMatMul",
                        b"ConvInteger", b"MatMulInteger"})
_FLOAT, _FLOAT16 = 1, 10  # TensorProto.DataType


def graph_precision(path: str | os.PathLike) -> str | None:
    """What the graph itself holds: ``"int8"`` with quantize operators, ``"fp16"`` when most float weights are float16,
    else ``"fp32"``; ``None`` when the file cannot be walked (:func:`read_onnx_props` reports why).

    Walks ``GraphProto.node`` (1) -> ``op_type`` (4) and ``GraphProto.initializer`` (5) -> ``data_type`` (2); the
    weights' bytes are skipped by their length prefix.
    """
    try:
        with open(os.fspath(path), "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            graph = next((v for fld, w, v in _fields(buf, 0, len(buf)) if fld == _GRAPH and w == 2), None)
            if graph is None:
                return None
            quantized, n16, n32 = False, 0, 0
            for fld, w, v in _fields(buf, graph[0], graph[1]):
                if w != 2 or fld not in (1, 5):
                    continue
                for f2, w2, v2 in _fields(buf, v[0], v[1]):
                    if fld == 1 and f2 == 4 and w2 == 2:
                        quantized = quantized or buf[v2[0]:v2[1]] in _QUANT_OPS
                    elif fld == 5 and f2 == 2 and w2 == 0:
                        n16 += v2 == _FLOAT16
                        n32 += v2 == _FLOAT
            return "int8" if quantized else "fp16" if n16 > n32 else "fp32"
    except (OSError, ValueError, EOFError):
        return None


def check_precision(path: str | os.PathLike, precision: str) -> None:
    """ArtifactError when the metadata's precision is not what the graph holds (an fp32 graph labelled int8 would be
    reported, benchmarked and gated as int8)."""
    actual = graph_precision(path)
    if actual is not None and actual != precision:
        what = {"int8": "quantize operators", "fp16": "float16 weights", "fp32": "float32 weights and no quantize operators"}
        raise ArtifactError(f"{os.fspath(path)}: its metadata says {precision} but the graph holds {what[actual]} ({actual}); "
                            "re-export it with pawlens-export, or fix its pawlens.precision")


def check_output_classes(path: str | os.PathLike, class_names) -> None:
    """ArtifactError when the graph's declared class dimension differs from the number of class names."""
    dims = read_onnx_output_shape(path)
    if dims and len(dims) == 2 and dims[1] is not None and dims[1] != len(class_names):
        raise ArtifactError(f"{os.fspath(path)}: the graph outputs {dims[1]} classes but its metadata names {len(class_names)} "
                            f"({', '.join(map(str, class_names))}); re-export it with pawlens-export (or fix --classes)")


def read_onnx_meta(path: str, *, require: bool = True) -> ArtifactMeta | None:
    """Read the pawlens metadata of an ONNX file (without the onnx package or a session).

    Raises:
        ArtifactError: missing/truncated/foreign file, or (``require=True``) no pawlens metadata.
    """
    props = read_onnx_props(path)
    if not require and not any(k.startswith("pawlens.") for k in props):
        return None
    meta = ArtifactMeta.from_props(props, path=os.fspath(path))
    check_output_classes(path, meta.class_names)
    check_precision(path, meta.precision)
    return meta


#: The element types an ONNX input or output may have (float32; float16 for fp16 graphs, cast by the runners).
FLOAT_TYPES = ("float32", "float16")


def check_graph_io(path: str | os.PathLike, inputs, outputs, meta=None, *, backend: str = "onnx") -> None:
    """The one contract both ONNX backends enforce at activation: one float (N, 3, S, S) input, one (N, C) float output.

    Args:
        inputs, outputs: ``(name, shape, dtype)`` per graph input / output, as the backend reports them:
            ``shape`` a tuple (``None`` for a symbolic dimension) or ``None`` for an unknown rank, ``dtype``
            a NumPy-style name (``float32``, ``uint8``, ``int64``...).
        meta: the artifact metadata (its input size and class count are checked when the graph fixes them, its
            precision was checked against the graph when :func:`read_onnx_meta` read it).

    Raises:
        ArtifactError: one line naming the file and what the graph has instead.
    """
    p = os.fspath(path)
    fix = "pawlens runs graphs exported by pawlens-export"
    if len(inputs) != 1 or len(outputs) != 1:
        raise ArtifactError(f"{p}: the graph has {len(inputs)} input(s) and {len(outputs)} output(s), "
                            f"expected one (N, 3, S, S) float32 input and one (N, C) output; {fix}")
    name, shape, dtype = inputs[0]
    if dtype not in FLOAT_TYPES:
        raise ArtifactError(f"{p}: input {name!r} is {dtype}, expected float32 (N, 3, S, S); {fix}")
    if shape is None or len(shape) != 4 or shape[1] not in (None, 3):
        raise ArtifactError(f"{p}: input {name!r} has shape {_dims(shape)}, expected (N, 3, S, S); {fix}")
    size = meta.preprocess.input_size if meta is not None else None
    if size is not None and any(d is not None and d != size for d in shape[2:]):
        raise ArtifactError(f"{p}: input {name!r} has shape {_dims(shape)} but its metadata preprocesses to {size} px; "
                            "re-export it with pawlens-export")
    oname, oshape, odtype = outputs[0]
    if odtype not in FLOAT_TYPES:
        raise ArtifactError(f"{p}: output {oname!r} is {odtype}, expected float logits (N, C); {fix}")
    if oshape is None or len(oshape) != 2:
        raise ArtifactError(f"{p}: output {oname!r} has shape {_dims(oshape)}, expected (N, C) logits; {fix}")
    if meta is not None and oshape[1] is not None and oshape[1] != len(meta.class_names):
        raise ArtifactError(f"{p}: the graph outputs {oshape[1]} classes but its metadata names {len(meta.class_names)}; "
                            "re-export it with pawlens-export (or fix --classes)")


def _dims(shape) -> str:
    if shape is None:
        return "(unknown rank)"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def is_out_of_memory(e: BaseException) -> bool:
    """A failed allocation, as each backend reports it (MemoryError, std::bad_alloc, an allocator's message)."""
    msg = str(e).lower()
    return isinstance(e, MemoryError) or any(s in msg for s in ("alloc", "bad_alloc", "out of memory"))


def run_error(path: str | os.PathLike, backend: str, e: BaseException, doing: str = "running the graph"):
    """The one-line error for a backend that fails *while running* a graph (not a crash: the file is at fault).

    A failed allocation (a ConstantOfShape bomb, or a batch too large for this machine) exits 1 and
    says both; anything else the graph does wrong is an ArtifactError (exit 2).  ``doing``: what failed
    (OpenVINO folds constants when it compiles a static shape, so a bomb can fail there: "compiling the graph ...").
    """
    from pawlens.errors import PawlensError

    msg = " ".join(str(e).split())
    short = msg[:160]
    if is_out_of_memory(e):
        err = PawlensError(f"{os.fspath(path)}: {backend} ran out of memory {doing} ({type(e).__name__}: {short}); "
                           "use a smaller --batch-size, or the graph asks for absurd memory (not a pawlens export?)",
                           component=backend)
        err.exit_code = 1
        return err
    return ArtifactError(f"{os.fspath(path)}: {backend} failed {doing} ({type(e).__name__}: {short}); "
                         "the file is damaged or was not made by pawlens-export")
