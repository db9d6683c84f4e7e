"""Metadata every exported artifact carries, so runtimes and the GUI need nothing else.

Stored as ONNX ``metadata_props`` (string key/values, prefix ``pawlens.``) and in the JSON sidecar of
a TensorRT engine.  Export writes it (:meth:`ArtifactMeta.to_props`); runtime reads it
(:meth:`ArtifactMeta.from_props`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ArtifactError
from .preprocess import PreprocessConfig

PREFIX = "pawlens."


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
            raise ArtifactError(
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
        """From plain JSON values (an engine sidecar, or decoded ONNX props); other keys are ignored."""
        try:
            return cls(
                class_names=list(d["class_names"]),
                preprocess=PreprocessConfig.from_dict(dict(d["preprocess"])),
                arch=d.get("arch", "unknown"),
                precision=d.get("precision", default_precision),
                source_sha256=d.get("source_sha256", ""),
                tool_version=d.get("tool_version", ""),
                input_name=d.get("input_name", "input"),
                output_name=d.get("output_name", "logits"),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, ValueError, TypeError) as e:
            raise ArtifactError(f"{path}: damaged pawlens metadata ({type(e).__name__}: {e}); {fix}") from None

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], *, precision: str = "fp32", source_sha256: str = "") -> "ArtifactMeta":
        from . import __version__

        return cls(
            class_names=list(ckpt["class_names"]),
            preprocess=PreprocessConfig.from_dict(ckpt["preprocess"]),
            arch=ckpt["arch"],
            precision=precision,
            source_sha256=source_sha256,
            tool_version=__version__,
        )
