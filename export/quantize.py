"""FP32 ONNX -> INT8 ONNX with ONNX Runtime static quantization (QDQ, per-channel weights).

    calib = preprocess_numpy([load_image(p) for p in paths], meta.preprocess)   # (N, 3, S, S) float32, real photos
    quantize_int8("best.onnx", "best.int8.onnx", calib)                         # U8 activations, S8 weights, MinMax

The calibration array must be preprocessed exactly as the runtime will (``models.preprocess``): the
activation ranges are learned from it.  A few hundred real images are enough; random noise is not (the
export pipeline refuses to calibrate without images).

Types: on x86 with AVX-512 VNNI, U8 activations with S8 weights fuse into ``QLinearConv``/``QLinearMatMul``
and ran about 3x faster than fp32, whereas S8 activations left fp32 convolutions behind (see NOTES and
the export section of the README for the measurement); so ``activation="U8", weight="S8"`` is the default.

The source is first run through ``onnxruntime.quantization.quant_pre_process`` (symbolic shape inference
and graph optimisation, e.g. BatchNorm folding for dynamo exports); if that step fails, the source is
quantized as it is and a warning says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time

import numpy as np

from pawlens.errors import ArtifactError, InputError, one_line

from .onnx import _onnx, check_io, read_meta, save_model, set_meta

LOG = logging.getLogger("pawlens")

QTYPES = {"U8": "QUInt8", "S8": "QInt8"}
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@contextlib.contextmanager
def _work_dir(path: str):
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class _ArrayReader:
    """``CalibrationDataReader`` over an in-memory array, in fixed batches."""

    def __init__(self, name: str, data: np.ndarray, batch: int):
        self.name, self.data, self.batch, self.i = name, data, batch, 0

    def get_next(self):
        if self.i >= len(self.data):
            return None
        b = self.data[self.i : self.i + self.batch]
        self.i += self.batch
        return {self.name: np.ascontiguousarray(b)}

    def rewind(self):
        self.i = 0

    def __len__(self):
        return len(self.data)


#: Bytes a histogram calibrator holds per calibration image, per byte of float activations of one image
#: (measured: ResNet50 at 224 px, 0.099 GB of activations per image; percentile on 64 images peaked at 8.9 GB resident,
#: 1.8 GB of it before calibration: 1.13x; 1.25 leaves a margin).
HISTOGRAM_OVERHEAD = 1.25


def activation_bytes(model_path: str) -> int:
    """Bytes of float32 activations one image produces in the ONNX model (every intermediate tensor, batch 1)."""
    onnx = _onnx()
    m = onnx.load(model_path, load_external_data=False)
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    m = onnx.shape_inference.infer_shapes(m)
    total = 0
    for vi in list(m.graph.value_info) + list(m.graph.output):
        t = vi.type.tensor_type
        if t.elem_type != onnx.TensorProto.FLOAT or not t.HasField("shape"):
            continue
        n = 1
        for d in t.shape.dim:
            n *= d.dim_value if d.HasField("dim_value") else 1
        total += 4 * n
    return total


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_calibration_memory(model_path: str, n_images: int, method: str, *, available: int | None = None) -> None:
    """Refuse, before any work, a histogram calibration (entropy, percentile) that would not fit in memory.

    onnxruntime's histogram calibrators keep every intermediate tensor of every calibration image until the
    end (MinMax streams and needs none of that): ResNet50 at 224 px holds about 0.13 GB per image, so 500
    images need ~60 GB, and the kernel's OOM killer ends the export without a message.
    """
    if method.lower() == "minmax":
        return
    per_image = activation_bytes(model_path) * HISTOGRAM_OVERHEAD
    avail = _available_memory() if available is None else available
    if not avail or per_image * n_images <= 0.8 * avail:
        return
    fits = max(1, int(0.8 * avail // per_image))
    raise InputError(
        f"--calib-method {method.lower()} keeps every activation of every calibration image in memory: {n_images} images of "
        f"{os.path.basename(model_path)} need about {per_image * n_images / 2**30:.1f} GB, {avail / 2**30:.1f} GB are free; "
        f"use --calib-max {fits} or --calib-method minmax (streams any number of images)"
    )


def quantize_int8(src_onnx: str | os.PathLike, out_path: str | os.PathLike, calib: np.ndarray, *, per_channel: bool = True,
                  activation: str = "U8", weight: str = "S8", method: str = "minmax", batch_size: int = 8,
                  pre_process: bool = True, reduce_range: bool = True) -> str:
    """Quantize an fp32 pawlens ONNX file to INT8 (QDQ) with calibration on ``calib``.

    Args:
        src_onnx: the fp32 ONNX file written by :func:`export.onnx.export_onnx`.
        out_path: where to write the INT8 model (atomically).
        calib: ``(N, 3, S, S)`` float32 calibration inputs, preprocessed as at runtime.
        per_channel: per-output-channel weight scales (recommended for CNNs).
        activation: ``U8`` or ``S8`` activations.
        weight: ``S8`` or ``U8`` weights.
        method: ``minmax`` (default; cheap, exact ranges), ``entropy`` or ``percentile`` (histograms: memory grows with N).
        batch_size: calibration batch size.
        pre_process: run ``quant_pre_process`` first.
        reduce_range: 7-bit weights.  x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) add u8 x s8 products in
            saturating 16-bit pairs; with full 8-bit weights those sums overflow and INT8 results drift (OpenVINO
            documents the same "saturation issue" for its CPUs).  7-bit weights cannot overflow, so the artifact
            gives the same answers on every x86 CPU; the cost is one bit of weight resolution.

    Raises:
        InputError: bad calibration array or option.
        ArtifactError: the source model cannot be quantized.
    """
    onnx = _onnx()
    from pawlens.runtime.base import lazy_import

    q = lazy_import("onnxruntime.quantization", "cpu", "onnxruntime")
    src, out = os.fspath(src_onnx), os.fspath(out_path)
    act, wt = activation.upper(), weight.upper()
    if act not in QTYPES or wt not in QTYPES:
        raise InputError(f"int8 types activation={activation!r} weight={weight!r}: each must be one of {', '.join(QTYPES)}")
    if method.lower() not in METHODS:
        raise InputError(f"unknown calibration method {method!r}; choose one of: {', '.join(METHODS)}")
    meta = read_meta(src)
    s = meta.preprocess.input_size
    calib = np.asarray(calib)
    if calib.ndim != 4 or calib.shape[1:] != (3, s, s) or calib.dtype != np.float32:
        raise InputError(f"calibration data must be (N, 3, {s}, {s}) float32 preprocessed images, got {calib.shape} {calib.dtype}")
    if len(calib) == 0:
        raise InputError("calibration data is empty; pass real images with --calib DIR")
    if not np.isfinite(calib).all():
        raise InputError("calibration data contains NaN/inf values")
    check_calibration_memory(src, len(calib), method)

    t0 = time.perf_counter()
    # The work folder sits beside the output, named <out>.int8.tmp-<PID>: a killed run's leftovers are found and
    # removed by the next export into that folder (pawlens.fs.remove_stale_temps).
    work = f"{out}.int8.tmp-{os.getpid()}"
    os.makedirs(work, exist_ok=True)
    with _work_dir(work) as d:
        model_in = src
        pre_note = "none"
        if pre_process:
            pre = os.path.join(d, "pre.onnx")
            try:
                from onnxruntime.quantization.shape_inference import quant_pre_process

                quant_pre_process(src, pre, skip_symbolic_shape=False)
                model_in, pre_note = pre, "quant_pre_process"
            except Exception as e:  # fall back to the source: quantization still works, maybe less fused
                LOG.warning("[int8] quant_pre_process failed (%s: %s); quantizing the model as exported",
                            type(e).__name__, one_line(e, 120, with_type=False))
        tmp_out = os.path.join(d, "int8.onnx")
        reader = _ArrayReader(meta.input_name, calib, max(1, int(batch_size)))
        try:
            q.quantize_static(
                model_in, tmp_out, reader, quant_format=q.QuantFormat.QDQ, per_channel=per_channel,
                activation_type=getattr(q.QuantType, QTYPES[act]), weight_type=getattr(q.QuantType, QTYPES[wt]),
                calibrate_method=getattr(q.CalibrationMethod, METHODS[method.lower()]), reduce_range=bool(reduce_range),
                extra_options={"ActivationSymmetric": act == "S8", "WeightSymmetric": True},
            )
        except Exception as e:
            raise ArtifactError(f"{src}: onnxruntime static quantization failed ({one_line(e, 240)})") from None
        m = onnx.load(tmp_out)
    meta.precision = "int8"
    meta.extra = dict(meta.extra, int8={
        "format": "QDQ", "activation": act, "weight": wt, "per_channel": bool(per_channel), "method": method.lower(),
        "reduce_range": bool(reduce_range),
        "calib_images": int(len(calib)), "pre_process": pre_note, "seconds": round(time.perf_counter() - t0, 2),
    })
    set_meta(m, meta)
    m.producer_name = "pawlens"
    check_io(m, path=out, input_size=s, num_classes=len(meta.class_names))
    return save_model(m, out)
