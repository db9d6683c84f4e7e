"""Metadata every exported artifact carries, so runtimes and the GUI need nothing else.

Stored as ONNX ``metadata_props`` (string key/values, prefix ``pawlens.``) and in the JSON sidecar of
a TensorRT engine.  Export writes it (:meth:`ArtifactMeta.to_props`); runtime reads it
(:meth:`ArtifactMeta.from_props`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pawlens.errors import ArtifactError, MissingMetadata

from .preprocess import PreprocessConfig

PREFIX = "pawlens."
PRECISIONS = ("fp32", "fp16", "int8", "bf16")
#: More classes than this is not a cat/dog-style classifier's metadata but damage.
MAX_CLASSES = 10_000


def check_class_names(names: Any) -> list[str]:
    """``names`` as a list of 2..MAX_CLASSES distinct, non-empty, one-line strings; ValueError naming the problem."""
    if isinstance(names, (str, bytes, dict)) or not isinstance(names, (list, tuple)):
        raise ValueError(f"class_names must be a list of names, got {type(names).__name__}")
    if not 2 <= len(names) <= MAX_CLASSES:
        raise ValueError(f"class_names has {len(names)} names (2..{MAX_CLASSES})")
    for n in names:
        if not isinstance(n, str) or not n.strip() or len(n) > 200 or "\n" in n:
            raise ValueError(f"class_names holds {str(n)[:40]!r} ({type(n).__name__}); each must be a short one-line string")
    if len(set(names)) != len(names):
        raise ValueError("class_names repeats a name")
    return list(names)


@dataclass
class ArtifactMeta:
    class_names: list[str]
    preprocess: PreprocessConfig
    arch: str = "unknown"
    precision: str = "fp32"  # fp32 | fp16 | int8
    source_sha256: str = ""  # sha256 of the checkpoint the artifact was exported from
    tool_version: str = ""
    input_name: str = "input"
    output_name: str = "logits"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        d = {
            "class_names": json.dumps(list(self.class_names)),
            "preprocess": json.dumps(self.preprocess.to_dict()),
            "arch": self.arch,
            "precision": self.precision,
            "source_sha256": self.source_sha256,
            "tool_version": self.tool_version,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "extra": json.dumps(self.extra),
        }
        return {PREFIX + k: v for k, v in d.items()}

    @classmethod
    def from_props(cls, props: dict[str, str], *, path: str = "<artifact>") -> "ArtifactMeta":
        p = {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}
        if "class_names" not in p or "preprocess" not in p:
            raise MissingMetadata(
                f"{path}: no pawlens metadata (class names, preprocessing); export it with pawlens-export, "
                "or pass --classes NAME,NAME"
            )
        try:
            plain = {k: v for k, v in p.items() if k not in ("class_names", "preprocess", "extra")}
            plain.update(class_names=json.loads(p["class_names"]), preprocess=json.loads(p["preprocess"]),
                         extra=json.loads(p.get("extra", "{}") or "{}"))
        except (ValueError, TypeError) as e:
            raise ArtifactError(f"{path}: damaged pawlens metadata ({e})") from None
        return cls.from_plain(plain, path=path)

    @classmethod
    def from_plain(cls, d: dict[str, Any], *, path: str = "<artifact>", default_precision: str = "fp32",
                   fix: str = "re-export it with pawlens-export") -> "ArtifactMeta":
        """From plain JSON values (an engine sidecar, or decoded ONNX props); other keys are ignored.

        Every field is checked (class names, each preprocessing field, precision, tensor names): a
        violation is one ArtifactError naming the file and the field.
        """
        try:
            if "class_names" not in d or "preprocess" not in d:
                raise ValueError(f"lacks {'class_names' if 'class_names' not in d else 'preprocess'}")
            precision = d.get("precision", default_precision)
            if precision not in PRECISIONS:
                raise ValueError(f"precision = {str(precision)[:40]!r} is not one of {', '.join(PRECISIONS)}")
            strings = {k: d.get(k, default) for k, default in
                       (("arch", "unknown"), ("source_sha256", ""), ("tool_version", ""), ("input_name", "input"), ("output_name", "logits"))}
            for k, v in strings.items():
                if not isinstance(v, str) or len(v) > 256:
                    raise ValueError(f"{k} must be a short string, got {type(v).__name__}")
            extra = d.get("extra", {})
            if not isinstance(extra, dict):
                raise ValueError(f"extra must be an object, got {type(extra).__name__}")
            return cls(class_names=check_class_names(d["class_names"]), preprocess=PreprocessConfig.from_dict(d["preprocess"]),
                       precision=precision, extra=dict(extra), **strings)
        except (KeyError, ValueError, TypeError) as e:
            raise ArtifactError(f"{path}: invalid pawlens metadata: {e}; {fix}") from None

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], *, precision: str = "fp32", source_sha256: str = "") -> "ArtifactMeta":
        from pawlens import __version__

        return cls(
            class_names=list(ckpt["class_names"]),
            preprocess=PreprocessConfig.from_dict(ckpt["preprocess"]),
            arch=ckpt["arch"],
            precision=precision,
            source_sha256=source_sha256,
            tool_version=__version__,
        )
