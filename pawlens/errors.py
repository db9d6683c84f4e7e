"""One exception root for the whole product.

Every error a user can cause (a bad file, a bad flag, a missing optional library) is raised as a
``PawlensError`` subclass with a one-line message that names the file and the fix.  The console
entry points (:mod:`pawlens.console`) print that line and exit with the error's ``exit_code``;
anything else is a bug and gets a traceback only with ``--debug``.

Messages are prefixed with the component, e.g. ``[checkpoint] runs/x/best.pt: truncated ...``.
"""

from __future__ import annotations


class PawlensError(Exception):
    """Root of every user-facing error.  ``exit_code`` is what a CLI exits with."""

    exit_code = 2
    component = "pawlens"

    def __init__(self, message: str, *, component: str | None = None):
        self.component = component or self.component
        super().__init__(message)

    def __str__(self) -> str:  # one line, always
        msg = " ".join(str(self.args[0]).split()) if self.args else ""
        return f"[{self.component}] {msg}"


class InputError(PawlensError):
    """A bad flag value or argument combination."""

    component = "input"


class DataError(PawlensError):
    """A data folder or image that cannot be used."""

    component = "data"


class ImageError(DataError):
    """One image that cannot be read (zero bytes, truncated, not an image, too large)."""

    component = "image"


class CheckpointError(PawlensError):
    """A checkpoint that is missing, truncated, foreign, of an unknown version or unsafe."""

    component = "checkpoint"


class WeightsError(PawlensError):
    """Pretrained weights that cannot be had (offline, missing file, other architecture)."""

    component = "weights"


class ArtifactError(PawlensError):
    """An exported model file (ONNX, engine) that is missing, truncated or inconsistent."""

    component = "artifact"


class MissingMetadata(ArtifactError):
    """A model file without pawlens metadata (class names, preprocessing): usable once class names are given.

    Callers that can ask for the class names (``pawlens-gui``'s dialog, ``--classes``) catch this type.
    """


class BackendUnavailable(PawlensError):
    """An optional backend library (onnxruntime, openvino, tensorrt) or device is not available."""

    component = "backend"


class ParityError(PawlensError):
    """An artifact failed its numerical parity gate."""

    exit_code = 1
    component = "parity"


class OutputError(PawlensError):
    """An output location that cannot be written."""

    component = "output"


class RunnerError(PawlensError):
    """A runner used against its contract: not activated, an input of the wrong shape or type, a closed runner."""

    component = "runner"


class SourceError(DataError):
    """A desktop-app source (camera, clip, folder, stream) that cannot be opened or stopped delivering frames."""

    component = "source"


class WorkerError(PawlensError):
    """A bench worker that failed, timed out or died.  Its message is the worker's own line, shown as it is."""

    component = "worker"

    def __str__(self) -> str:
        return " ".join(str(self.args[0]).split()) if self.args else ""


def one_line(e: BaseException | str, limit: int = 300, *, with_type: bool = True, unexpected: bool = False) -> str:
    """Any exception (or message) as one line of at most ``limit`` characters, for a user or a log.

    A :class:`PawlensError` already is one (``[component] message``); another exception is shown as
    ``TypeName: message`` (``with_type=False``: the message only; ``unexpected=True``: ``unexpected TypeName: ...``,
    a bug rather than a user's mistake), whitespace collapsed.
    """
    if isinstance(e, PawlensError):
        return str(e)
    text = f"{type(e).__name__}: {e}" if with_type and isinstance(e, BaseException) else str(e)
    if unexpected:
        text = f"unexpected {text}"
    return " ".join(text.split())[:limit]
