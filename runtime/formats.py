"""The formats table: every artifact kind Pawlens writes or loads, in one place (after Ultralytics' ``export_formats()``).

    from pawlens.runtime.formats import FORMATS, by_key, file_kind, auto_choice
    by_key("int8").suffix            # ".int8.onnx": the name pawlens-export gives it
    file_kind("best.int8.onnx")      # ".onnx": what decides which backends can load a file
    auto_choice(".onnx", "int8", cuda=False, installed={"ort", "openvino"})   # ("openvino", {...}, reason)

Export names its outputs from it, the factory's ``--backend auto`` and its list of loadable files come from it,
the desktop app's file filters and preloading come from it, the bench builds its candidate matrix from it, and
the README's formats table is :func:`markdown_table` (a test compares them).

``auto`` means one thing everywhere (:func:`auto_choice`), with one exception that the table states and the app
shows in its status line: the desktop app runs ONNX files on ONNX Runtime (``Format.app_backend``), its reference
runtime for ONNX, whose CUDA EP is what a GPU user of the app gets.  ``pawlens-gui --backend auto`` follows
``auto_choice`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Variant:
    """A setting a backend is timed with beside its ``auto`` one: a row of ``pawlens-bench`` and/or a candidate of
    ``pawlens tune``."""

    tag: str  # in the bench row's key, after the backend's: "openvino-int8-bf16"
    label: str  # the bench row's name, after the backend's: "OpenVINO INT8, bf16 float layers"
    settings: dict[str, Any]  # the runner's keyword arguments
    precisions: tuple[str, ...]  # the artifact precisions it applies to
    runs: str | None = None  # what runs, when not the artifact's precision (an fp32 model with a bf16 hint: "bf16")
    needs_bf16: bool = True  # only where the CPU has bf16
    bench: bool = True
    tune: bool = True


@dataclass(frozen=True)
class Backend:
    """A library that runs artifacts: its import name, how a user installs it, its runner, and the settings ``auto``
    runs it with (and the others the bench and ``pawlens tune`` time)."""

    key: str  # torch | ort | openvino | trt
    name: str  # shown to people
    module: str  # imported lazily by the runner
    install: str  # the command that installs it (one line, pasteable)
    runner: str  # the Runner class that runs it, as "module:Class" in pawlens.runtime (imported on use: runner_class)
    gpu_only: bool = False
    auto: dict[str, Any] = field(default_factory=dict, hash=False)  # the runner settings of --backend auto
    takes_device: bool = True  # its runner is given the device (OpenVINO's runs on the CPU)
    cuda_label: str = " (CUDA)"  # how a row of it on CUDA is named
    variants: tuple[Variant, ...] = ()


BACKENDS: dict[str, Backend] = {
    b.key: b for b in (
        # A .pt runs in plain NCHW: which layout is faster changes with the CPU, so pawlens tune times both.
        Backend("torch", "PyTorch", "torch", "pip install -e .  (a core dependency)", "torch_runner:TorchRunner",
                auto={"precision": "fp32", "channels_last": False},
                variants=(Variant("fp32-cl", "fp32 channels_last", {"precision": "fp32", "channels_last": True}, ("fp32",),
                                  needs_bf16=False, bench=False),)),
        Backend("ort", "ONNX Runtime", "onnxruntime", "pip install -e '.[cpu]'  (or '.[gpu]' for the CUDA EP)", "ort_runner:OrtRunner",
                cuda_label=" (CUDA EP)"),
        # OpenVINO's layers left in float run in f32 unless asked (benchmark_app's own default on a bf16 CPU is bf16).
        Backend("openvino", "OpenVINO", "openvino", "pip install -e '.[openvino]'", "openvino_runner:OpenVINORunner",
                auto={"precision": "fp32"}, takes_device=False,
                variants=(Variant("bf16", "bf16 hint (fp32 model)", {"precision": "bf16"}, ("fp32",), runs="bf16", tune=False),
                          Variant("int8-bf16", "INT8, bf16 float layers", {"precision": "bf16"}, ("int8",)))),
        Backend("trt", "TensorRT", "tensorrt", "pip install tensorrt  (NVIDIA's wheels, on a CUDA machine)", "trt_runner:TrtRunner",
                gpu_only=True),
    )
}


@dataclass(frozen=True)
class Format:
    """One artifact kind.

    ``kind`` is the file suffix that decides which backends can load a file (``.pt``, ``.onnx``, ``.engine``);
    ``suffix`` is the full name ending pawlens-export gives it; ``precision`` is what its weights hold (an ONNX
    file's own metadata says which it is; the suffix is only the export's naming).
    """

    key: str  # export's --formats name; "checkpoint" for the training output
    name: str
    kind: str  # .pt | .onnx | .engine
    suffix: str
    precision: str  # fp32 | fp16 | int8
    backends: tuple[str, ...]  # the backends that load it, in the order auto prefers them on the CPU
    cuda_backends: tuple[str, ...]  # ... and on a CUDA device
    sidecar: str | None = None  # a file that must travel with it
    gpu: bool = False  # needs a CUDA GPU to build or run
    exported: bool = True  # pawlens-export writes it
    app_backend: str | None = None  # the desktop app's choice when it differs from auto (see the module docstring)
    gate_backend: str = "ort"  # what pawlens-export checks a freshly built file on, against the PyTorch reference
    gate_device: str = "cpu"
    note: str = ""


FORMATS: tuple[Format, ...] = (
    Format("checkpoint", "PyTorch checkpoint", ".pt", ".pt", "fp32", ("torch",), ("torch",), exported=False, gate_backend="torch",
           note="self-describing (class names, preprocessing, sha256 of the weights); the Grad-CAM reference"),
    Format("onnx", "ONNX fp32", ".onnx", ".onnx", "fp32", ("openvino", "ort"), ("ort",), app_backend="ort",
           note="OpenVINO f32 was 7-12% faster than ONNX Runtime at batch 1 here, same logits within 1e-6"),
    Format("fp16", "ONNX fp16", ".onnx", ".fp16.onnx", "fp16", ("openvino", "ort"), ("ort",), app_backend="ort",
           note="for GPUs; on a CPU the fp16 weights are upcast"),
    Format("int8", "ONNX INT8 (QDQ)", ".onnx", ".int8.onnx", "int8", ("openvino", "ort"), ("ort",), app_backend="ort",
           note="static QDQ; OpenVINO runs it fastest on a CPU"),
    Format("trt", "TensorRT fp16 engine", ".engine", ".fp16.engine", "fp16", ("trt",), ("trt",), sidecar=".json", gpu=True,
           gate_backend="trt", gate_device="cuda",
           note="built for one GPU and TensorRT version; never load an engine from an untrusted source"),
)

#: What pawlens-export writes besides artifacts: folders built from the artifacts that passed their gates.
PACKAGES: tuple[Format, ...] = (
    Format("triton", "Triton model repository", "/", "triton/", "its artifacts'", (), (), exported=True,
           note="one model per passed artifact + a Python-backend model running Pawlens + an image ensemble; pawlens serve"),
)

#: File suffixes that load, with what they are (``.pth`` is read as ``.pt``).
KINDS: dict[str, str] = {".pt": "PyTorch checkpoint", ".onnx": "ONNX model", ".engine": "TensorRT engine (+ .engine.json sidecar)"}
ALIASES: dict[str, str] = {".pth": ".pt"}
#: ``--formats`` names pawlens-export knows, in the order it builds them, and the ones it builds by default.
EXPORT_FORMATS: tuple[str, ...] = tuple(f.key for f in FORMATS + PACKAGES if f.exported)
DEFAULT_EXPORT: tuple[str, ...] = ("onnx", "fp16", "int8")


#: The loadable kinds by name, for code that must name one (a test refuses suffix literals outside this module).
CHECKPOINT, ONNX, ENGINE = ".pt", ".onnx", ".engine"


def runner_class(backend: str) -> type:
    """The Runner class of a backend key (:attr:`Backend.runner`), imported now."""
    import importlib

    module, cls = BACKENDS[backend].runner.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def gate_runner(fmt: str, path: str):
    """The runner pawlens-export checks a freshly built ``fmt`` file on (:attr:`Format.gate_backend`), not activated."""
    f = by_key(fmt)
    return runner_class(f.gate_backend).for_file(path, device=f.gate_device)


def sidecar_path(path) -> str:
    """The file that travels with an engine (the trt row's ``sidecar``): ``best.fp16.engine`` -> ``best.fp16.engine.json``,
    and likewise for an engine kept as ``.failed``."""
    import os

    return os.fspath(path) + str(by_key("trt").sidecar)


def by_key(key: str) -> Format:
    for f in FORMATS + PACKAGES:
        if f.key == key:
            return f
    raise KeyError(key)


def for_file(kind: str, precision: str) -> Format:
    """The row for a file of suffix kind ``kind`` whose weights hold ``precision``."""
    for f in FORMATS:
        if f.kind == kind and f.precision == precision:
            return f
    for f in FORMATS:  # e.g. a bf16 ONNX made elsewhere: the kind decides the backends
        if f.kind == kind:
            return f
    raise KeyError(kind)


def suffix_kind(path: str) -> str | None:
    """The loadable kind of a file name (``.pt``, ``.onnx``, ``.engine``), or ``None``; no file-system access."""
    import os

    ext = os.path.splitext(str(path))[1].lower()
    ext = ALIASES.get(ext, ext)
    return ext if ext in KINDS else None


def backends_for(kind: str) -> tuple[str, ...]:
    """Every backend that can load a file of this kind."""
    out: list[str] = []
    for f in FORMATS:
        if f.kind == kind:
            out += [b for b in f.backends + f.cuda_backends if b not in out]
    return tuple(out)


def file_filter() -> str:
    """A Qt file-dialog filter for the loadable model files."""
    pats = " ".join(f"*{k}" for k in list(KINDS) + list(ALIASES))
    return f"Models ({pats});;All files (*)"


def auto_choice(kind: str, precision: str, *, cuda: bool, installed: Iterable[str]) -> tuple[str, dict[str, Any], str] | None:
    """What ``--backend auto`` runs a file of ``kind`` / ``precision`` on: (backend, runner kwargs, reason), or ``None``
    when none of its backends is installed.  ``installed``: the backend keys that can be imported.

    Never lowers the precision.  A ``.pt`` runs in plain NCHW: which layout is faster changes with the CPU (the bench has
    measured both ways), so the static rule keeps the default and ``pawlens tune`` decides per machine.
    """
    have = set(installed) | {"torch"}
    fmt = for_file(kind, precision)
    for b in fmt.cuda_backends if cuda else fmt.backends:
        if b in have:
            return b, auto_settings(b, cuda=cuda), _auto_reason(b, fmt, precision, cuda)
    return None


def auto_settings(backend: str, *, cuda: bool) -> dict[str, Any]:
    """The runner keyword arguments ``auto`` runs ``backend`` with (:attr:`Backend.auto`, and the device if it takes one)."""
    b = BACKENDS[backend]
    device = {"device": "cuda" if cuda or b.gpu_only else "cpu"} if b.takes_device else {}
    return {**device, **b.auto}


def _auto_reason(backend: str, fmt: "Format", precision: str, cuda: bool) -> str:
    if backend == "ort":
        return f"{fmt.name} on {'CUDA: onnxruntime CUDA EP' if cuda else 'the CPU: onnxruntime'}"
    if backend == "openvino":
        why = "OpenVINO runs the QDQ model fastest" if precision == "int8" else "OpenVINO f32 (faster than onnxruntime at batch 1)"
        return f"{fmt.name} on the CPU: {why}"
    return fmt.name


def variants(backend: str, precision: str, *, bf16: bool, purpose: str) -> list[Variant]:
    """The variants of ``backend`` that apply to an artifact of ``precision`` (``purpose``: ``bench`` or ``tune``)."""
    return [v for v in BACKENDS[backend].variants if precision in v.precisions and (bf16 or not v.needs_bf16) and getattr(v, purpose)]


def app_choice(kind: str, precision: str, *, cuda: bool, installed: Iterable[str]) -> tuple[str, str] | None:
    """The desktop app's backend for a file when it keeps a choice of its own (``Format.app_backend``), with the line it
    shows; ``None`` when the app follows :func:`auto_choice`."""
    fmt = for_file(kind, precision)
    if fmt.app_backend and fmt.app_backend in set(installed):
        return fmt.app_backend, (f"{BACKENDS[fmt.app_backend].name}: the app's runtime for ONNX"
                                 f"{' (CUDA EP)' if cuda else ''}; pawlens-predict's auto would pick "
                                 f"{BACKENDS[(fmt.cuda_backends if cuda else fmt.backends)[0]].name}")
    return None


def markdown_table(formats: Sequence[Format] = FORMATS) -> str:
    """The README's formats table (``tests/test_formats.py`` checks that the README holds this text)."""
    rows = ["| format | `--formats` | file | precision | auto on a CPU | auto on CUDA | desktop app | sidecar | needs a GPU |",
            "|" + "---|" * 9]
    for f in formats:
        cpu = " > ".join(BACKENDS[b].name for b in f.backends if not BACKENDS[b].gpu_only) or "-"
        cuda = " > ".join(BACKENDS[b].name for b in f.cuda_backends)
        app = BACKENDS[f.app_backend].name if f.app_backend else "auto"
        rows.append(f"| {f.name} | {'`' + f.key + '`' if f.exported else 'pawlens-train'} | `*{f.suffix}` | {f.precision} | {cpu} | "
                    f"{cuda} | {app} | {f'`*{f.suffix}{f.sidecar}`' if f.sidecar else '-'} | {'yes' if f.gpu else 'no'} |")
    if formats is FORMATS:
        for f in PACKAGES:
            rows.append(f"| {f.name} | `{f.key}` | `{f.suffix}` | {f.precision} | Triton's Python backend (`pawlens serve`) | "
                        "Triton's onnxruntime / TensorRT backends (NVIDIA's container) | - | - | no |")
    rows += ["", "| backend | `--backend` | install |", "|---|---|---|"]
    rows += [f"| {b.name} | `{b.key}` | `{b.install.split('  ')[0]}`{'  ' + b.install.split('  ', 1)[1] if '  ' in b.install else ''} |"
             for b in BACKENDS.values()]
    return "\n".join(rows)
