"""What machine a bench ran on: CPU name and flags, library versions, the load average."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if x in fl]
    except OSError:
        pass
    return []


def versions() -> dict[str, str]:
    """The versions of Python and the installed libraries a report records (:func:`pawlens.console.library_versions`)."""
    from pawlens.console import library_versions

    return library_versions()


def load_average() -> tuple[float, float, float] | None:
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def runnable_others() -> int | None:
    """Threads ready to run on this machine right now, other than the one asking (Linux ``/proc/stat`` ``procs_running``)."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    return max(0, int(line.split()[1]) - 1)
    except (OSError, ValueError):
        pass
    return None


def load_check(cores: int | None = None, *, samples: int = 10, interval_s: float = 0.03, when: str = "") -> dict:
    """Is other work taking the machine?  ``busy`` when the median count of other runnable threads over a few instants
    reaches half the cores (at least one): the bench wants every core, and on 2 cores one busy neighbour thread halves
    a two-threaded runtime.  The 1-minute load average is recorded but decides nothing: it lags by a minute, so a stage
    that just ended in this same process (the demo's training, right before its bench) would read as a neighbour."""
    import statistics
    import time

    cores = cores or os.cpu_count() or 1
    counts = []
    for i in range(samples):
        n = runnable_others()
        if n is not None:
            counts.append(n)
        if i + 1 < samples:
            time.sleep(interval_s)
    la = load_average()
    runnable = statistics.median(counts) if counts else None
    busy = bool(runnable is not None and runnable >= max(1, cores // 2))
    return {"when": when, "load_avg": la, "runnable": runnable, "cores": cores, "busy": busy}


#: How far above the measured GEMM ceiling a row may read before the run counts as disturbed.  The ceiling is the fastest
#: of a few 2048^3 products; on a quiet run here oneDNN's convolutions in OpenVINO and ONNX Runtime read 103-113% of it
#: (ResNet50 fp32), so only a larger excess says that the ceiling itself was measured under load.
CEILING_TOLERANCE = 1.2


def disturbance(checks: list[dict], rows) -> list[str]:
    """Why a run's absolute figures are suspect: a busy machine at any check, or a row faster than this CPU's measured limit."""
    why = []
    for c in checks:
        if c["busy"]:
            la = f"load average {c['load_avg'][0]:.2f}" if c["load_avg"] else "load average -"
            why.append(f"{c['when']}: {la}, {c['runnable'] if c['runnable'] is not None else '-'} other runnable threads, "
                       f"{c['cores']} cores")
    for r in rows:
        if r.of_gemm == r.of_gemm and r.of_gemm > CEILING_TOLERANCE:  # not NaN
            why.append(f"{r.label} at batch {r.batch} reads {r.of_gemm:.0%} of the {r.precision} GEMM ceiling measured in this run "
                       f"(over {CEILING_TOLERANCE:.0%}: the ceiling was measured while the machine was busy)")
    return why
