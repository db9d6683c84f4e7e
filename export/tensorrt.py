"""ONNX -> TensorRT FP16 engine (+ JSON sidecar), with the TensorRT Python API; TensorRT is imported lazily.

    sidecar = build_engine("best.onnx", "best.fp16.engine", fp16_onnx_path="best.fp16.onnx", batch_max=32)
    # writes best.fp16.engine, best.fp16.engine.json (the sidecar) and best.fp16.timing.cache

How the FP16 engine is obtained depends on the TensorRT version (:func:`choose_build_mode`):

* TensorRT 11 removed ``BuilderFlag.FP16`` (networks are always strongly typed) and 10.12 deprecated weak
  typing: for those, a strongly typed network is parsed from the **FP16 ONNX** (fp16 weights and
  compute, fp32 I/O), so the precision comes from the graph's types (``build_mode="strongly_typed_fp16_onnx"``);
* older 10.x (and 8.x/9.x): the **FP32 ONNX** is parsed and ``BuilderFlag.FP16`` lets TensorRT pick fp16
  kernels (``build_mode="fp16_flag"``).

The engine is built for one optimisation profile (batch ``min``/``opt``/``max``), with a workspace
limit, ``ProfilingVerbosity.DETAILED`` and a timing cache kept next to the engine (reused by the next
build).  After the build the engine is deserialized and TensorRT's engine inspector reports every layer
as JSON; :func:`audit_precision` counts the layers that run in FP16 and in FP32.  An engine asked to be
FP16 that came out mostly FP32 is a failure (:class:`~pawlens.errors.ParityError`), not a silent success.

The sidecar ``<engine>.json`` holds the artifact metadata (:class:`models.artifact.ArtifactMeta` fields
as plain JSON) plus the TensorRT version, GPU name and compute capability, the profile, the sha256 of
the parsed ONNX and of the engine, the build mode and the precision audit (keys: :data:`SIDECAR_KEYS`).
This module writes it; :mod:`runtime.trt_runner` reads it (``read_sidecar``) and refuses an engine
built for another TensorRT version or GPU.

Everything except :func:`build_engine` is pure Python and tested without TensorRT; ``build_engine``
itself is tested here with a fake ``tensorrt`` module, and for real only where TensorRT and a GPU
exist (tests marked ``trt``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import time
from typing import Any

from pawlens.errors import ArtifactError, BackendUnavailable, InputError, ParityError, one_line
from pawlens.fs import atomic_write_bytes, atomic_write_text, sha256_file
from pawlens.models.artifact import ArtifactMeta
from pawlens.runtime.formats import sidecar_path

LOG = logging.getLogger("pawlens")

STRONGLY_TYPED = "strongly_typed_fp16_onnx"
FP16_FLAG = "fp16_flag"
#: First version that deprecated weak typing (and so ``BuilderFlag.FP16``).
WEAK_TYPING_DEPRECATED = (10, 12)
#: An FP16 engine needs at least this fraction of its FP16+FP32 compute layers in FP16.
MIN_FP16_FRACTION = 0.8
#: Layer types that move or reinterpret data rather than compute; they count as "other" in the audit.
BOOKKEEPING_LAYERS = {"Reformat", "NoOp", "Shuffle", "Constant", "Cast", "Identity", "Copy"}

SIDECAR_KEYS = (
    "class_names", "preprocess", "arch", "precision", "source_sha256", "tool_version", "input_name", "output_name",
    "tensorrt_version", "gpu_name", "compute_capability", "profile", "source_onnx_sha256", "engine_sha256",
    "build_mode", "precision_audit", "created",
)


# ----------------------------------------------------------------------------- pure helpers


def timing_cache_path(engine_path: str | os.PathLike) -> str:
    """The timing cache kept next to the engine: ``best.fp16.engine`` -> ``best.fp16.timing.cache``."""
    return os.path.splitext(os.fspath(engine_path))[0] + ".timing.cache"


def parse_version(v: str) -> tuple[int, ...]:
    """``"10.12.0.36"`` -> ``(10, 12, 0, 36)``; non-numeric suffixes are dropped (``"11.4.0rc1"`` -> ``(11, 4, 0)``)."""
    parts = []
    for p in str(v).split("."):
        m = re.match(r"\d+", p)
        if not m:
            break
        parts.append(int(m.group()))
    if not parts:
        raise ArtifactError(f"cannot parse the TensorRT version {v!r}")
    return tuple(parts)


def choose_build_mode(trt_version: str, *, has_fp16_flag: bool = True, has_strongly_typed: bool = True) -> str:
    """Strongly typed from the FP16 ONNX for TensorRT >= 10.12 (and 11, which has no FP16 flag); FP16 flag before.

    Args:
        trt_version: ``tensorrt.__version__``.
        has_fp16_flag: whether ``tensorrt.BuilderFlag.FP16`` exists in these bindings.
        has_strongly_typed: whether ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists.
    """
    v = parse_version(trt_version)
    if v[0] >= 11 or not has_fp16_flag:
        return STRONGLY_TYPED
    if v[:2] >= WEAK_TYPING_DEPRECATED and has_strongly_typed:
        return STRONGLY_TYPED
    return FP16_FLAG


def profile_shapes(input_size: int, batch_min: int = 1, batch_opt: int = 8, batch_max: int = 32) -> dict[str, list[int]]:
    """The optimisation profile ``{"min": [1,3,S,S], "opt": [8,3,S,S], "max": [32,3,S,S]}``; checks 1 <= min <= opt <= max."""
    b = [int(batch_min), int(batch_opt), int(batch_max)]
    if not (1 <= b[0] <= b[1] <= b[2]):
        raise InputError(f"batch sizes must satisfy 1 <= min <= opt <= max, got min={b[0]} opt={b[1]} max={b[2]}")
    if b[2] > 4096:
        raise InputError(f"--batch-max {b[2]} is unreasonably large (limit 4096)")
    s = int(input_size)
    return {k: [n, 3, s, s] for k, n in zip(("min", "opt", "max"), b)}


def _tensor_precision(desc: str) -> str:
    """Map an inspector ``Format/Datatype`` string to fp16 / fp32 / int8 / bf16 / other / unknown."""
    d = str(desc).lower()
    if not d or d.startswith("n/a"):
        return "unknown"
    if "bf16" in d or "bfloat" in d:
        return "bf16"
    if "fp16" in d or "half" in d or "float16" in d:
        return "fp16"
    if "int8" in d:
        return "int8"
    if "fp32" in d or "float" in d:
        return "fp32"
    if "fp8" in d or "int4" in d or "int32" in d or "int64" in d or "bool" in d:
        return "other"
    return "unknown"


def layer_precision(layer: dict[str, Any]) -> str:
    """``fp16``, ``fp32`` or ``other`` for one inspector layer (bookkeeping and mixed-precision layers are ``other``)."""
    if str(layer.get("LayerType", "")) in BOOKKEEPING_LAYERS:
        return "other"
    tensors = list(layer.get("Inputs") or []) + list(layer.get("Outputs") or [])
    kinds = {_tensor_precision(t.get("Format/Datatype", "")) for t in tensors if isinstance(t, dict)}
    kinds.discard("unknown")
    if kinds == {"fp16"}:
        return "fp16"
    if kinds == {"fp32"}:
        return "fp32"
    return "other"


def audit_precision(engine_info: str | dict[str, Any], *, min_fraction: float = MIN_FP16_FRACTION) -> dict[str, Any]:
    """Count FP16 / FP32 / other layers in the inspector's JSON (``LayerInformationFormat.JSON``).

    Returns:
        ``{"fp16_layers", "fp32_layers", "other_layers", "fraction_fp16", "passed"}``, where
        ``fraction_fp16 = fp16 / (fp16 + fp32)`` and ``passed`` needs at least ``min_fraction``.
        Layer entries given as bare names (an engine built without ``ProfilingVerbosity.DETAILED``)
        carry no precision: they count as other and the audit fails.
    """
    if isinstance(engine_info, (str, bytes)):
        try:
            info = json.loads(engine_info)
        except ValueError as e:
            raise ArtifactError(f"engine inspector output is not JSON ({e})") from None
    else:
        info = engine_info
    layers = info.get("Layers", []) if isinstance(info, dict) else info
    counts = {"fp16": 0, "fp32": 0, "other": 0}
    for layer in layers:
        counts[layer_precision(layer) if isinstance(layer, dict) else "other"] += 1
    compute = counts["fp16"] + counts["fp32"]
    frac = counts["fp16"] / compute if compute else 0.0
    return {
        "fp16_layers": counts["fp16"], "fp32_layers": counts["fp32"], "other_layers": counts["other"],
        "fraction_fp16": round(frac, 4), "passed": bool(compute > 0 and frac >= min_fraction),
    }


def build_sidecar(meta: ArtifactMeta, *, tensorrt_version: str, gpu_name: str, compute_capability: str, profile: dict[str, list[int]],
                  source_onnx_sha256: str, engine_sha256: str, build_mode: str, precision_audit: dict[str, Any],
                  created: str | None = None) -> dict[str, Any]:
    """The sidecar dict, with exactly :data:`SIDECAR_KEYS` (the runtime's TrtRunner reads it)."""
    if build_mode not in (STRONGLY_TYPED, FP16_FLAG):
        raise InputError(f"unknown build mode {build_mode!r}")
    d = {
        "class_names": list(meta.class_names),
        "preprocess": meta.preprocess.to_dict(),
        "arch": meta.arch,
        "precision": meta.precision,
        "source_sha256": meta.source_sha256,
        "tool_version": meta.tool_version,
        "input_name": meta.input_name,
        "output_name": meta.output_name,
        "tensorrt_version": str(tensorrt_version),
        "gpu_name": str(gpu_name),
        "compute_capability": str(compute_capability),
        "profile": {k: [int(x) for x in profile[k]] for k in ("min", "opt", "max")},
        "source_onnx_sha256": source_onnx_sha256,
        "engine_sha256": engine_sha256,
        "build_mode": build_mode,
        "precision_audit": {k: precision_audit[k] for k in ("fp16_layers", "fp32_layers", "other_layers", "fraction_fp16", "passed")},
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    assert tuple(d) == SIDECAR_KEYS
    return d


# ----------------------------------------------------------------------------- TensorRT


def import_tensorrt():
    """``import tensorrt`` or BackendUnavailable in one line."""
    try:
        import tensorrt as trt  # noqa: PLC0415
    except ImportError as e:
        raise BackendUnavailable(
            f"TensorRT is not installed (no module {e.name or 'tensorrt'!r}); --formats trt needs TensorRT and an NVIDIA GPU: "
            "install it on the GPU machine per NVIDIA's instructions (e.g. pip install tensorrt), or leave trt out of --formats",
            component="tensorrt",
        ) from None
    return trt


def gpu_info() -> tuple[str, str]:
    """(GPU name, compute capability ``"9.0"``) of CUDA device 0, via torch; BackendUnavailable without a GPU."""
    try:
        import torch

        ok = torch.cuda.is_available()
    except Exception:  # a broken CUDA install
        ok = False
    if not ok:
        raise BackendUnavailable("no CUDA GPU is visible (torch.cuda.is_available() is False); TensorRT engines are built on the GPU "
                                 "that will run them", component="tensorrt")
    major, minor = torch.cuda.get_device_capability(0)
    return str(torch.cuda.get_device_name(0)), f"{major}.{minor}"


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) or (False, the one-line reason) without raising."""
    try:
        trt = import_tensorrt()
        gpu_info()
    except BackendUnavailable as e:
        return False, str(e)
    return True, str(getattr(trt, "__version__", "?"))


def _set_inspector_context(inspector, context) -> None:
    for attr in ("execution_context", "context"):  # 10.x/11.x name, then 8.x
        try:
            setattr(inspector, attr, context)
            return
        except (AttributeError, TypeError):
            continue


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, fp16_onnx_path: str | os.PathLike | None = None,
                 batch_min: int = 1, batch_opt: int = 8, batch_max: int = 32, workspace_gb: float = 4.0,
                 timing_cache: str | os.PathLike | None = None, min_fp16_fraction: float = MIN_FP16_FRACTION) -> dict[str, Any]:
    """Build an FP16 TensorRT engine and its sidecar; return the sidecar dict.

    Args:
        onnx_path: the FP32 pawlens ONNX (parsed with the FP16 flag on TensorRT < 10.12).
        engine_path: where to write the engine (``<stem>.fp16.engine``); the sidecar goes to ``<engine>.json``.
        fp16_onnx_path: the FP16 ONNX (parsed strongly typed on TensorRT >= 10.12); made on the fly if needed and not given.
        batch_min, batch_opt, batch_max: the optimisation profile's batch sizes.
        workspace_gb: the builder's workspace memory pool limit, in GiB.
        timing_cache: timing cache file (default next to the engine); read if present, written after the build.
        min_fp16_fraction: the precision audit's threshold.

    Raises:
        BackendUnavailable: TensorRT or a GPU is missing (one line).
        ArtifactError: parsing or building failed.
        ParityError: the engine came out mostly FP32; it is kept as ``<engine>.failed`` with its sidecar.
    """
    trt = import_tensorrt()
    gpu_name, cc = gpu_info()
    engine_path = os.fspath(engine_path)
    if not float(workspace_gb) > 0:
        raise InputError(f"--workspace-gb must be > 0, got {workspace_gb}")
    version = str(getattr(trt, "__version__", "0"))
    mode = choose_build_mode(version, has_fp16_flag=hasattr(trt.BuilderFlag, "FP16"),
                             has_strongly_typed=hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"))
    tmpdir = None
    try:
        if mode == STRONGLY_TYPED:
            if fp16_onnx_path is None:
                from .onnx import convert_fp16

                tmpdir = f"{engine_path}.fp16.tmp-{os.getpid()}"  # beside the engine: a killed run's leftover is cleaned up later
                os.makedirs(tmpdir, exist_ok=True)
                fp16_onnx_path = convert_fp16(onnx_path, os.path.join(tmpdir, "model.fp16.onnx"))
            parse_path = os.fspath(fp16_onnx_path)
        else:
            parse_path = os.fspath(onnx_path)
        return _build(trt, version, mode, parse_path, engine_path, gpu_name, cc, batch_min, batch_opt, batch_max,
                      workspace_gb, timing_cache, min_fp16_fraction)
    finally:
        if tmpdir:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)


def _build(trt, version, mode, parse_path, engine_path, gpu_name, cc, batch_min, batch_opt, batch_max, workspace_gb, timing_cache,
           min_fp16_fraction) -> dict[str, Any]:
    from .onnx import read_meta

    meta = read_meta(parse_path)
    profile = profile_shapes(meta.preprocess.input_size, batch_min, batch_opt, batch_max)
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    if builder is None:
        raise BackendUnavailable("TensorRT could not create a builder (no usable GPU or driver)", component="tensorrt")
    flags = 0
    ncf = trt.NetworkDefinitionCreationFlag
    if mode == STRONGLY_TYPED and hasattr(ncf, "STRONGLY_TYPED"):
        flags |= 1 << int(ncf.STRONGLY_TYPED)
    if parse_version(version)[0] < 10 and hasattr(ncf, "EXPLICIT_BATCH"):
        flags |= 1 << int(ncf.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(parse_path):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ArtifactError(f"{parse_path}: TensorRT's ONNX parser failed: {one_line(errs)}", component="tensorrt")
    inp = network.get_input(0)
    if network.num_inputs != 1 or inp.name != meta.input_name:
        raise ArtifactError(f"{parse_path}: expected one input {meta.input_name!r}, the parsed network has {network.num_inputs}",
                            component="tensorrt")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(float(workspace_gb) * (1 << 30)))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if mode == FP16_FLAG:
        config.set_flag(trt.BuilderFlag.FP16)
    prof = builder.create_optimization_profile()
    prof.set_shape(meta.input_name, profile["min"], profile["opt"], profile["max"])
    config.add_optimization_profile(prof)

    cache_file = os.fspath(timing_cache) if timing_cache else timing_cache_path(engine_path)
    blob = b""
    if os.path.isfile(cache_file):
        with open(cache_file, "rb") as f:
            blob = f.read()
    cache = config.create_timing_cache(blob)
    if not config.set_timing_cache(cache, False):  # a cache from another TensorRT/GPU is rejected: start afresh
        LOG.warning("[tensorrt] %s does not match this TensorRT/GPU; starting a new timing cache", cache_file)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError(f"{parse_path}: TensorRT failed to build the engine (see the messages above; try a larger --workspace-gb)",
                            component="tensorrt")
    data = bytes(serialized)
    build_s = time.perf_counter() - t0

    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise ArtifactError(f"{engine_path}: TensorRT could not deserialize the engine it just built", component="tensorrt")
    context = engine.create_execution_context()
    context.set_input_shape(meta.input_name, profile["opt"])
    inspector = engine.create_engine_inspector()
    _set_inspector_context(inspector, context)
    audit = audit_precision(inspector.get_engine_information(trt.LayerInformationFormat.JSON), min_fraction=min_fp16_fraction)

    meta.precision = "fp16"
    sidecar = build_sidecar(
        meta, tensorrt_version=version, gpu_name=gpu_name, compute_capability=cc, profile=profile,
        source_onnx_sha256=sha256_file(parse_path), engine_sha256=_sha256_bytes(data), build_mode=mode, precision_audit=audit,
    )
    atomic_write_bytes(cache_file, bytes(config.get_timing_cache().serialize()))
    if not audit["passed"]:
        bad = engine_path + ".failed"
        atomic_write_bytes(bad, data)
        atomic_write_text(sidecar_path(bad), json.dumps(sidecar, indent=2))
        raise ParityError(
            f"{engine_path}: asked for FP16 but {audit['fp32_layers']} of {audit['fp16_layers'] + audit['fp32_layers']} compute layers "
            f"run in FP32 (FP16 fraction {audit['fraction_fp16']:.2f} < {min_fp16_fraction}); kept as {os.path.basename(bad)}",
            component="tensorrt",
        )
    atomic_write_text(sidecar_path(engine_path), json.dumps(sidecar, indent=2))  # first: an engine never sits without it
    atomic_write_bytes(engine_path, data)
    LOG.debug("[tensorrt] built %s in %.1f s (%s, TensorRT %s, %s)", engine_path, build_s, mode, version, gpu_name)
    return sidecar


def _sha256_bytes(b: bytes) -> str:
    import hashlib

    return hashlib.sha256(b).hexdigest()
