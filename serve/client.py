"""A Runner whose model lives on a Triton server (``pawlens predict --server``, ``pawlens bench --server``).

    with TritonRunner("http://127.0.0.1:8000", model="lite0_int8_pawlens") as r:   # or grpc://127.0.0.1:8001
        logits = r.infer(batch)          # (N, 3, S, S) float32 -> (N, C), like any runner
        r.infer_images([jpeg_bytes])     # encoded images: the server preprocesses them

Tensors to a server on this machine (a loopback URL) go through Triton's system shared memory by default
(``shared_memory="auto"``: a region of this process's own, registered with the server, as ``perf_analyzer
--shared-memory system`` does), which skips copying each 600 KB tensor through the socket; where the server cannot
map it (a container without ``--ipc=host``) they go over the network.  ``describe()["transport"]`` says which.

The class names and the preprocessing contract come from the model's own config (``parameters`` that
:mod:`pawlens.serve.repository` wrote), so the client needs no local artifact and preprocesses exactly as the
server's artifact expects.  Without ``model`` the server's one Pawlens classifier is chosen (``*_pawlens`` first, then
a native model; of one export's formats INT8 first, :data:`PREFERRED`); when it serves two runs' models, the error
lists them.  Every failure is a :class:`~pawlens.serve.server.ServeError`
naming the URL: a server that is not there, a model that is not loaded, a request the server refused.
"""

from __future__ import annotations

import json
import time
from typing import Any, Sequence
from urllib.parse import urlparse

import numpy as np

from pawlens.errors import InputError
from pawlens.models.artifact import ArtifactMeta
from pawlens.runtime.base import InputSpec, Runner, lazy_import

from .repository import config_params
from .server import ServeError

DEFAULT_TIMEOUT_S = 30.0
#: Without --model, of one export's classifiers the first format here (the INT8 model, as the demo deploys).
PREFERRED = ("int8", "onnx", "fp16", "trt")


def parse_url(url: str) -> tuple[str, str]:
    """``http://host:port`` / ``grpc://host:port`` / ``host:port`` (HTTP) -> (protocol, ``host:port``)."""
    u = urlparse(url if "://" in url else f"http://{url}")
    if u.scheme not in ("http", "grpc") or not u.hostname:
        raise InputError(f"--server {url}: use http://HOST:PORT (Triton's HTTP port, 8000) or grpc://HOST:PORT (8001)")
    port = u.port or (8000 if u.scheme == "http" else 8001)
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return u.scheme, f"{host}:{port}"


def _loopback(url: str) -> bool:
    """Whether ``url``'s server is this machine (its shared memory is ours, unless it runs in a container)."""
    import ipaddress
    import socket

    host = urlparse(url if "://" in url else f"http://{url}").hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _client_module(protocol: str):
    return lazy_import(f"tritonclient.{protocol}", "serve", f"Triton's client (tritonclient[{protocol}])")


def connect(url: str, *, timeout: float = DEFAULT_TIMEOUT_S):
    """(protocol, client module, client) for ``url``; ServeError when nothing answers there."""
    protocol, addr = parse_url(url)
    mod = _client_module(protocol)
    try:
        if protocol == "http":
            client = mod.InferenceServerClient(addr, connection_timeout=min(timeout, 10.0), network_timeout=timeout)
        else:
            client = mod.InferenceServerClient(addr)
        live = client.is_server_live()
    except Exception as e:  # connection refused, DNS, TLS: tritonclient raises its own and socket errors
        raise ServeError(f"{url}: no Triton server answers ({_why(e)}); is `pawlens serve` running there?") from None
    if not live:
        raise ServeError(f"{url}: the server answers but is not live")
    return protocol, mod, client


def _why(e: BaseException) -> str:
    msg = getattr(e, "message", None)
    text = msg() if callable(msg) else str(e)
    return " ".join(str(text or type(e).__name__).split())[:300]


def model_config(protocol: str, client, name: str) -> dict[str, Any]:
    if protocol == "http":
        return client.get_model_config(name)
    return client.get_model_config(name, as_json=True)["config"]


def choose_model(protocol: str, client, url: str, model: str | None) -> str:
    """``model``, checked to be ready; or the server's one Pawlens classifier."""
    index = client.get_model_repository_index()
    if protocol == "grpc":
        index = [{"name": m.name, "state": m.state} for m in index.models]
    ready = [m["name"] for m in index if m.get("state") == "READY"]
    if model is not None:
        if model not in ready:
            raise ServeError(f"{url}: model {model!r} is not loaded there; it serves {', '.join(ready) or 'nothing'} (--model NAME)")
        return model
    classifiers: dict[str, str] = {}
    for name in ready:
        p = config_params(model_config(protocol, client, name))
        if "pawlens.class_names" in p and p.get("pawlens.role", "classifier") == "classifier" and not name.endswith("_image"):
            classifiers[name] = p.get("pawlens.format", "")
    pick = [n for n in classifiers if n.endswith("_pawlens")] or list(classifiers)
    if not pick:
        raise ServeError(f"{url}: none of its models ({', '.join(ready) or 'none'}) is a Pawlens export (no pawlens.class_names "
                         "parameter); pass --model NAME")
    ranked = sorted(pick, key=lambda n: (PREFERRED.index(classifiers[n]) if classifiers[n] in PREFERRED else len(PREFERRED), n))
    if len(ranked) > 1 and len({classifiers[n] for n in ranked}) < len(ranked):  # two runs' models of one format: no way to tell
        raise ServeError(f"{url}: it serves {len(ranked)} Pawlens models ({', '.join(ranked)}); choose one with --model NAME")
    return ranked[0]


class TritonRunner(Runner):
    """The Runner contract over Triton's HTTP or gRPC API (see the module docstring).  One runner per thread."""

    backend = "triton"

    def __init__(self, url: str, *, model: str | None = None, timeout: float = DEFAULT_TIMEOUT_S, name: str | None = None,
                 shared_memory: str = "auto"):
        if shared_memory not in ("auto", "on", "off"):
            raise InputError(f"--shared-memory {shared_memory}: choose auto, on or off")
        self.url, self.timeout = url, float(timeout)
        self.shared_memory = shared_memory
        self._shm = None  # (name, key, handle, size) of the registered input region
        self.protocol, self._mod, self._client = connect(url, timeout=self.timeout)
        self.model = choose_model(self.protocol, self._client, url, model)
        super().__init__(name or f"triton-{self.model}")
        self.config = model_config(self.protocol, self._client, self.model)
        p = config_params(self.config)
        try:
            self.meta = ArtifactMeta.from_plain(
                {"class_names": json.loads(p["pawlens.class_names"]), "preprocess": json.loads(p["pawlens.preprocess"]),
                 "precision": p.get("pawlens.precision", "fp32"), "arch": p.get("pawlens.arch", "unknown"),
                 "source_sha256": p.get("pawlens.source_sha256", ""), "input_name": p.get("pawlens.input_name", "input"),
                 "output_name": p.get("pawlens.output_name", "logits")}, path=f"{url} model {self.model}",
                fix="re-export it with pawlens-export --formats ...,triton")
        except (KeyError, ValueError) as e:
            raise ServeError(f"{url}: model {self.model} has no readable Pawlens contract in its parameters ({e})") from None
        self.max_batch = int(self.config.get("max_batch_size") or 0) or None
        self._binary = {"binary_data": True} if self.protocol == "http" else {}  # HTTP sends raw bytes, not JSON numbers
        self.plan_reason = f"Triton model {self.model} at {url} ({self.protocol})"

    # -- Runner hooks ----------------------------------------------------------------------------
    def activate_impl(self) -> None:
        self.transport = "network"
        if self.shared_memory == "on" or (self.shared_memory == "auto" and _loopback(self.url)):
            s = self.meta.preprocess.input_size
            try:
                self._shm_region(4 * 3 * s * s * (self.max_batch or 1))
                self.transport = "shared memory"
            except Exception as e:
                if self.shared_memory == "on":
                    raise ServeError(f"{self.url}: the server cannot map this machine's shared memory ({_why(e)}); "
                                     "use --shared-memory off (a server in a container needs --ipc=host)") from None
                self._shm_close()  # auto: the tensors go over the network instead

    def deactivate_impl(self) -> None:
        self._shm_close()
        try:
            self._client.close()
        except Exception:
            pass

    # -- system shared memory (Triton's extension): a local client's tensors skip the socket -----------------------------
    def _shm_region(self, size: int):
        import os

        import tritonclient.utils.shared_memory as shm

        if self._shm is not None and self._shm[3] >= size:
            return self._shm
        self._shm_close()
        name = f"pawlens_client_{os.getpid()}_{id(self):x}"
        handle = shm.create_shared_memory_region(name, "/" + name, size)
        self._shm = (name, "/" + name, handle, size)
        self._client.register_system_shared_memory(name, "/" + name, size)
        return self._shm

    def _shm_close(self) -> None:
        if self._shm is None:
            return
        import tritonclient.utils.shared_memory as shm

        name, _key, handle, _size = self._shm
        self._shm = None
        try:
            self._client.unregister_system_shared_memory(name)
        except Exception:
            pass  # the server is gone: nothing is registered any more
        try:
            shm.destroy_shared_memory_region(handle)
        except Exception:
            pass

    def input_spec(self) -> InputSpec:
        s = self.meta.preprocess.input_size
        return InputSpec(self.meta.input_name, (None, 3, s, s), "float32", max_batch=self.max_batch)

    def describe_impl(self) -> dict[str, Any]:
        return {"device": f"server {self.url}", "precision": self.meta.precision, "model": self.model, "protocol": self.protocol,
                "transport": getattr(self, "transport", "network")}

    def _infer(self, inputs) -> np.ndarray:
        out = self._mod.InferRequestedOutput(self.meta.output_name, **self._binary)
        try:
            kw = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
            res = self._client.infer(self.model, inputs, outputs=[out], **kw)
        except Exception as e:
            raise ServeError(f"{self.url} model {self.model}: {_why(e)}") from None
        return res.as_numpy(self.meta.output_name)

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        inp = self._mod.InferInput(self.meta.input_name, list(batch.shape), "FP32")
        if self._shm is not None:
            import tritonclient.utils.shared_memory as shm

            name, _key, handle, _size = self._shm_region(batch.nbytes)
            shm.set_shared_memory_region(handle, [batch])
            inp.set_shared_memory(name, batch.nbytes)
        else:
            inp.set_data_from_numpy(batch, **self._binary)
        return self._infer([inp])

    def infer_images(self, images: Sequence[bytes]) -> np.ndarray:
        """Encoded JPEG/PNG files' bytes -> (N, C) logits; the server decodes and preprocesses them."""
        if not images:
            raise InputError(f"[{self.name}] empty batch")
        t0 = time.perf_counter()
        outs = []
        for b in images:  # one image per request: each has its own length (the server batches the requests)
            arr = np.frombuffer(bytes(b), dtype=np.uint8).reshape(1, -1)
            inp = self._mod.InferInput("image", list(arr.shape), "UINT8")
            inp.set_data_from_numpy(arr, **self._binary)
            outs.append(self._infer([inp]))
        self.inference_time = time.perf_counter() - t0
        return np.concatenate(outs)
