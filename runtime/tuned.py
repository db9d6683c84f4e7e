"""The stored winners of ``pawlens tune``: what ``--backend auto`` runs an artifact on, as measured on this machine.

    from pawlens.runtime import tuned
    tuned.cache_key("best.int8.onnx", batch=1)        # "3f0c...": artifact sha256 + CPU + batch + library versions
    tuned.lookup("best.int8.onnx", batch=1)           # the stored entry (dict) or None
    tuned.store("best.int8.onnx", config, batch=1, p50_ms=3.1, static=static_config, static_ms=3.4)
    tuned.runner_kwargs(entry["config"])              # make_runner's keyword arguments for the stored winner

``pawlens tune`` (:mod:`pawlens.bench.tune`) measures; this module only keys, stores and reads, so the factory's
``plan_runner`` can consult it cheaply (no bench import, no runtime library import).

A *config* is a plain dict: ``backend`` (torch | ort | openvino), ``precision`` (torch: fp32; OpenVINO: its
INFERENCE_PRECISION_HINT, fp32 or bf16; ONNX Runtime: None), ``channels_last`` (torch only, else None) and
``threads`` (None: the backend's default, all cores).

The key (:func:`key_fields`) is everything a measurement depends on: the artifact's sha256 (so a re-exported or
edited file misses; a copied or moved one hits), the CPU model name and a hash of its whole flag set
(:func:`cpu_identity`), the cores this process may use, the batch size, and the versions of pawlens and of the
libraries that load that kind of file.  One JSON file per key lives in ``<cache>/tune/`` (:func:`cache_dir`:
``$PAWLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/pawlens``, else ``~/.cache/pawlens``), written atomically.  A file
that cannot be read, is not JSON, is not a pawlens tune file or holds another key is ignored with one warning line
(once per file and process): a cache never breaks a command.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from typing import Any

from .formats import ALIASES, CHECKPOINT, ONNX

LOG = logging.getLogger("pawlens")

SCHEMA = "pawlens.tune/1"
#: The distributions whose versions key a file kind's measurements (the first one installed of each tuple counts).
_LIBRARIES: dict[str, tuple[tuple[str, ...], ...]] = {
    CHECKPOINT: (("torch",),),
    ONNX: (("onnxruntime", "onnxruntime-gpu"), ("openvino",)),
}
_CONFIG_KEYS = ("backend", "precision", "channels_last", "threads")

_sha_cache: dict[tuple[str, int, int], str] = {}
_warned: set[str] = set()


# ----------------------------------------------------------------------------- where


def cache_dir() -> str:
    """The user's Pawlens cache folder: ``$PAWLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/pawlens``, else ``~/.cache/pawlens``."""
    if os.environ.get("PAWLENS_CACHE_DIR"):
        return os.environ["PAWLENS_CACHE_DIR"]
    xdg = os.environ.get("XDG_CACHE_HOME")
    return os.path.join(xdg if xdg else os.path.join(os.path.expanduser("~"), ".cache"), "pawlens")


def entry_path(key: str) -> str:
    """The file that holds the entry of ``key``."""
    return os.path.join(cache_dir(), "tune", f"{key}.json")


# ----------------------------------------------------------------------------- the key


def cpu_identity(cpuinfo: str) -> dict[str, str]:
    """The CPU model name and a short hash of its full flag set, from the text of ``/proc/cpuinfo`` (pure)."""
    model, flags = "", ""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "model name" and not model:
            model = value.strip()
        elif name in ("flags", "features") and not flags:  # x86 | ARM
            flags = " ".join(sorted(set(value.split())))
    return {"model": model, "flags": hashlib.sha256(flags.encode()).hexdigest()[:16]}


@functools.lru_cache(maxsize=1)
def this_cpu() -> dict[str, Any]:
    """:func:`cpu_identity` of this machine (``platform.processor()`` where there is no ``/proc/cpuinfo``) and its cores."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            ident = cpu_identity(f.read())
    except OSError:
        ident = cpu_identity("")
    if not ident["model"]:
        ident["model"] = platform.processor() or platform.machine()
    return {**ident, "cores": usable_cores()}


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=None)
def library_versions(kind: str) -> dict[str, str]:
    """pawlens and the installed libraries that load a ``kind`` file (read from package metadata; nothing imported)."""
    import importlib.metadata as md

    from pawlens import __version__

    out = {"pawlens": __version__}
    for names in _LIBRARIES.get(kind, ()):
        for name in names:
            try:
                out[name] = md.version(name)
                break
            except md.PackageNotFoundError:
                continue
    return out


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered in this process by (real path, size, mtime): a second lookup reads nothing."""
    from pawlens.fs import sha256_file

    p = os.path.realpath(os.fspath(path))
    st = os.stat(p)
    k = (p, st.st_size, st.st_mtime_ns)
    if k not in _sha_cache:
        _sha_cache[k] = sha256_file(p)
    return _sha_cache[k]


def _kind(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return ALIASES.get(ext, ext)


def key_fields(path: str | os.PathLike, batch: int = 1) -> dict[str, Any]:
    """What a measurement of ``path`` at ``batch`` depends on (see the module docstring)."""
    p = os.fspath(path)
    cpu = this_cpu()
    return {"sha256": file_sha256(p), "cpu": cpu["model"], "cpu_flags": cpu["flags"], "cores": cpu["cores"], "batch": int(batch),
            "versions": library_versions(_kind(p))}


def _digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def cache_key(path: str | os.PathLike, batch: int = 1) -> str:
    """The cache key of ``path`` at ``batch`` on this machine: a hash of :func:`key_fields`."""
    return _digest(key_fields(path, batch))


# ----------------------------------------------------------------------------- configs


def check_config(cfg: Any) -> dict[str, Any]:
    """``cfg`` as a clean config dict, or ValueError naming what is wrong with it."""
    if not isinstance(cfg, dict) or set(cfg) != set(_CONFIG_KEYS):
        raise ValueError(f"config must have exactly the keys {', '.join(_CONFIG_KEYS)}")
    b, prec, cl, th = (cfg[k] for k in _CONFIG_KEYS)
    ok = {"torch": prec == "fp32" and isinstance(cl, bool), "ort": prec is None and cl is None,
          "openvino": prec in ("fp32", "bf16") and cl is None}
    if not ok.get(b, False):
        raise ValueError(f"config {cfg!r} is not a CPU configuration pawlens tune makes")
    if th is not None and (isinstance(th, bool) or not isinstance(th, int) or th < 1):
        raise ValueError(f"threads {th!r} must be null or a whole number >= 1")
    return {k: cfg[k] for k in _CONFIG_KEYS}


def runner_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """make_runner's keyword arguments for a config, without ``backend`` and ``threads`` (the Plan's shape)."""
    if cfg["backend"] == "torch":
        return {"device": "cpu", "precision": cfg["precision"], "channels_last": bool(cfg["channels_last"])}
    if cfg["backend"] == "openvino":
        return {"precision": cfg["precision"]}
    return {"device": "cpu"}


def describe(cfg: dict[str, Any], artifact_precision: str = "fp32", cores: int | None = None) -> str:
    """A config in a few words, e.g. ``openvino int8 (f32 hint), 1 thread``."""
    b = cfg["backend"]
    if b == "torch":
        what = f"torch {cfg['precision']} {'channels_last' if cfg['channels_last'] else 'NCHW'}"
    elif b == "openvino":
        hint = "f32" if cfg["precision"] == "fp32" else cfg["precision"]
        what = f"openvino {artifact_precision} ({hint} hint)" if artifact_precision != "fp32" or hint != "f32" else "openvino f32"
    else:
        what = f"onnxruntime {artifact_precision}"
    th = cfg["threads"]
    threads = f"{th} thread{'s' if th != 1 else ''}" if th else (f"default threads ({cores} cores)" if cores else "default threads")
    return f"{what}, {threads}"


# ----------------------------------------------------------------------------- store and read


def store(path: str | os.PathLike, config: dict[str, Any], *, batch: int = 1, p50_ms: float, static: dict[str, Any],
          static_ms: float | None, artifact_precision: str = "fp32", candidates: list[dict[str, Any]] | None = None,
          note: str = "", busy: bool = False) -> str:
    """Write the winner of ``path`` at ``batch`` for this machine; returns the file written.  ``busy``: other work took
    the cores while it was timed (kept, and said in :func:`reason`).

    Raises:
        OutputError: the cache folder cannot be written.
    """
    from pawlens.errors import OutputError
    from pawlens.fs import atomic_write_text

    fields = key_fields(path, batch)
    entry = {"schema": SCHEMA, "key": fields, "artifact": os.path.basename(os.fspath(path)), "path": os.path.abspath(os.fspath(path)),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "artifact_precision": artifact_precision, "config": check_config(config),
             "p50_ms": float(p50_ms), "static": check_config(static), "static_ms": None if static_ms is None else float(static_ms),
             "candidates": list(candidates or []), "note": note, "busy": bool(busy)}
    out = entry_path(_digest(fields))
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        atomic_write_text(out, json.dumps(entry, indent=1) + "\n")
    except OSError as e:
        raise OutputError(f"{os.path.dirname(out)}: cannot write the tune cache ({e.strerror or e}); set PAWLENS_CACHE_DIR "
                          "to a writable folder") from None
    return out


def _warn_once(path: str, why: str) -> None:
    if path not in _warned:
        _warned.add(path)
        LOG.warning("[tune] ignored %s: %s; `pawlens tune` rewrites it", path, why)


def _read(path: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The entry in ``path`` if it is a valid one for ``fields``; None (with one warning) if the file is bad."""
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        _warn_once(path, f"not readable JSON ({type(e).__name__})")
        return None
    try:
        if not isinstance(entry, dict) or entry.get("schema") != SCHEMA:
            raise ValueError("not a pawlens tune file")
        if entry.get("key") != fields:
            raise ValueError("it holds another artifact, machine or library version")
        entry["config"] = check_config(entry.get("config"))
        entry["static"] = check_config(entry.get("static"))
        float(entry["p50_ms"])
    except (ValueError, TypeError, KeyError) as e:
        _warn_once(path, str(e) or type(e).__name__)
        return None
    return entry


def lookup(path: str | os.PathLike, batch: int = 1) -> dict[str, Any] | None:
    """The stored entry of ``path`` at ``batch`` on this machine (its ``config``, ``p50_ms``, ``static_ms``, ``created``),
    or None: never tuned here, a changed file, another CPU or library version, or an unusable cache file."""
    try:
        fields = key_fields(path, batch)
    except OSError as e:  # the model file itself is unreadable: the caller reports that when it loads it
        LOG.debug("[tune] no lookup for %s: %s", path, e)
        return None
    return _read(entry_path(_digest(fields)), fields)


def reason(entry: dict[str, Any]) -> str:
    """The factory's one-line reason for a tuned plan."""
    prec = entry.get("artifact_precision", "fp32")
    key = entry.get("key", {})
    date = str(entry.get("created", ""))[:10]
    static = entry.get("static_ms")
    text = f"tuned on this machine (pawlens tune, {date}): {describe(entry['config'], prec, key.get('cores'))}, {float(entry['p50_ms']):.1f} ms"
    if entry.get("static") == entry["config"]:
        text += f" at batch {key.get('batch', 1)}: the static rule's choice, confirmed"
    else:
        text += (f" vs static {static:.1f} ms" if isinstance(static, (int, float)) else "") + f" at batch {key.get('batch', 1)}"
    return text + ("; measured while the machine was busy" if entry.get("busy") else "")
