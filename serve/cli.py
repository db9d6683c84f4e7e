"""``pawlens serve PATH``: the real Triton Inference Server on an artifact, an export folder or a model repository.

    pawlens serve runs/export/lite0                       # its triton/ repository (export --formats ...,triton)
    pawlens serve runs/export/lite0/best.int8.onnx        # one artifact: a repository is written to a temporary folder
    pawlens serve runs/export/lite0/triton --http-port 9000 --models lite0_int8_pawlens

Prints one ready line (URLs, models), serves until Ctrl-C or SIGTERM, then stops the server within seconds and
leaves no process, port or temporary file behind.  A taken port, a missing serve extra or a model that fails to load
is one line and exit 2; a server that dies while serving is one line and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Sequence

from pawlens.console import HelpFormatter, run_cli
from pawlens.errors import InputError
from pawlens.runtime.formats import ENGINE, ONNX

from .repository import MARKER, Repository, model_prefix, read_repository, write_repository
from .server import ServeError, TritonServer, find_triton, loadable


def _passed_artifacts(folder: str) -> list[tuple[str, str]]:
    """The gated artifacts an export folder's ``parity.json`` lists as passed (format key, path)."""
    pj = os.path.join(folder, "parity.json")
    try:
        with open(pj, encoding="utf-8") as f:
            rows = json.load(f).get("artifacts") or []
    except (OSError, ValueError) as e:
        raise InputError(f"{pj}: cannot read it ({e}); pass an artifact file or a Triton repository instead") from None
    out = [(r["format"], os.path.join(folder, r["file"])) for r in rows if r.get("status") == "passed" and r.get("file")]
    out = [(f, p) for f, p in out if os.path.isfile(p)]
    if not out:
        raise InputError(f"{folder}: parity.json lists no artifact that passed its gate; nothing to serve (parity.md says why)")
    return out


def resolve(path: str, scratch: str) -> tuple[Repository, str]:
    """``PATH`` as a repository, and what it was (for the ready line).  Artifacts and export folders without a
    ``triton/`` get one written under ``scratch`` (removed when serving ends)."""
    from pawlens.runtime.factory import file_kind, read_meta
    from pawlens.runtime.formats import for_file

    p = os.path.abspath(path)
    if os.path.isfile(p):
        kind = file_kind(p)
        if kind not in (ONNX, ENGINE):
            raise InputError(f"{path}: serve takes an .onnx or .engine artifact, an export folder or a Triton repository "
                             f"(a {kind} checkpoint: pawlens export it first)")
        fmt = for_file(kind, read_meta(p).precision).key
        prefix = model_prefix(os.path.basename(os.path.dirname(p)))
        return write_repository(os.path.join(scratch, "repository"), [(fmt, p)], prefix=prefix), f"{path} (repository in a temporary folder)"
    if not os.path.isdir(p):
        raise InputError(f"{path}: no such file or folder; pass an artifact, an export folder or a Triton repository")
    if os.path.isfile(os.path.join(p, MARKER)) or any(os.path.isfile(os.path.join(p, n, "config.pbtxt")) for n in os.listdir(p)):
        return read_repository(p), path
    if os.path.isdir(os.path.join(p, "triton")):
        return read_repository(os.path.join(p, "triton")), os.path.join(path, "triton")
    if os.path.isfile(os.path.join(p, "parity.json")):
        arts = _passed_artifacts(p)
        return (write_repository(os.path.join(scratch, "repository"), arts, prefix=model_prefix(os.path.basename(p))),
                f"{path} (no triton/ there: a repository of its {len(arts)} passed artifacts in a temporary folder)")
    raise InputError(f"{path}: neither an export folder (parity.json), nor a Triton repository (model folders with config.pbtxt)")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pawlens-serve", add_help=add_help, formatter_class=HelpFormatter,
        description="Serve an artifact, an export folder or a Triton model repository on the real Triton Inference Server "
        "(the one nvidia-pytriton ships, or --tritonserver). HTTP, gRPC and metrics listen on --host. Ctrl-C or SIGTERM stops it. "
        "Serve only artifacts you exported: model files are code paths for their runtimes.",
        epilog="example: pawlens serve runs/export/lite0 --http-port 8000   then   pawlens predict --server http://127.0.0.1:8000 photos/")
    p.add_argument("path", metavar="PATH", help="an .onnx/.engine artifact, an export folder, or a Triton repository")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface; serve only on networks you trust)")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP/REST (KServe v2) port")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port")
    p.add_argument("--models", default=None, help="comma list of models to load; default: every one this server has a backend for")
    p.add_argument("--tritonserver", default=None, metavar="PATH", help="a tritonserver binary (e.g. NVIDIA's container's); "
                   "default: $PAWLENS_TRITONSERVER, else the one in nvidia-pytriton, else tritonserver on PATH")
    p.add_argument("--log", default=None, metavar="FILE", help="keep the server's own log in FILE (default: shown only when it fails)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds in-flight requests get on Ctrl-C / SIGTERM before the server is killed")
    p.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for every model to load")
    p.add_argument("-v", "--verbose", action="store_true", help="print the server's log when it stops")
    return p


class _Stop(Exception):
    """SIGTERM or Ctrl-C: stop serving (exit 0)."""


class _Died(ServeError):
    exit_code = 1


def _main(argv: Sequence[str] | None) -> int:
    args = get_args_parser().parse_args(argv)
    install = find_triton(args.tritonserver)
    scratch = tempfile.mkdtemp(prefix="pawlens-serve-repo-")

    def on_signal(signum, frame):
        raise _Stop(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    server = None
    try:
        repo, what = resolve(args.path, scratch)
        wanted = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        load, skipped = loadable(repo, install.backend_names(), wanted)
        if wanted and skipped:
            raise InputError("; ".join(f"--models {n}: {why}" for n, why in skipped.items()))
        if not load:
            raise InputError(f"{what}: this tritonserver ({install.source}) can load none of its models: "
                             + "; ".join(f"{n} {why}" for n, why in list(skipped.items())[:3]))
        server = TritonServer(repo, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                              models=load, install=install, log_path=args.log, grace=args.grace, verbose=args.verbose)
        try:
            server.start(timeout=args.ready_timeout)
        except ServeError as e:
            raise ServeError(f"{what}: {e}") from None
        u = server.urls()
        print(f"pawlens serve: ready on {u['http']} (HTTP), {u['grpc']} (gRPC), {u['metrics']}; models: {', '.join(load)}"
              + (f"; not loaded: {', '.join(skipped)} (no backend here)" if skipped else ""), flush=True)
        rc = server.wait()
        raise _Died(f"the Triton server (pid {server.proc.pid}) stopped on its own ({server._rc_text(rc)}) while serving: "
                    f"{server.failure()}; clients now get connection errors; start pawlens serve again")
    except _Stop as s:
        print(f"pawlens serve: {s}: stopping the server", file=sys.stderr, flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if server is not None:
                server.stop()
            shutil.rmtree(scratch, ignore_errors=True)
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run_cli(_main, argv, prog="pawlens-serve")
    except _Stop:
        return 0


if __name__ == "__main__":
    sys.exit(main())
