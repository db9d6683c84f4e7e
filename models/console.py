"""Shared plumbing for the ``pawlens-*`` console scripts: one-line errors, exit codes, logging.

Usage in a CLI module::

    def main(argv=None):
        return run_cli(_main, argv, prog="pawlens-export")

``run_cli`` turns a :class:`~models.errors.PawlensError` into ``prog: error: [component] message``
on stderr and its exit code (2 for bad input unless the class says otherwise), Ctrl-C into exit
130, and any other exception into one line plus a hint to rerun with ``--debug`` (which re-raises
and shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Sequence

from .errors import OutputError, PawlensError

LOG = logging.getLogger("pawlens")


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is at the time of each record.

    A handler bound once to the ``sys.stderr`` of the first call breaks when ``main(argv)`` is called
    again in-process after stderr was swapped (pytest's capture, a notebook): logging then prints
    ``--- Logging error ---`` and a traceback for every record.
    """

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it
        pass


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if not LOG.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOG.addHandler(handler)
    LOG.setLevel(level)
    LOG.propagate = False


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every ``pawlens-*`` ``--help``: each flag's default shown (unless its help already states one), and the
    description and epilog (examples) kept on their own lines."""

    def _get_help_string(self, action):
        h = action.help or ""
        return h if "default" in h.lower() else super()._get_help_string(action)


def _call_deferring_warnings(fn, args, prog: str, *, show_now: bool):
    """``fn(args)`` with Python warnings (Pillow's, torch's, onnx's UserWarnings) held back until it returns.

    A run that fails ends with its one-line error and nothing before it from a library; a run that
    succeeds prints each distinct warning once at the end, as ``prog: warning: ...``.  With
    ``--verbose`` / ``--debug`` warnings print as they happen.
    """
    if show_now:
        return fn(args)
    import warnings

    held: list[str] = []

    def hold(message, category, filename, lineno, file=None, line=None):
        text = " ".join(f"{category.__name__}: {message}".split())[:300]
        if text not in held and len(held) < 20:
            held.append(text)

    with warnings.catch_warnings():
        warnings.showwarning = hold
        rc = fn(args)
    for text in held:
        print(f"{prog}: warning: {text}", file=sys.stderr)
    return rc


def run_cli(fn: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None, *, prog: str) -> int:
    """Run ``fn(argv)`` and map errors to one line on stderr and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("PAWLENS_DEBUG") == "1"
    setup_logging(verbose="--verbose" in args or "-v" in args)
    try:
        rc = _call_deferring_warnings(fn, args, prog, show_now=debug or "--verbose" in args or "-v" in args)
        return int(rc or 0)
    except PawlensError as e:
        if debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C); completed outputs were kept, nothing half-written was left", file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            raise
        print(f"{prog}: error: out of memory; try a smaller --batch-size or --img-size", file=sys.stderr)
        return 1
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - last-resort guard, re-raised with --debug
        if debug:
            raise
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        print(f"{prog}: error: unexpected {msg[:400]} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def check_utf8_path(path: str | os.PathLike, what: str = "output") -> str:
    """OutputError for a path that is not valid UTF-8 (bytes undecodable in its name).

    Python can open such a path, but ONNX Runtime, OpenVINO and the UTF-8 reports (CSV, YAML) cannot
    name it, so it would fail after the work; it is refused before any.
    """
    p = os.fspath(path)
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:
        shown = p.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise OutputError(f"{shown}: the {what} path is not valid UTF-8; rename it or choose another") from None
    return p


def ensure_writable_dir(path: str | os.PathLike, what: str = "output folder") -> str:
    """Create ``path`` if needed and check that files can be written there; raise OutputError if not."""
    p = check_utf8_path(path, what)
    try:
        os.makedirs(p, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{p}: cannot create the {what} ({e.strerror}); choose another with --out") from None
    if not os.path.isdir(p):
        raise OutputError(f"{p}: the {what} is a file, not a folder; choose another with --out")
    probe = os.path.join(p, f".pawlens-write-test-{os.getpid()}")
    try:
        with open(probe, "w") as f:
            f.write("x")
        os.remove(probe)
    except OSError as e:
        raise OutputError(f"{p}: the {what} is not writable ({e.strerror}); choose another with --out") from None
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    p = os.fspath(path)
    tmp = f"{p}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
