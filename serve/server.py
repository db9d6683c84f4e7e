"""Start, watch and stop the real Triton Inference Server on a model repository (``pawlens serve``).

    from pawlens.serve.server import TritonServer, find_triton
    with TritonServer(repo, http_port=8000, grpc_port=8001, metrics_port=8002) as srv:   # ready on return
        print(srv.urls(), srv.models)
        srv.wait()                                                                         # until it exits

Which ``tritonserver``: ``--tritonserver PATH`` / ``$PAWLENS_TRITONSERVER``, else the one ``nvidia-pytriton`` ships
(``make setup`` installs it: Triton 2.51 with the Python backend only), else ``tritonserver`` on ``PATH`` with
``/opt/tritonserver/backends`` (NVIDIA's container).

What the ``nvidia-pytriton`` server needs (``../shared/NOTES.md``): its Python-backend stub for this interpreter's
version copied into a private backend folder (PyTriton does the same), ``LD_LIBRARY_PATH`` naming this interpreter's
``libpython`` (the stub would otherwise link the system's, and a different 3.11 fails inside ``multiprocessing``),
and this environment's site-packages (``PAWLENS_SITE_PACKAGES``, read by the models' ``model.py``).

Everything the server writes lives in one temporary folder and in shared-memory regions named with a prefix of
this process's own; :meth:`TritonServer.stop` (SIGTERM, then SIGKILL of the server's process group after
``grace`` seconds) removes both, whether the server stopped, crashed or was killed.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from pawlens.errors import BackendUnavailable, InputError, PawlensError

from .repository import Repository

INSTALL = "make setup  (or: pip install -e '.[serve]' && pip install --no-deps nvidia-pytriton==0.7.0)"
CONTAINER_BACKENDS = "/opt/tritonserver/backends"


class ServeError(PawlensError):
    component = "serve"


@dataclass
class TritonInstall:
    binary: str
    backends: str  # the folder holding one subfolder per backend (python/, onnxruntime/, ...)
    libs: str | None = None  # nvidia-pytriton's bundled shared libraries
    stub: str | None = None  # the Python-backend stub for this interpreter, when it must be copied in
    source: str = ""

    def backend_names(self) -> set[str]:
        try:
            names = {n for n in os.listdir(self.backends) if os.path.isdir(os.path.join(self.backends, n))}
        except OSError:
            names = set()
        if "python" in names and self.stub is None and not os.path.exists(os.path.join(self.backends, "python", "triton_python_backend_stub")):
            names.discard("python")
        return names


def find_triton(explicit: str | None = None) -> TritonInstall:
    """The ``tritonserver`` to run (see the module docstring); BackendUnavailable naming the install when none is found."""
    explicit = explicit or os.environ.get("PAWLENS_TRITONSERVER") or None
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise BackendUnavailable(f"{explicit}: not an executable tritonserver (--tritonserver / PAWLENS_TRITONSERVER)")
        root = os.path.dirname(os.path.dirname(os.path.abspath(explicit)))
        for be in (os.path.join(root, "backends"), CONTAINER_BACKENDS):
            if os.path.isdir(be):
                return TritonInstall(explicit, be, source=explicit)
        raise BackendUnavailable(f"{explicit}: no backends folder beside it ({root}/backends); pass a complete Triton install")
    import importlib.util

    spec = importlib.util.find_spec("pytriton")  # finds the package without importing it (its Python API is not used)
    if spec is not None and spec.submodule_search_locations:
        pkg = list(spec.submodule_search_locations)[0]
        dist = os.path.join(pkg, "tritonserver")
        binary = os.path.join(dist, "bin", "tritonserver")
        stub = os.path.join(dist, "python_backend_stubs", f"{sys.version_info[0]}.{sys.version_info[1]}", "triton_python_backend_stub")
        if os.path.isfile(binary):
            if not os.path.isfile(stub):
                raise BackendUnavailable(f"nvidia-pytriton has no Python-backend stub for Python {sys.version_info[0]}.{sys.version_info[1]} "
                                         f"({stub}); use Python 3.8-3.13")
            return TritonInstall(binary, os.path.join(dist, "backends"), libs=os.path.join(os.path.dirname(pkg), "nvidia_pytriton.libs"),
                                 stub=stub, source="nvidia-pytriton")
    which = shutil.which("tritonserver")
    if which:
        return find_triton(which)
    raise BackendUnavailable(f"no Triton server: install the serve extra with {INSTALL}, or pass --tritonserver PATH")


def check_ports(host: str, ports: dict[str, int]) -> None:
    """InputError naming the first port that cannot be bound on ``host`` (taken, or not allowed)."""
    seen: dict[int, str] = {}
    for what, port in ports.items():
        if not 0 < int(port) < 65536:
            raise InputError(f"--{what}-port {port}: must be 1..65535")
        if port in seen:
            raise InputError(f"--{what}-port {port} is also --{seen[port]}-port; give each its own port")
        seen[port] = what
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a port in TIME_WAIT is free, a listener is not
        try:
            s.bind((host, int(port)))
        except OSError as e:
            why = "is taken (another server is listening there)" if e.errno == 98 else f"cannot be bound ({e.strerror})"
            raise InputError(f"{host}:{port} (--{what}-port) {why}; stop that server or choose another with --{what}-port") from None
        finally:
            s.close()


def loadable(repo: Repository, backends: set[str], wanted: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The models this server can load, and for each one it cannot, why (its backend is not in this Triton)."""
    names = list(repo.models)
    if wanted:
        unknown = [w for w in wanted if w not in repo.models]
        if unknown:
            raise InputError(f"--models {', '.join(unknown)}: not in {repo.path}; it holds {', '.join(names)}")
        names = list(wanted)
    ok: list[str] = []
    skipped: dict[str, str] = {}

    def can(name: str) -> str | None:
        m = repo.models.get(name)
        if m is None:
            return f"its step {name} is not in the repository"
        if m.kind == "ensemble":
            return next((f"needs {n}, which {why}" for n in m.needs if (why := can(n))), None)
        be = repo.backend_of(name)
        return None if be in backends else f"needs Triton's {be} backend, which this tritonserver lacks (NVIDIA's container has it)"

    for n in names:
        why = can(n)
        if why:
            skipped[n] = why
        else:
            ok.append(n)
    return ok, skipped


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _set_pdeathsig() -> None:  # the server goes when its parent does (Linux), even if the parent is SIGKILLed
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class TritonServer:
    """One ``tritonserver`` process on ``repo`` (see the module docstring).  ``start()`` returns once every model in
    ``models`` is ready, or raises ServeError with the server's own reason (a model that fails to load, a port)."""

    def __init__(self, repo: Repository, *, host: str = "127.0.0.1", http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
                 models: list[str] | None = None, install: TritonInstall | None = None, log_path: str | None = None, grace: float = 5.0,
                 verbose: bool = False):
        self.repo, self.host = repo, host
        self.ports = {"http": int(http_port), "grpc": int(grpc_port), "metrics": int(metrics_port)}
        self.install = install or find_triton()
        self.models = list(models if models is not None else repo.models)
        self.grace, self.verbose = float(grace), verbose
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.workdir: str | None = None
        self.shm_prefix = f"pawlens{os.getpid()}_"

    # -- lifecycle ------------------------------------------------------------------------------
    def _backends_dir(self) -> str:
        if self.install.stub is None:
            return self.install.backends
        be = os.path.join(self.workdir, "backends")
        shutil.copytree(os.path.join(self.install.backends, "python"), os.path.join(be, "python"), ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(self.install.stub, os.path.join(be, "python", "triton_python_backend_stub"))
        return be

    def _env(self) -> dict[str, str]:
        import site

        env = dict(os.environ)
        libs = []
        libdir = sysconfig.get_config_var("LIBDIR")
        ldlib = sysconfig.get_config_var("LDLIBRARY") or ""
        if libdir and ldlib and os.path.exists(os.path.join(libdir, ldlib)):
            libs.append(libdir)
        if self.install.libs and os.path.isdir(self.install.libs):
            libs.append(self.install.libs)
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        paths = [p for p in site.getsitepackages() + [p for p in sys.path if p.endswith("site-packages")] if os.path.isdir(p)]
        env["PAWLENS_SITE_PACKAGES"] = os.pathsep.join(dict.fromkeys(paths))
        env.pop("PYTHONHOME", None)
        return env

    def command(self, backends_dir: str) -> list[str]:
        h = self.host
        cmd = [self.install.binary, f"--model-repository={self.repo.path}", f"--backend-directory={backends_dir}",
               "--model-control-mode=explicit", f"--http-address={h}", f"--http-port={self.ports['http']}",
               f"--grpc-address={h}", f"--grpc-port={self.ports['grpc']}", f"--metrics-address={h}", f"--metrics-port={self.ports['metrics']}",
               f"--exit-timeout-secs={max(1, int(self.grace))}", "--strict-readiness=true", "--exit-on-error=true",
               f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
               "--backend-config=python,shm-default-byte-size=16777216", "--backend-config=python,shm-growth-byte-size=16777216"]
        cmd += [f"--load-model={m}" for m in self.models]
        if self.install.source == "nvidia-pytriton":
            cmd.append(f"--cache-directory={os.path.join(os.path.dirname(self.install.backends), 'caches')}")
        return cmd

    def start(self, timeout: float = 120.0) -> "TritonServer":
        check_ports(self.host, self.ports)
        self.workdir = tempfile.mkdtemp(prefix="pawlens-serve-")
        log = self.log_path or os.path.join(self.workdir, "tritonserver.log")
        self._log_file = log
        try:
            cmd = self.command(self._backends_dir())
            with open(log, "ab") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env(),
                                             cwd=self.workdir, start_new_session=True, preexec_fn=_set_pdeathsig)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        base = f"http://{self._probe_host()}:{self.ports['http']}"
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            rc = self.proc.poll()
            if rc is not None:
                raise ServeError(f"tritonserver exited ({self._rc_text(rc)}) before it was ready: {self.failure()}")
            if _http_ok(f"{base}/v2/health/ready"):
                return
            time.sleep(0.1)
        raise ServeError(f"tritonserver was not ready after {timeout:.0f} s: {self.failure()}")

    def _probe_host(self) -> str:
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)

    @staticmethod
    def _rc_text(rc: int) -> str:
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"signal {-rc}"
        return f"exit code {rc}"

    def log_text(self) -> str:
        try:
            with open(self._log_file, encoding="utf-8", errors="replace") as f:
                return f.read()
        except (OSError, AttributeError):
            return ""

    def failure(self) -> str:
        """The server's own reason, from its log: a model's load error, else its last error line."""
        text = self.log_text()
        for line in text.splitlines():
            if "failed to load" in line and "version" in line:  # Triton quotes the model's traceback with literal \n
                return " ".join(line.split("]", 1)[-1].strip().strip('"').replace("\\n", " ").split())[:400]
        errs = [ln for ln in text.splitlines() if ln.startswith("E") or "error:" in ln.lower()]
        errs = [e for e in errs if "NVML" not in e and "DCGM" not in e and "CudaDriver" not in e and "pinned" not in e]
        return (errs[-1].split("]", 1)[-1].strip().strip('"')[:400] if errs else "no reason in its log") + f" (log: {self._log_file})"

    def wait(self) -> int:
        """Block until the server exits; its return code (negative: the signal that killed it)."""
        return self.proc.wait() if self.proc else 0

    def stop(self) -> None:
        """SIGTERM, ``grace`` seconds for in-flight requests, SIGKILL of its process group; then its shared memory and
        temporary folder go.  Safe to call twice."""
        p = self.proc
        if p is not None:
            try:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
                    try:
                        p.wait(self.grace + 5)
                    except subprocess.TimeoutExpired:
                        pass
                os.killpg(p.pid, signal.SIGKILL)  # the Python-backend stubs, if the server left them
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for f in glob.glob(f"/dev/shm/{self.shm_prefix}*"):
            try:
                os.remove(f)
            except OSError:
                pass
        if self.workdir and not self.log_path and self.verbose:
            print(self.log_text(), file=sys.stderr)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def urls(self) -> dict[str, str]:
        h = self._probe_host()  # a wildcard address is reached on loopback
        return {"http": f"http://{h}:{self.ports['http']}", "grpc": f"grpc://{h}:{self.ports['grpc']}",
                "metrics": f"http://{h}:{self.ports['metrics']}/metrics"}

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
