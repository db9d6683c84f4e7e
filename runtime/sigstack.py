"""Valid alternate signal stacks after native libraries have swapped them (OpenVINO's CPU plugin does).

    from pawlens.runtime.sigstack import ensure_signal_stack
    ensure_signal_stack()        # this thread gets an alternate signal stack of ours, kept for the process's life

Why: OpenVINO's CPU plugin (openvinotoolkit/openvino PR 11894, "signal stack management for AMX",
``src/plugins/intel_cpu/src/sigstack_manager.cpp``) calls ``sigaltstack`` when a plugin is created: it maps a
stack of its own on the *creating thread* and remembers the one it replaced; the plugin's destructor puts the
remembered stack back and unmaps its own.  Plugins destroyed out of creation order (two ``ov.Core``: the first
one freed first) or on another thread leave a thread's alternate stack pointing at unmapped memory.  CPython
installs every Python-level signal handler with ``SA_ONSTACK``, so the next signal handled on that thread
(torch's DataLoader SIGCHLD handler, Ctrl-C's SIGINT) cannot be delivered and the kernel kills the process with
SIGSEGV (exit 139, ``si_code`` SI_KERNEL).

:func:`ensure_signal_stack` installs an alternate stack owned by this module on the calling thread.  The
buffers are never freed (one per thread id; a recycled thread id reuses its buffer, the old thread being gone),
so whatever a library restores later, the stack it finds here stays valid.  Linux only; elsewhere a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

#: Bytes per stack: OpenVINO maps getauxval(AT_MINSIGSTKSZ) + SIGSTKSZ (~19 KiB with AMX state); 4x that is ample.
STACK_BYTES = 1 << 16
_SS_DISABLE = 2

_lock = threading.Lock()
_buffers: dict[int, ctypes.Array] = {}  # native thread id -> its stack, alive for the process
_libc = None


class _StackT(ctypes.Structure):  # struct sigaltstack on Linux: void *ss_sp; int ss_flags; size_t ss_size
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _sigaltstack():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.sigaltstack.argtypes = [ctypes.POINTER(_StackT), ctypes.POINTER(_StackT)]
        _libc.sigaltstack.restype = ctypes.c_int
    return _libc.sigaltstack


def current_signal_stack() -> tuple[int, int, int] | None:
    """(address, size, flags) of the calling thread's alternate signal stack; None off Linux or on error."""
    if not sys.platform.startswith("linux"):
        return None
    cur = _StackT()
    if _sigaltstack()(None, ctypes.byref(cur)) != 0:
        return None
    return int(cur.ss_sp or 0), int(cur.ss_size), int(cur.ss_flags)


def ensure_signal_stack() -> bool:
    """Give the calling thread an alternate signal stack owned by this module (idempotent); True if one is set.

    Call it on every thread that has created or freed OpenVINO objects, after it did so.  Not called while the
    thread is running on its alternate stack (inside a signal handler): sigaltstack refuses then, and it is left as is.
    """
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    with _lock:
        buf = _buffers.get(tid)
        if buf is None:
            buf = _buffers[tid] = ctypes.create_string_buffer(STACK_BYTES)
    addr = ctypes.addressof(buf)
    cur = current_signal_stack()
    if cur is not None and cur[0] == addr and cur[1] == STACK_BYTES and not cur[2] & _SS_DISABLE:
        return True
    new = _StackT(addr, 0, STACK_BYTES)
    return _sigaltstack()(ctypes.byref(new), None) == 0
