"""A Triton model repository from a gated export (after Triton's model-repository and model-configuration docs).

    from pawlens.serve.repository import write_repository
    repo = write_repository("runs/export/lite0/triton", [("int8", "runs/export/lite0/best.int8.onnx")], prefix="lite0")
    repo.models            # {"lite0_int8": ModelEntry(...), "lite0_int8_pawlens": ..., "lite0_int8_image": ..., "lite0_preprocess": ...}

For each artifact ``P_F`` (prefix ``P``, format key ``F``) the repository holds:

- ``P_F``: the artifact itself on the platform NVIDIA's Triton container runs it with: ``onnxruntime_onnx`` for ONNX
  (CUDA EP on a GPU instance, the TensorRT EP and OpenVINO written out in comments, ready to switch on) and
  ``tensorrt_plan`` for an engine.  ``1/model.onnx`` (``model.plan``) is a copy of (a hard link to) the gated file.
- ``P_F_image``: an ensemble, encoded JPEG/PNG bytes in (a ``UINT8`` vector of the file, one image per request): ``P_preprocess`` then ``P_F``.
- ``P_F_pawlens`` (ONNX only): Triton's Python backend running the Pawlens runtime on the same file
  (``pawlens.serve.model``), tensors *or* encoded images in.  It is what serves on a machine whose Triton has only the
  Python backend (``nvidia-pytriton``'s server, the one ``pawlens serve`` starts); needs ``pawlens`` installed for the
  server's Python.
- ``P_preprocess``: the Python backend applying the artifact's :class:`~pawlens.models.preprocess.PreprocessConfig`
  (decode, resize, crop, normalise) to encoded images.

Every model's ``parameters`` record the preprocessing contract (``pawlens.preprocess``, JSON), the class names, the
precision and the source checkpoint's sha256, so a client needs only the server (:mod:`pawlens.serve.client`).
Outputs carry ``label_filename: "labels.txt"`` for Triton's classification extension.  Every ``config.pbtxt`` parses
with Triton's own schema (``tritonclient.grpc.model_config_pb2``: :func:`parse_config`), before the repository is put
in place; ``pawlens serve`` parses a repository Pawlens did not write the same way, to find its models.

The repository is written into a temporary folder beside ``dest`` and renamed into place once complete; a ``dest``
that exists and was not written by Pawlens (no ``.pawlens-repository`` marker) is never replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, Sequence

from pawlens.errors import ArtifactError, InputError, OutputError
from pawlens.models.artifact import ArtifactMeta
from pawlens.runtime.formats import ENGINE, ONNX

#: A file naming the repository as Pawlens's own (what it holds, from which export): only such a folder is replaced.
MARKER = ".pawlens-repository"
#: The module the Python-backend models' ``model.py`` hands everything to.
PYTHON_MODEL = "pawlens.serve.model"
#: Largest batch Triton may form (``max_batch_size``); an engine's profile caps its own.
MAX_BATCH = 32
PLATFORMS = {ONNX: "onnxruntime_onnx", ENGINE: "tensorrt_plan"}
FILENAMES = {ONNX: "model.onnx", ENGINE: "model.plan"}
_NAME_OK = re.compile(r"[^A-Za-z0-9_-]+")

_MODEL_PY = f'''"""Triton Python-backend entry point written by pawlens-export: the work is done by {PYTHON_MODEL}
(installed with pawlens; ``pawlens serve`` names its site-packages in PAWLENS_SITE_PACKAGES)."""
import os
import site
import sys

_before = list(sys.path)
for _d in os.environ.get("PAWLENS_SITE_PACKAGES", "").split(os.pathsep):
    if _d:
        site.addsitedir(_d)
sys.path[:] = [p for p in sys.path if p not in _before] + _before  # that environment first: its numpy, not the base interpreter's

from {PYTHON_MODEL} import TritonPythonModel  # noqa: E402,F401
'''


@dataclass
class ModelEntry:
    """One model in the repository: its name, what runs it (``platform`` or ``backend``) and what it needs."""

    name: str
    kind: str  # native | python | ensemble
    runs_on: str  # onnxruntime_onnx | tensorrt_plan | python | ensemble
    format: str  # the export's format key (int8, ...), "" for preprocess
    inputs: list[str]
    needs: list[str] = field(default_factory=list)  # the models an ensemble calls


@dataclass
class Repository:
    path: str
    prefix: str
    models: dict[str, ModelEntry]

    def backend_of(self, name: str) -> str:
        """The Triton backend folder a model needs (``python``, ``onnxruntime``, ``tensorrt``; ``""`` for an ensemble)."""
        return {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "python": "python", "ensemble": ""}[self.models[name].runs_on]


def model_prefix(name: str) -> str:
    """A Triton-safe model-name prefix from a run or folder name (``efficientnet_lite0`` stays, spaces become ``_``)."""
    p = _NAME_OK.sub("_", name).strip("_-") or "pawlens"
    return p if p[0].isalpha() else "m_" + p


# --------------------------------------------------------------------------------------------- text of config.pbtxt


def _q(s: str) -> str:
    return json.dumps(str(s))  # a protobuf text-format string literal (JSON escapes are a subset)


def _params(d: dict[str, str]) -> list[str]:
    return [f"parameters {{ key: {_q(k)} value {{ string_value: {_q(v)} }} }}" for k, v in d.items()]


def _tensor(name: str, dtype: str, dims: Sequence[int], *, labels: bool = False, optional: bool = False, ragged: bool = False) -> str:
    extra = ((' label_filename: "labels.txt"' if labels else "") + (" optional: true" if optional else "")
             + (" allow_ragged_batch: true" if ragged else ""))
    return f"  {{ name: {_q(name)} data_type: {dtype} dims: [ {', '.join(str(int(d)) for d in dims)} ]{extra} }}"


def _image(*, optional: bool = False) -> str:
    """An encoded image: the file's bytes as a uint8 vector, one image per request (see :mod:`pawlens.serve.model` on
    why not BYTES)."""
    return _tensor("image", "TYPE_UINT8", (-1,), optional=optional, ragged=True)


def _io(kind: str, tensors: list[str]) -> list[str]:
    return [f"{kind} ["] + [t + ("," if i < len(tensors) - 1 else "") for i, t in enumerate(tensors)] + ["]"]


def _contract(meta: ArtifactMeta, fmt: str, sha: str) -> dict[str, str]:
    return {"pawlens.preprocess": json.dumps(meta.preprocess.to_dict(), sort_keys=True), "pawlens.class_names": json.dumps(meta.class_names),
            "pawlens.precision": meta.precision, "pawlens.arch": meta.arch, "pawlens.format": fmt,
            "pawlens.source_sha256": meta.source_sha256, "pawlens.artifact_sha256": sha,
            "pawlens.input_name": meta.input_name, "pawlens.output_name": meta.output_name}


_BATCHING = ["dynamic_batching {",
             "  max_queue_delay_microseconds: 0  # batch whatever waits while the model is busy; raise it to trade latency for batch size",
             "}"]

_ONNX_ACCEL = """\
# On a GPU instance the onnxruntime backend runs on its CUDA EP.  To run it on the TensorRT EP instead (NVIDIA's
# container builds the engine on first load, then caches it), remove the leading '# ' of these lines:
# optimization { execution_accelerators {
#   gpu_execution_accelerator : [ {
#     name : "tensorrt"
#     parameters { key: "precision_mode" value: "FP16" }
#     parameters { key: "max_workspace_size_bytes" value: "4294967296" }
#     parameters { key: "trt_engine_cache_enable" value: "1" }
#   } ]
# } }
# On CPU-only servers, Triton's OpenVINO backend loads this same model.onnx: replace the platform line with
# backend: "openvino" and add  default_model_filename: "model.onnx"  (and instance_group kind: KIND_CPU)."""


def native_config(name: str, kind: str, meta: ArtifactMeta, fmt: str, sha: str, *, size: int, classes: int, max_batch: int) -> str:
    lines = [f"# {name}: {meta.arch} {meta.precision} ({fmt}) written by pawlens-export.  Served by NVIDIA's Triton container;",
             "# the Triton in nvidia-pytriton (pawlens serve) has only the Python backend: it serves the *_pawlens model instead.",
             f"name: {_q(name)}", f"platform: {_q(PLATFORMS[kind])}", f"max_batch_size: {max_batch}"]
    lines += _io("input", [_tensor(meta.input_name, "TYPE_FP32", (3, size, size))])
    lines += _io("output", [_tensor(meta.output_name, "TYPE_FP32", (classes,), labels=True)])
    lines += _BATCHING
    lines += ["instance_group [ { count: 1 } ]  # KIND_GPU where the server sees a GPU, else KIND_CPU"]
    if kind == ONNX:
        lines += _ONNX_ACCEL.splitlines()
    lines += _params(_contract(meta, fmt, sha))
    return "\n".join(lines) + "\n"


def python_config(name: str, meta: ArtifactMeta, fmt: str, sha: str, *, artifact: str, size: int, classes: int, max_batch: int) -> str:
    lines = [f"# {name}: the Pawlens runtime on the repository's {artifact} inside Triton's Python backend ({PYTHON_MODEL}).",
             f"# Send either {meta.input_name!r} (preprocessed float32, 3x{size}x{size}) or 'image' (a JPEG/PNG file's bytes, uint8), not both.",
             f"name: {_q(name)}", 'backend: "python"', f"max_batch_size: {max_batch}"]
    lines += _io("input", [_tensor(meta.input_name, "TYPE_FP32", (3, size, size), optional=True),
                           _image(optional=True)])
    lines += _io("output", [_tensor(meta.output_name, "TYPE_FP32", (classes,), labels=True)])
    lines += _BATCHING
    lines += ["instance_group [ { count: 1 kind: KIND_CPU } ]  # one runner; it uses every core itself"]
    params = _contract(meta, fmt, sha)
    params.update({"pawlens.artifact": artifact, "pawlens.backend": "auto"})
    lines += _params(params)
    return "\n".join(lines) + "\n"


def preprocess_config(name: str, meta: ArtifactMeta, *, size: int, max_batch: int) -> str:
    lines = [f"# {name}: encoded JPEG/PNG bytes -> the float32 tensor the models take (Pawlens's preprocessing, {PYTHON_MODEL}).",
             f"name: {_q(name)}", 'backend: "python"', f"max_batch_size: {max_batch}"]
    lines += _io("input", [_image()])
    lines += _io("output", [_tensor(meta.input_name, "TYPE_FP32", (3, size, size))])
    lines += _BATCHING
    lines += ["instance_group [ { count: 1 kind: KIND_CPU } ]"]
    lines += _params({"pawlens.preprocess": json.dumps(meta.preprocess.to_dict(), sort_keys=True), "pawlens.role": "preprocess",
                      "pawlens.input_name": meta.input_name})
    return "\n".join(lines) + "\n"


def ensemble_config(name: str, pre: str, model: str, meta: ArtifactMeta, fmt: str, sha: str, *, classes: int, max_batch: int) -> str:
    lines = [f"# {name}: encoded JPEG/PNG bytes in, {model}'s logits out ({pre} then {model}).",
             f"name: {_q(name)}", 'platform: "ensemble"', f"max_batch_size: {max_batch}"]
    lines += _io("input", [_image()])
    lines += _io("output", [_tensor(meta.output_name, "TYPE_FP32", (classes,), labels=True)])
    lines += ["ensemble_scheduling {", "  step [",
              f'    {{ model_name: {_q(pre)} model_version: -1 input_map {{ key: "image" value: "image" }} '
              f'output_map {{ key: {_q(meta.input_name)} value: "preprocessed" }} }},',
              f'    {{ model_name: {_q(model)} model_version: -1 input_map {{ key: {_q(meta.input_name)} value: "preprocessed" }} '
              f'output_map {{ key: {_q(meta.output_name)} value: {_q(meta.output_name)} }} }}',
              "  ]", "}"]
    lines += _params(_contract(meta, fmt, sha))
    return "\n".join(lines) + "\n"


def config_params(config: dict[str, Any]) -> dict[str, str]:
    """A model config's ``parameters`` (as Triton's JSON gives them, to a client or to a Python-backend model) as
    ``{key: string_value}``."""
    return {k: (v or {}).get("string_value", "") for k, v in (config.get("parameters") or {}).items()}


def parse_config(text: str, *, path: str = "config.pbtxt"):
    """``text`` parsed with Triton's own ``ModelConfig`` schema (tritonclient's ``model_config_pb2``); ArtifactError naming
    ``path`` and the line when it does not parse.  Needs the ``serve`` extra."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as e:
        from pawlens.errors import BackendUnavailable

        raise BackendUnavailable(f"checking a Triton config needs tritonclient ({e.name}); install it with: pip install -e '.[serve]'") from None
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as e:
        raise ArtifactError(f"{path}: not a valid Triton model config ({e}); re-export with --formats ...,triton") from None


# --------------------------------------------------------------------------------------------- writing it


def _artifact_shape(path: str, meta: ArtifactMeta) -> tuple[int, int, int]:
    """(input size, classes, max batch) of an artifact: from the graph (ONNX) or the engine's sidecar."""
    size, classes = meta.preprocess.input_size, len(meta.class_names)
    if path.endswith(ENGINE):
        from pawlens.runtime.trt_runner import read_sidecar

        prof = read_sidecar(path)["profile"]
        return int(prof["max"][2]), classes, min(MAX_BATCH, int(prof["max"][0]))
    from pawlens.runtime.onnx_meta import read_onnx_output_shape

    shape = read_onnx_output_shape(path)
    if shape and shape[-1] not in (None, classes):
        raise ArtifactError(f"{path}: the graph gives {shape[-1]} logits but its metadata names {classes} classes; re-export it")
    return size, classes, MAX_BATCH


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # artifacts are never written in place (export renames new files in), so a link is a snapshot
    except OSError:
        shutil.copy2(src, dst)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_repository(dest: str | os.PathLike, artifacts: Sequence[tuple[str, str]], *, prefix: str = "pawlens",
                     max_batch: int = MAX_BATCH, check: bool = True) -> Repository:
    """Write a Triton model repository for ``artifacts`` (``[(format key, path), ...]``, files that passed their gate).

    Args:
        dest: the repository folder (``<export>/triton``); replaced only if Pawlens wrote it (its marker file).
        artifacts: ``("onnx"|"fp16"|"int8"|"trt", path)``; each file's own metadata gives names, sizes and the contract.
        prefix: model-name prefix (the run's name), so repositories of several runs can be served side by side.
        max_batch: Triton's ``max_batch_size`` (an engine's profile caps it).
        check: parse every ``config.pbtxt`` with Triton's schema before the repository is put in place (needs
            tritonclient; skipped when it is missing).

    Raises:
        InputError: no artifacts; ArtifactError: an artifact without its metadata; OutputError: ``dest`` is not ours.
    """
    from pawlens.fs import sha256_file
    from pawlens.runtime.factory import read_meta

    dest = os.path.abspath(os.fspath(dest))
    if not artifacts:
        raise InputError("no artifact passed its gate, so there is nothing to serve; fix the export first (parity.md says why)")
    if os.path.exists(dest) and not os.path.isfile(os.path.join(dest, MARKER)):
        raise OutputError(f"{dest}: exists and was not written by pawlens-export (no {MARKER}); move it away or choose another --out")
    prefix = model_prefix(prefix)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(dest)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    models: dict[str, ModelEntry] = {}
    texts: dict[str, str] = {}
    try:
        pre = f"{prefix}_preprocess"
        first_meta: ArtifactMeta | None = None
        for fmt, path in artifacts:
            path = os.fspath(path)
            kind = ENGINE if path.endswith(ENGINE) else ONNX
            meta = read_meta(path)
            if first_meta is None:
                first_meta = meta
            elif meta.preprocess.to_dict() != first_meta.preprocess.to_dict():
                raise ArtifactError(f"{path}: its preprocessing differs from {artifacts[0][1]}'s; one repository serves one model's exports")
            size, classes, mb = _artifact_shape(path, meta)
            mb = min(mb, int(max_batch))
            sha = sha256_file(path)
            name = f"{prefix}_{model_prefix(fmt)}"
            os.makedirs(os.path.join(tmp, name, "1"))
            _link_or_copy(path, os.path.join(tmp, name, "1", FILENAMES[kind]))
            texts[name] = native_config(name, kind, meta, fmt, sha, size=size, classes=classes, max_batch=mb)
            models[name] = ModelEntry(name, "native", PLATFORMS[kind], fmt, [meta.input_name])
            img = f"{name}_image"
            texts[img] = ensemble_config(img, pre, name, meta, fmt, sha, classes=classes, max_batch=mb)
            models[img] = ModelEntry(img, "ensemble", "ensemble", fmt, ["image"], needs=[pre, name])
            if kind == ONNX:
                py = f"{name}_pawlens"
                os.makedirs(os.path.join(tmp, py, "1"))
                _write(os.path.join(tmp, py, "1", "model.py"), _MODEL_PY)
                texts[py] = python_config(py, meta, fmt, sha, artifact=f"{name}/1/{FILENAMES[kind]}", size=size, classes=classes, max_batch=mb)
                models[py] = ModelEntry(py, "python", "python", fmt, [meta.input_name, "image"])
        assert first_meta is not None
        os.makedirs(os.path.join(tmp, pre, "1"))
        _write(os.path.join(tmp, pre, "1", "model.py"), _MODEL_PY)
        texts[pre] = preprocess_config(pre, first_meta, size=first_meta.preprocess.input_size, max_batch=int(max_batch))
        models[pre] = ModelEntry(pre, "python", "python", "", ["image"])
        for name, text in texts.items():
            d = os.path.join(tmp, name)
            os.makedirs(os.path.join(d, "1"), exist_ok=True)  # an ensemble has no files of its own there; Triton still wants 1/
            _write(os.path.join(d, "config.pbtxt"), text)
            if name != pre:  # the classifiers' outputs: Triton's classification extension reads it
                _write(os.path.join(d, "labels.txt"), "\n".join(first_meta.class_names) + "\n")
        if check:
            from pawlens.errors import BackendUnavailable

            try:
                for name, text in texts.items():
                    parse_config(text, path=os.path.join(dest, name, "config.pbtxt"))
            except BackendUnavailable:  # no tritonclient: written unchecked (Triton refuses a config it cannot parse at load)
                pass
        _write(os.path.join(tmp, MARKER), json.dumps({"prefix": prefix, "models": {n: m.__dict__ for n, m in models.items()},
                                                      "artifacts": [[f, os.path.abspath(os.fspath(p))] for f, p in artifacts]}, indent=1))
        _write(os.path.join(tmp, "README.md"), _readme(prefix, models))
        old = None
        if os.path.exists(dest):
            old = f"{dest}.old-{os.getpid()}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Repository(dest, prefix, models)


def read_repository(path: str | os.PathLike) -> Repository:
    """A repository folder as :class:`Repository`: Pawlens's own (its marker) or any Triton repository (each subfolder
    with a ``config.pbtxt``; names and what runs them are read from the configs)."""
    p = os.path.abspath(os.fspath(path))
    marker = os.path.join(p, MARKER)
    if os.path.isfile(marker):
        try:
            with open(marker, encoding="utf-8") as f:
                d = json.load(f)
            return Repository(p, d["prefix"], {n: ModelEntry(**m) for n, m in d["models"].items()})
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ArtifactError(f"{marker}: damaged ({e}); re-export with --formats ...,triton") from None
    models: dict[str, ModelEntry] = {}
    for name in sorted(os.listdir(p)):
        cfg = os.path.join(p, name, "config.pbtxt")
        if not os.path.isfile(cfg):
            continue
        with open(cfg, encoding="utf-8", errors="replace") as f:
            c = parse_config(f.read(), path=cfg)
        runs_on = "python" if c.backend == "python" else (c.platform or c.backend or "unknown")
        kind = {"python": "python", "ensemble": "ensemble"}.get(runs_on, "native")
        needs = [s.model_name for s in c.ensemble_scheduling.step] if kind == "ensemble" else []
        models[c.name or name] = ModelEntry(c.name or name, kind, runs_on, "", [i.name for i in c.input], needs=needs)
    if not models:
        raise InputError(f"{p}: no model folders with a config.pbtxt; pass an artifact, an export folder or a Triton model repository")
    return Repository(p, "", models)


def _readme(prefix: str, models: dict[str, ModelEntry]) -> str:
    rows = "\n".join(f"| `{m.name}` | {m.runs_on} | {', '.join(m.inputs)} |" for m in models.values())
    return f"""# Triton model repository (written by pawlens-export)

| model | runs on | inputs |
|---|---|---|
{rows}

- Here (Triton from `nvidia-pytriton`, Python backend only): `pawlens serve {{this folder}}` loads the `*_pawlens`
  and `{prefix}_preprocess` models.
- In NVIDIA's Triton container on a GPU machine: `tritonserver --model-repository=/models` serves the native models
  (`onnxruntime_onnx`, `tensorrt_plan`) and the `*_image` ensembles.  The `*_pawlens` and `*_preprocess` models need
  `pip install pawlens` inside the container; without it, start with `--model-control-mode=explicit --load-model=NAME`.
- Clients: `pawlens predict --server http://HOST:8000 --model NAME photos/`; the preprocessing contract is in each
  model's `parameters` (`pawlens.preprocess`).
- Engines (`*.plan`) and ONNX files from elsewhere are untrusted code paths for their runtimes: serve only your own.
"""
