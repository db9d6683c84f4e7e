"""Run the test suite one test file per pytest process, then print one combined summary line.

    python tests/run_isolated.py [PYTEST ARGS...]        # what `make test` runs

Why: run as one long process, the suite was killed by a kernel-sent SIGSEGV (si_code SI_KERNEL,
the main thread asleep in ``time.sleep``) after a few hundred tests that had loaded PyTorch, ONNX Runtime,
OpenVINO and PySide6 side by side and forked DataLoader workers and subprocesses; every file passes
on its own and the product's commands each run in a fresh process. Until that is understood, each
file gets a fresh interpreter, so one file's process state cannot break another's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    files = sorted(str(p.relative_to(HERE.parent)) for p in HERE.glob("test_*.py"))
    totals: dict[str, int] = {}
    failed_files = []
    t0 = time.perf_counter()
    for f in files:
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *argv, f],
                           cwd=HERE.parent, capture_output=True, text=True, env=os.environ.copy())
        out = p.stdout + p.stderr
        last = next((ln for ln in reversed(out.strip().splitlines()) if re.search(r"\d+ (passed|failed|skipped|error)", ln)), "")
        for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", last):
            key = "error" if what.startswith("error") else what
            totals[key] = totals.get(key, 0) + int(n)
        ok = p.returncode in (0, 5)
        print(f"{'ok  ' if ok else 'FAIL'} {f:<40} {time.perf_counter() - t:6.1f} s  {last.strip('= ') or f'exit {p.returncode}'}", flush=True)
        if not ok or "bad-input sweep" in out:
            sys.stdout.write(out if not ok else out[out.index("bad-input sweep"):].split("\n\n")[0] + "\n")
        if not ok:
            failed_files.append(f)
            if p.returncode < 0 or p.returncode > 128:
                totals["failed"] = totals.get("failed", 0) + 1  # a crashed file counts as a failure
    dt = time.perf_counter() - t0
    print(f"\n{len(files)} test files in {dt:.0f} s" + (f"; failing: {', '.join(failed_files)}" if failed_files else ""))
    parts = [f"{totals.get('passed', 0)} passed", f"{totals.get('failed', 0) + totals.get('error', 0)} failed"]
    if totals.get("skipped"):
        parts.append(f"{totals['skipped']} skipped")
    print(", ".join(parts))
    return 1 if failed_files else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
