"""What a Pawlens model in a Triton repository runs: Triton's Python-backend ``TritonPythonModel`` (see Triton's
python_backend docs), handing each batch to the Pawlens runtime.

Two roles, chosen by the model's ``parameters`` (:mod:`pawlens.serve.repository` writes them):

- a classifier (``pawlens.artifact``): the runner :func:`pawlens.runtime.factory.make_runner` makes for the file
  (``pawlens.backend``, default ``auto``: OpenVINO or ONNX Runtime on a CPU).  Each request brings either the
  preprocessed tensor or ``image`` (encoded JPEG/PNG bytes, preprocessed here with the artifact's own contract).  The
  requests Triton's dynamic batcher hands over in one ``execute`` run as one batch;
- ``pawlens.role = preprocess``: encoded bytes in, the tensor out (the first step of the ``*_image`` ensembles).

A request that cannot be served (corrupt bytes, both inputs or none, an empty batch) gets its own error response;
the other requests of the batch are answered.

Tensors cross the backend's shared memory through DLPack.  The stub in ``nvidia-pytriton`` 0.7 was built against
NumPy 1 and, under NumPy 2, reads arrays wrongly through ``as_numpy`` / ``Tensor(name, array)`` (floats came back as
1.0, a BYTES tensor's length prefix as 572,662,306): DLPack carries no NumPy ABI.  Inputs come in with
``np.from_dlpack``; outputs leave as torch's DLPack capsules (NumPy's own capsule makes the stub print a
``PyCapsule_GetPointer`` error on every response and is then never freed).  That is also why an encoded image is a
``UINT8`` vector of the file's bytes (``allow_ragged_batch``: each request its own length), not a ``BYTES`` tensor.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def _pb():
    import triton_python_backend_utils as pb_utils  # pyright: ignore[reportMissingImports]  (only inside Triton's Python-backend stub)

    return pb_utils


def to_numpy(tensor) -> np.ndarray:
    """A Triton input tensor as a NumPy array, through DLPack (see the module docstring)."""
    return np.from_dlpack(tensor)


def out_tensor(name: str, array: np.ndarray):
    import torch

    return _pb().Tensor.from_dlpack(name, torch.utils.dlpack.to_dlpack(torch.from_numpy(np.ascontiguousarray(array))))


def decode_images(raw: np.ndarray, cfg) -> np.ndarray:
    """``(n, L)`` uint8 rows, each one encoded image's bytes -> ``(n, 3, S, S)`` float32; ImageError naming the bad one."""
    from pawlens.models.preprocess import load_image_bytes, preprocess_numpy

    rows = raw.reshape(1, -1) if raw.ndim == 1 else raw
    frames = [load_image_bytes(np.ascontiguousarray(r, dtype=np.uint8).tobytes(), name=f"image {i} of the request") for i, r in enumerate(rows)]
    return preprocess_numpy(frames, cfg)


def batch_ladder(max_batch: int) -> list[int]:
    """The batch sizes a served runner is prepared for: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ... up to ``max_batch``, so a
    batch the dynamic batcher forms is padded by at most a third."""
    out, b = [], 1
    while b <= max_batch:
        out += [b] + ([b * 3 // 2] if b >= 2 and b * 3 // 2 <= max_batch else [])
        b *= 2
    return sorted(set(out + [max_batch]))


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize(args)``, ``execute(requests)``, ``finalize()``."""

    def initialize(self, args: dict[str, Any]) -> None:
        from pawlens.models.preprocess import PreprocessConfig
        from pawlens.serve.repository import config_params

        config = json.loads(args["model_config"])
        params = config_params(config)
        self.name = config.get("name", "pawlens")
        self.cfg = PreprocessConfig.from_dict(json.loads(params["pawlens.preprocess"]))
        self.input_name = params.get("pawlens.input_name", "input")
        self.role = params.get("pawlens.role", "classifier")
        self.runner = None
        if self.role == "preprocess":
            return
        from pawlens.runtime.factory import make_runner

        repo = os.path.dirname(os.path.abspath(args["model_repository"]))  # args gives this model's folder
        path = os.path.join(repo, params["pawlens.artifact"])
        self.output_name = params.get("pawlens.output_name", "logits")
        self.runner = make_runner(path, backend=params.get("pawlens.backend", "auto") or "auto", name=self.name).activate()
        max_batch = int(config.get("max_batch_size") or 1)
        if hasattr(self.runner, "fix_batches"):  # OpenVINO: static shapes up front, other batch sizes padded to one of them
            self.runner.fix_batches(batch_ladder(max_batch))
        for b in batch_ladder(max_batch):  # the first call of a size compiles / allocates: not on a client's clock
            self.runner.infer(np.zeros((b, 3, self.cfg.input_size, self.cfg.input_size), np.float32))
        print(f"[pawlens] {self.name}: {os.path.basename(path)} on {self.runner.backend} ({getattr(self.runner, 'plan_reason', '')})", flush=True)

    # -- serving ---------------------------------------------------------------------------------
    def _request_input(self, request) -> np.ndarray:
        pb = _pb()
        tensor = pb.get_input_tensor_by_name(request, self.input_name) if self.role != "preprocess" else None
        image = pb.get_input_tensor_by_name(request, "image")
        if (tensor is None) == (image is None):
            s = self.cfg.input_size
            raise ValueError("send 'image' (a JPEG/PNG file's bytes as uint8)" if self.role == "preprocess" else
                             f"send exactly one of {self.input_name!r} (float32 Nx3x{s}x{s}) or 'image' (a JPEG/PNG file's bytes as uint8)")
        x = decode_images(to_numpy(image), self.cfg) if image is not None else to_numpy(tensor).astype(np.float32, copy=False)
        if x.shape[0] < 1:
            raise ValueError("empty batch: send at least one image")
        return x

    def execute(self, requests):
        pb = _pb()
        from pawlens.errors import one_line

        batches: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for r in requests:
            try:
                batches.append(self._request_input(r))
                errors.append(None)
            except Exception as e:  # one bad request must not take down the batch
                batches.append(None)
                errors.append(one_line(e, with_type=False))
        good = [b for b in batches if b is not None]
        if self.role == "preprocess":
            outs = batches
        elif good:
            try:
                logits = self.runner.infer(np.concatenate(good) if len(good) > 1 else good[0])
            except Exception as e:
                msg = one_line(e, with_type=False)
                return [pb.InferenceResponse(error=pb.TritonError(msg)) for _ in requests]
            outs, i = [], 0
            for b in batches:
                if b is None:
                    outs.append(None)
                else:
                    outs.append(logits[i : i + len(b)])
                    i += len(b)
        else:
            outs = batches
        name = self.input_name if self.role == "preprocess" else self.output_name
        return [pb.InferenceResponse(error=pb.TritonError(err)) if err is not None else pb.InferenceResponse([out_tensor(name, o)])
                for o, err in zip(outs, errors)]

    def finalize(self) -> None:
        if self.runner is not None:
            self.runner.deactivate()
            self.runner = None
