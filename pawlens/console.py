"""Shared plumbing for the ``pawlens-*`` console scripts: one-line errors, exit codes, logging.

Usage in a CLI module::

    def main(argv=None):
        return run_cli(_main, argv, prog="pawlens-export")

``run_cli`` turns a :class:`~pawlens.errors.PawlensError` into ``prog: error: [component] message``
on stderr and its exit code (2 for bad input unless the class says otherwise), Ctrl-C into exit
130, and any other exception into one line plus a hint to rerun with ``--debug`` (which re-raises
and shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, Sequence

from .errors import InputError, PawlensError, one_line

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
    succeeds prints each distinct warning once at the end, as ``prog: warning: ...``.  A run that
    returns a failing code has already printed its own last line (the desktop app's self-check does),
    so its held warnings are dropped like those of a run that raises.  With ``--verbose`` /
    ``--debug`` warnings print as they happen.
    """
    if show_now:
        return fn(args)
    import warnings

    held: list[str] = []

    def hold(message, category, filename, lineno, file=None, line=None):
        text = one_line(f"{category.__name__}: {message}")
        if text not in held and len(held) < 20:
            held.append(text)

    with warnings.catch_warnings():
        warnings.showwarning = hold
        rc = fn(args)
    if not rc:
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
        print(f"{prog}: error: unexpected {one_line(e, 400)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


#: The libraries whose versions a report records (those installed are listed).
LIBRARIES: tuple[str, ...] = ("torch", "torchvision", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt",
                              "opencv-python-headless")


def library_versions(packages: Sequence[str] = LIBRARIES) -> dict[str, str]:
    """``{"python": ..., package: version}`` for each of ``packages`` that is installed (read from the package metadata,
    nothing imported)."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def config_flag(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The ``-c/--config FILE`` of a command line, read before the full parse (its keys become the flags' defaults),
    and the arguments without it.  The one pre-parse of ``pawlens-train`` and ``pawlens-export``."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config", default=None)
    known, rest = pre.parse_known_args(list(argv))
    return known.config, rest


def read_config(path: str, what: str = "config") -> dict[str, Any]:
    """A YAML file of ``key: value`` (``img-size`` and ``img_size`` both accepted: dashes become underscores), read
    safely (:func:`pawlens.safe_yaml.read_yaml`); an empty file is ``{}``.  Anything else is one :class:`InputError`."""
    import yaml

    from .safe_yaml import read_yaml

    if not os.path.isfile(path):
        raise InputError(f"{path}: {what} file not found; pass an existing YAML file" + (" with -c/--config" if what == "config" else ""))
    try:
        obj = read_yaml(path)
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} file ({e.strerror}); pass a readable YAML file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid YAML ({one_line(e, 120, with_type=False)})") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a mapping of key: value in the {what} file, got {type(obj).__name__}")
    return {str(k).replace("-", "_"): v for k, v in obj.items()}

