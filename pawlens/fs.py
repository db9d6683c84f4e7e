"""File-system helpers every stage shares: atomic writes, run folders, temporaries of killed runs, a folder lock, sha256.

Nothing here imports a stage; a stage's outputs go through :func:`atomic_write_bytes` (a temporary in the same folder,
fsync, rename), so a reader never sees half a file, and through :func:`next_run_dir`, so no earlier run is replaced.
"""

from __future__ import annotations

import logging
import os
import re
import time

from .errors import OutputError

LOG = logging.getLogger("pawlens")


def printable(path: str | os.PathLike) -> str:
    """A path as text that can be printed, drawn and written as UTF-8 whatever its bytes: an undecodable byte (held as a
    surrogate escape) is shown as ``\xe9``.  Matplotlib's text, a UTF-8 stdout and ``json`` refuse the raw form."""
    return os.fspath(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_utf8_path(path: str | os.PathLike, what: str = "output") -> str:
    """OutputError for a path that is not valid UTF-8 (bytes undecodable in its name).

    Python can open such a path, but ONNX Runtime, OpenVINO and the UTF-8 reports (CSV, YAML) cannot
    name it, so it would fail after the work; it is refused before any.
    """
    p = os.fspath(path)
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:
        raise OutputError(f"{printable(p)}: the {what} path is not valid UTF-8; rename it or choose another") from None
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


def holds_outputs(path: str) -> bool:
    """Whether a run folder is taken: it exists and holds something other than hidden entries (locks, temporaries)."""
    try:
        return any(not n.startswith(".") for n in os.listdir(path))
    except FileNotFoundError:
        return False
    except NotADirectoryError:  # a file by that name is taken; a path under a file can never exist
        return os.path.exists(path)


def next_run_dir(root: str | os.PathLike, name: str, exist_ok: bool = False) -> str:
    """The run folder ``root/name`` for a new run, numbered like Ultralytics' ``increment_path`` (``exist_ok``).

    ``exist_ok=True``: ``root/name`` as it is (its outputs may be replaced: the caller was asked to).  Otherwise
    ``root/name`` if it is free, else the first free of ``root/name-2``, ``-3``, ...  A folder is free when it does
    not exist or holds only hidden entries (a lock, temporaries of a killed run), so nothing in it can be replaced.
    Used by every stage (``runs/train/NAME``, ``runs/export/NAME``, ``runs/eval/NAME``, ``runs/demo/NAME``).
    """
    base = os.path.join(os.fspath(root), name)
    if exist_ok or not holds_outputs(base):
        return base
    i = 2
    while holds_outputs(f"{base}-{i}"):
        i += 1
    return f"{base}-{i}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine (True when it exists but belongs to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # unknown: assume alive, never remove what might be in use
    return True


_TMP = re.compile(r"\.tmp-(\d+)(\.[A-Za-z0-9]{1,5})?$")  # ... with the extension a writer needs (VideoSink's .mp4)


def remove_stale_temps(folder: str | os.PathLike, prefix: str = "") -> list[str]:
    """Remove ``<prefix>*.tmp-<PID>[.ext]`` files and folders in ``folder`` whose PID is not running (left by a killed run).

    Temporary names end in ``.tmp-<PID>`` of the process writing them (:func:`atomic_write_bytes`, the export's
    staging folder); those of live processes are left alone.  Returns the removed paths.
    """
    import shutil

    d = os.fspath(folder)
    removed = []
    try:
        names = os.listdir(d)
    except OSError:
        return removed
    for name in names:
        m = _TMP.search(name)
        if not m or not name.startswith(prefix) or pid_alive(int(m.group(1))):
            continue
        p = os.path.join(d, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.remove(p)
            removed.append(p)
        except FileNotFoundError:
            pass
        except OSError as e:
            LOG.debug("could not remove stale temporary %s: %s", p, e)
    if removed:
        LOG.info("removed %d temporary file(s) left by killed runs in %s, e.g. %s", len(removed), d, os.path.basename(removed[0]))
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder (``<path>.tmp-<PID>``), fsync, atomic rename.

    Temporary files of the same path left by killed processes (their PID is not running) are removed first.
    """
    p = os.fspath(path)
    remove_stale_temps(os.path.dirname(os.path.abspath(p)), prefix=os.path.basename(p) + ".tmp-")
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


class FolderLock:
    """An exclusive lock on a folder, held by one process: ``<folder>/<name>`` locked with ``flock``.

        with FolderLock("runs/export/best", ".pawlens-export.lock", prog="pawlens-export"):
            ...                     # a second process gets OutputError at once, naming the PID that holds it

    The kernel drops the lock when its process dies (also on SIGKILL), so a lock file left by a dead process is
    stale by construction: the next run takes it over (and logs the dead PID).  The file holds ``PID host time``.
    """

    def __init__(self, folder: str | os.PathLike, name: str = ".pawlens.lock", *, prog: str = "pawlens"):
        self.path = os.path.join(os.fspath(folder), name)
        self.prog = prog
        self.fd: int | None = None

    def acquire(self) -> "FolderLock":
        try:
            import fcntl
        except ImportError:  # not POSIX: an O_EXCL file with a PID check
            return self._acquire_excl()
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise self._busy(holder) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino  # not unlinked by the previous holder meanwhile
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = _read_holder(fd)
            if old and old[0] != os.getpid():
                LOG.info("[lock] %s: took over a stale lock of PID %d (not running any more)", self.path, old[0])
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {os.uname().nodename} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
            self.fd = fd
            return self
        raise OutputError(f"{self.path}: could not take the lock (it kept being replaced); retry")

    def _acquire_excl(self) -> "FolderLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                with open(self.path, "rb") as f:
                    holder = _parse_holder(f.read(200))
                if holder and pid_alive(holder[0]):
                    raise self._busy(holder) from None
                LOG.info("[lock] %s: removed a stale lock of PID %s (not running any more)", self.path, holder[0] if holder else "?")
                os.remove(self.path)
                continue
            os.write(fd, f"{os.getpid()} - {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
            self.fd = fd
            return self
        raise OutputError(f"{self.path}: could not take the lock; retry")

    def _busy(self, holder) -> OutputError:
        who = f"PID {holder[0]}, since {holder[2]}" if holder else "another process"
        return OutputError(f"{os.path.dirname(self.path)}: another {self.prog} ({who}) is writing into this folder "
                           f"(lock {os.path.basename(self.path)}); wait for it to finish or choose another --out")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.remove(self.path)  # while still holding it: a waiting process re-checks the inode
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _parse_holder(b: bytes):
    parts = b.decode("utf-8", "replace").split()
    try:
        return int(parts[0]), parts[1], parts[2]
    except (IndexError, ValueError):
        return None


def _read_holder(fd: int):
    try:
        return _parse_holder(os.pread(fd, 200, 0))
    except OSError:
        return None
