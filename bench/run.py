"""run_bench: every available backend and precision, side by side, in one run, on the same inputs.

    result = run_bench(batch_sizes=(1, 8), iters=20)     # the library call the demo makes
    result.rows, result.goals, result.files

Per row: backend, precision, device, batch, p50/p90/p99/mean latency (ms), images/s, speed-up against
PyTorch fp32 eager at the same batch on the same device, and top-1 agreement and max abs difference
against the PyTorch fp32 reference.  Also measured: the runtime's own overhead (preprocessing a
640x480 frame + softmax) and one Grad-CAM against one PyTorch fp32 forward.  Writes bench.json,
bench.csv, bench.md (with how the figures were taken and the performance goals checked as ratios)
and bench.png.

How the figures are taken (``isolation="process"``, the default): each backend configuration runs in
its own worker process, activated once; the timed calls go round the workers in alternating rounds of
``round_iters`` calls (the order rotates every round), so machine drift and other load hit every
row alike.  Only one worker computes at a time; spinning is off (ONNX Runtime sessions:
``session.intra_op.allow_spinning = 0``; the PyTorch workers start with ``GOMP_SPINCOUNT=20000``, a
bounded spin of some microseconds) and a short pause separates the workers' turns, so no runtime's idle threads eat
into the next one's time (a spinning runtime's idle threads take the cores from the next backend, and
spinning OpenMP threads slow PyTorch many times over whenever anything else runs on a machine with few cores).
``isolation="inline"`` runs everything in this process (quicker to start, used by the tests).

Latency does not depend on the weights, so the embedded default (an untrained model) is fine for speed;
its agreement figures only say how closely each backend reproduces the same random network (on
synthetic inputs unless ``images`` gives real photos).  ONNX files and engines passed in ``models``
are untrusted input like any model file: bench only files you exported.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pawlens.errors import ArtifactError, InputError, PawlensError
from pawlens.fs import ensure_writable_dir, next_run_dir

from . import analysis, candidates, machine, peers, schedule
from .harness import InlineWorker, WorkerError, run_in_child, worker_env
from .inputs import BenchInputs, bench_inputs, export_gate
from .report import write_outputs
from .results import BenchResult
from .subjects import Models, add_checkpoints, add_latency_reference, export_artifacts, main_model, sort_given_files

LOG = logging.getLogger("pawlens")
ALL_BACKENDS = ("torch", "ort", "openvino", "trt")


@dataclass
class Options:
    """The run's settings, checked once (:func:`check_options`)."""

    batch_sizes: list[int]
    iters: int
    warmup: int
    round_iters: int
    pause_ms: float
    threads: int | None
    isolation: str
    device: str
    wanted: set[str]
    n_images: int
    compile: bool | str
    spinning: bool
    cam: bool
    progress: bool
    method: str = "burst"
    rounds: int = 5
    burst_ms: float = 200.0
    min_calls: int = 3
    peers: bool = True
    peer_s: float = 1.0
    peer_runs: int = 3


METHODS = ("burst", "rounds")


def check_options(*, batch_sizes, iters, warmup, round_iters, isolation, device, backends, n_images, compile, method="burst", rounds=5,
                  burst_ms=200.0, min_calls=3, peers=True, peer_s=1.0, peer_runs=3, **rest) -> Options:
    """The run's settings, or InputError naming the flag and its valid values."""
    from pawlens.runtime.formats import BACKENDS

    bs = sorted({int(b) for b in batch_sizes})
    if not bs or bs[0] < 1:
        raise InputError(f"--batch-sizes must be positive integers, got {bs}")
    if iters < 1 or warmup < 0 or round_iters < 1:
        raise InputError(f"--iters must be >= 1 and --warmup >= 0 (got {iters}, {warmup})")
    if isolation not in ("process", "inline"):
        raise InputError(f"--isolation {isolation!r}: choose process or inline")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device {device!r}: choose auto, cpu or cuda")
    wanted = set(backends or ALL_BACKENDS)
    bad = wanted - set(BACKENDS)
    if bad:
        raise InputError(f"--backends {','.join(sorted(bad))}: choose from {', '.join(BACKENDS)}")
    if n_images < 1:
        raise InputError("--n-images must be >= 1")
    comp = {"auto": "auto", "on": True, "off": False, True: True, False: False}.get(compile, None)
    if comp is None:
        raise InputError("--compile: choose auto, on or off")
    if method not in METHODS:
        raise InputError(f"--method {method!r}: choose {' or '.join(METHODS)}")
    if rounds < 1 or burst_ms <= 0 or min_calls < 1 or peer_s <= 0 or peer_runs < 1:
        raise InputError(f"--rounds, --min-calls and --peer-runs must be >= 1, --burst-ms and --peer-s > 0 (got {rounds}, {min_calls}, "
                         f"{peer_runs}, {burst_ms}, {peer_s})")
    return Options(bs, iters, warmup, round_iters, rest["pause_ms"], rest["threads"], isolation, device, wanted, n_images, comp,
                   rest["spinning"], rest["cam"], rest["progress"], method, int(rounds), float(burst_ms), int(min_calls), bool(peers),
                   float(peer_s), int(peer_runs))


# ----------------------------------------------------------------------------- inputs per model


@dataclass
class Arrays:
    agree: dict[str, np.ndarray]  # group -> preprocessed agreement inputs
    timing: dict[str, dict[int, np.ndarray]]  # group -> batch -> a timing batch
    labels: dict[str, list[int]]  # group -> the agreement labels in that model's class order
    calib: np.ndarray  # the main model's calibration inputs


def preprocess_inputs(m: Models, inp: BenchInputs, batch_sizes: Sequence[int]) -> Arrays:
    """The frames through each model's own preprocessing; timing batches cycle through agreement (+ calibration) inputs."""
    from pawlens.models.preprocess import preprocess_numpy

    a = Arrays({}, {}, {}, preprocess_numpy(inp.calib, m.groups[""]["cfg"]))
    for g, gd in m.groups.items():
        a.agree[g] = preprocess_numpy(inp.agree, gd["cfg"])
        pool = a.agree[g] if inp.shared_calibration else np.concatenate([a.agree[g], preprocess_numpy(inp.calib, gd["cfg"])])
        a.timing[g] = {b: np.ascontiguousarray(np.resize(pool, (b, *pool.shape[1:]))) for b in batch_sizes}
        a.labels[g] = [gd["classes"].index(n) if n in gd["classes"] else -1 for n in inp.names]
    return a


# ----------------------------------------------------------------------------- candidates


def _use_compile(opt: Options, notes: list[str]) -> bool:
    from pawlens.runtime.torch_runner import cxx_compiler

    use = bool(opt.compile) and (opt.compile is True or cxx_compiler() is not None)
    if opt.compile == "auto" and not use and "torch" in opt.wanted:
        notes.append("No C++ compiler on PATH: the torch.compile rows were left out (install g++ to time them).")
    return use


def build_candidates(m: Models, artifacts, extra_artifacts, opt: Options, devices: list[str], notes: list[str]):
    """Every row of the run: the main checkpoint's PyTorch variants, its files, the other models' eager rows and files."""
    from pawlens.models.device import cpu_supports_bf16
    from pawlens.runtime.factory import backend_installed

    installed = {b for b in ALL_BACKENDS if backend_installed(b)}
    bf16 = cpu_supports_bf16()
    if "cpu" in devices and not bf16:
        notes.append("This CPU has no native bf16 (AVX512-BF16 or AMX): the PyTorch and OpenVINO bf16 rows were left out "
                     "(bf16 would be emulated, many times slower than fp32).")
    cands = candidates.checkpoint_candidates(m.path, devices=devices, bf16=bf16, compile=_use_compile(opt, notes))
    for path, me, comparable in artifacts:
        cands += candidates.artifact_candidates(path, me, devices=devices, installed=installed, bf16=bf16, comparable=comparable, notes=notes)
    for g, gd in m.groups.items():
        if not g or "cpu" not in devices:
            continue
        cands.append(candidates.reference_candidate(gd["label"], gd["path"], comparable=not gd.get("reference"), group=g))
        for path, me, gg in extra_artifacts:
            if gg == g:
                cands += candidates.artifact_candidates(path, me, devices=["cpu"], installed=installed, suffix=f"#{gd['label']}", group=g)
    cands = candidates.restrict(cands, opt.wanted, opt.threads)
    if "cpu" in devices:
        cands += candidates.tuned_candidates([(m.path, m.meta)] + [(p, me) for p, me, _ in artifacts], wanted=opt.wanted,
                                             threads=opt.threads, notes=notes)
    if not cands:
        raise InputError("nothing to benchmark: no backend of --backends is installed for these files")
    return cands


# ----------------------------------------------------------------------------- measuring


def reference_keys(m: Models, workers: dict) -> dict[str, str | None]:
    keys: dict[str, str | None] = {g: f"torch-fp32#{gd['label']}" for g, gd in m.groups.items() if g}
    keys[""] = "torch-fp32" if "torch-fp32" in workers else ("torch-fp32-cuda" if "torch-fp32-cuda" in workers else None)
    return keys


def measure_parity(m: Models, cands, workers, runners, arrays: Arrays, failed, opt: Options, notes: list[str]) -> dict[str, Any]:
    """Each row's logits on its model's agreement inputs, judged against that model's PyTorch fp32 reference."""
    keys = reference_keys(m, workers)
    ref: dict[str, Any] = {}
    if keys[""] is None:  # no PyTorch row timed: a reference in this process, for agreement only
        try:
            c = candidates.checkpoint_candidates(m.path, devices=["cpu"], bf16=False, compile=False)[0]
            c.threads = opt.threads
            w = InlineWorker(c)
            ref[""] = w.call("logits", (arrays.agree[""], 8))
            w.close()
        except WorkerError as e:
            notes.append(f"no PyTorch fp32 reference: {e}")
    logits = schedule.collect_logits(cands, workers, runners, lambda c: arrays.agree[c.group], failed,
                                     skip=lambda c: not c.comparable and bool(c.group) and bool(m.groups[c.group].get("reference")))
    for c in cands:
        if c.key in logits and c.key == keys.get(c.group):
            ref[c.group] = logits[c.key]
    return analysis.parity_per_row(cands, logits, ref, arrays.labels)


def measure_extras(m: Models, opt: Options, devices: list[str], notes: list[str]) -> dict[str, Any]:
    """Runtime overhead and Grad-CAM (after the workers are gone), and this CPU's compute ceiling."""
    from .extras import measure_cam, measure_overhead

    extras: dict[str, Any] = {}
    env = worker_env(opt.threads, opt.spinning)
    inline = opt.isolation != "process"
    if opt.cam:
        extras.update(measure_overhead(m.meta.preprocess, len(m.meta.class_names)))
        if "torch" in opt.wanted:
            try:
                extras.update(measure_cam(m.ckpt, threads=opt.threads) if inline else
                              run_in_child("pawlens.bench.extras:cam_from_file", m.path, opt.threads, env=env))
            except WorkerError as e:
                notes.append(f"Grad-CAM timing failed: {e}")
    if "cpu" in devices:
        try:
            if inline:
                from pawlens.runtime.ceiling import measure

                extras.update(measure(m.ckpt, opt.threads))
            else:
                extras.update(run_in_child("pawlens.bench.extras:ceiling_from_file", m.path, opt.threads, env=env))
        except (WorkerError, PawlensError) as e:
            notes.append(f"compute ceiling not measured: {e}")
    return extras


def _settings(m: Models, opt: Options, inp: BenchInputs, models: Sequence[str], *, cuda: bool, load_start, t_start: float) -> dict:
    import torch

    return {
        "checkpoint": None if m.embedded else m.path, "embedded_default": m.embedded, "arch": m.meta.arch,
        "input_size": m.meta.preprocess.input_size, "classes": list(m.meta.class_names), "models": [os.fspath(p) for p in models],
        "batch_sizes": opt.batch_sizes, "iters": opt.iters, "warmup": opt.warmup, "round_iters": opt.round_iters, "method": opt.method,
        "rounds": opt.rounds, "burst_ms": opt.burst_ms, "min_calls": opt.min_calls, "peers": opt.peers, "peer_s": opt.peer_s,
        "peer_runs": opt.peer_runs,
        "pause_ms": opt.pause_ms, "threads": opt.threads, "isolation": opt.isolation, "device": opt.device, "spinning": opt.spinning,
        "agreement_data": inp.note, "cpu": machine.cpu_name(), "cpu_flags": machine.cpu_flags(), "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None, "versions": machine.versions(), "load_avg_start": load_start,
        "model": m.label, "real_photos": inp.real_photos, "labelled_photos": inp.n_labelled,
        "models_compared": [gd["label"] for gd in m.groups.values()], "load_avg_end": machine.load_average(),
        "seconds": round(time.perf_counter() - t_start, 1),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- the run


def _devices(opt: Options, notes: list[str]) -> tuple[bool, list[str]]:
    import torch

    cuda = opt.device in ("auto", "cuda") and torch.cuda.is_available()
    if opt.device == "cuda" and not cuda:
        raise InputError("--device cuda: torch sees no CUDA GPU; use --device cpu or auto")
    if opt.isolation == "process" and os.name == "nt":  # the workers are handed a socket fd (pass_fds): POSIX only
        opt.isolation = "inline"
        notes.append("--isolation process needs a POSIX system; ran inline")
    return cuda, (["cpu"] if opt.device != "cuda" else []) + (["cuda"] if cuda else [])


def run_bench(checkpoint: str | None = None, models: Sequence[str] = (), *, batch_sizes: Sequence[int] = (1, 8, 32), iters: int = 20,
              warmup: int = 3, threads: int | None = None, out: str | None = None, name: str | None = None,
              images: str | Sequence[str] | None = None, n_images: int | None = None, backends: Sequence[str] | None = None, device: str = "auto",
              isolation: str = "process", round_iters: int = 2, pause_ms: float = 10.0, cam: bool = True, spinning: bool = False,
              keep_models: bool = False, compile: str | bool = "off", progress: bool = True, write: bool = True,
              checkpoints: Sequence[str] = (), latency_reference: str | None = None, method: str = "burst", rounds: int = 5,
              burst_ms: float = 200.0, min_calls: int = 3, peers: bool = True, peer_s: float = 1.0,
              peer_runs: int = 3) -> BenchResult:
    """Benchmark every available backend and precision on the same inputs (the library behind ``pawlens-bench``).

    Args:
        checkpoint: a pawlens checkpoint; ``None`` builds the embedded default (untrained ResNet50, 2 classes, 224 px,
            or the architecture/size/classes of the first ``models`` file).
        models: exported files (``.onnx``, ``.engine``) to time; ``()`` exports fp32 + INT8 ONNX (and, on a GPU with
            TensorRT, an FP16 engine) from the checkpoint into a temporary folder.
        batch_sizes: batch sizes to time.
        iters: the rounds method's timed calls per row; ``warmup``: untimed calls per row and batch first.
        method: ``burst`` (default: per round, each row makes one call after idle, its ``cold`` figure, then calls back to
            back for ``burst_ms`` and at least ``min_calls`` calls, the steady figures behind p50) or ``rounds`` (the earlier
            method: ``round_iters`` calls per row per round, ``pause_ms`` apart, every call timed).
        rounds: bursts per row and batch (burst method).
        peers: run each row's runtime's own tool beside it (OpenVINO's ``benchmark_app``, a bare ONNX Runtime session loop,
            ``trtexec`` where installed) ``peer_runs`` times for ``peer_s`` seconds each, the runs spread over the rounds,
            and flag a row more than 10% from the median of their medians.
        threads: CPU threads per backend (``None``: each backend's default, all cores).
        out: output folder (default ``runs/bench/NAME``, numbered if it exists).
        images: real photos for agreement, accuracy and INT8 calibration: a folder (class-named subfolders or
            Kaggle-flat names give labels), a list of image paths, or a training run's ``split.json`` (its test
            photos); default: synthetic frames.
        n_images: how many agreement images (as many again for calibration when artifacts are exported here); ``None``:
            32, or with ``models`` from a pawlens export and no ``images``, every test photo their export gated on
            (its ``parity.json`` names the training run's ``split.json``): the rows are then judged on the same photos.
        backends: restrict to these backends (``torch``, ``ort``, ``openvino``, ``trt``).
        device: ``auto`` (CPU rows, plus CUDA rows where a GPU is visible), ``cpu`` or ``cuda``.
        isolation: ``process`` (each row in its own worker process) or ``inline``.
        round_iters: timed calls per row per round of the interleaving.
        pause_ms: pause between two workers' turns (lets idle thread pools fall asleep).
        cam: also measure Grad-CAM against one PyTorch fp32 forward, and the runtime's own overhead.
        spinning: let thread pools spin (ONNX Runtime ``allow_spinning``; OpenMP active waiting in the workers);
            off by default, as in the product's runners.
        keep_models: keep the exported files in ``OUT/models`` instead of deleting them.
        compile: ``False``/``"off"`` (default: no torch.compile rows), ``auto`` (also time PyTorch fp32 and bf16 through
            ``torch.compile`` where a C++ compiler is found) or ``True``/``"on"`` (and fail those rows without one).
            Compilation happens in the warm-up and is reported, not timed.
        write: write bench.json/csv/md/png (and pareto.png when rows have an accuracy).
        checkpoints: more trained checkpoints to compare in the same run (for example the baseline beside the
            transfer model): each gets a PyTorch fp32 eager row, and each ``models`` file is compared with the
            checkpoint it was exported from (its ``source_sha256``).  With labelled photos, every row gets a test
            accuracy, and ``pareto.png`` plots accuracy against batch-1 latency for every model x precision x backend.
        latency_reference: an untrained model of this architecture timed in PyTorch fp32 eager beside the others
            (``resnet50``, the CLI's default: the usual yardstick), for latency ratios across architectures; ``None``: none.
    """
    from pawlens.runtime.factory import file_kind, read_meta

    gates, images, n_images = _export_sample(models, images, n_images)
    opt = check_options(batch_sizes=batch_sizes, iters=iters, warmup=warmup, round_iters=round_iters, isolation=isolation, device=device,
                        backends=backends, n_images=n_images, compile=compile, pause_ms=pause_ms, threads=threads, spinning=spinning,
                        cam=cam, progress=progress, method=method, rounds=rounds, burst_ms=burst_ms, min_calls=min_calls, peers=peers,
                        peer_s=peer_s, peer_runs=peer_runs)
    notes: list[str] = []
    cuda, devices = _devices(opt, notes)
    load_start, t_start = machine.load_average(), time.perf_counter()
    checks = [machine.load_check(when="before the run")]
    metas = {}
    bad: list[str] = []
    for p in models:  # a damaged or foreign file loses its rows, not the run
        try:
            file_kind(p)
            metas[os.fspath(p)] = read_meta(p)
        except PawlensError as e:
            bad.append(str(e))
            notes.append(f"skipped {os.fspath(p)}: {e}")
            LOG.warning("[bench] skipped %s: %s", os.fspath(p), e)
    if models and not metas:
        raise ArtifactError(f"none of the --models could be read: {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    workdir = tempfile.mkdtemp(prefix="pawlens-bench-")
    try:
        m = main_model(checkpoint, metas, workdir, notes)
        add_checkpoints(m, checkpoints)
        add_latency_reference(m, latency_reference, workdir, torch_cpu="torch" in opt.wanted and "cpu" in devices)
        name = name or (f"{m.meta.arch}-default" if m.embedded else os.path.splitext(os.path.basename(m.path))[0])
        out_dir = ensure_writable_dir(out or next_run_dir(os.path.join("runs", "bench"), name)) if write else (out or "")
        model_dir = os.path.join(out_dir, "models") if keep_models and write else os.path.join(workdir, "models")
        os.makedirs(model_dir, exist_ok=True)
        inp = bench_inputs(images, opt.n_images, list(m.meta.class_names), calibrate=not models)
        arrays = preprocess_inputs(m, inp, opt.batch_sizes)
        artifacts, extra_artifacts = _artifacts(m, metas, arrays, model_dir, opt, cuda, notes)
        res = _measure(m, artifacts, extra_artifacts, arrays, opt, devices, cuda, notes, checks)
        _compare_with_export(res.rows, gates, images, notes)
        res.settings = _settings(m, opt, inp, models, cuda=cuda, load_start=load_start, t_start=t_start)
        why = machine.disturbance(checks, res.rows)
        res.settings.update(load_checks=checks, disturbed=bool(why), disturbed_why=why)
        res.out_dir = out_dir
        res.goals = analysis.evaluate_goals(res)
        if write:
            res.files = write_outputs(res, out_dir)
        return res
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _export_sample(models: Sequence[str], images, n_images: int | None) -> tuple[dict, Any, int]:
    """The gate record of each exported file (its ``parity.json``), and the photos to judge agreement on: without
    ``images``, the test photos the files' export gated them on (the run's ``split.json``), as many as it used."""
    gates = {os.path.basename(os.fspath(p)): export_gate(p) for p in models}
    if len({os.path.basename(os.fspath(p)) for p in models}) < len(models):  # two runs' best.int8.onnx: no telling which is which
        gates = {}
    split = next((g["split"] for g in gates.values() if g and g["split"]), "")
    if images is None and split:
        images = split
        if n_images is None:
            n_images = max(g["n"] for g in gates.values() if g and g["split"] == split)
    return gates, images, 32 if n_images is None else n_images


def _compare_with_export(rows, gates: dict, images, notes: list[str]) -> None:
    """Say, per row, whether its agreement was judged on the photos its export gated it on, and the export's verdict."""
    same_split = isinstance(images, (str, os.PathLike))  # a split.json path (g["split"] names one)
    for r in rows:
        g = gates.get(r.artifact)
        if not g or r.within_gate is None:
            continue
        agree = f", {100 * g['top1_agreement']:.1f}%" if isinstance(g.get("top1_agreement"), (int, float)) else ""
        r.export_gate = f"{g['status']} on {g['n']} photos{agree}"
        r.export_sample = bool(same_split and g["split"] and os.path.realpath(os.fspath(images)) == os.path.realpath(g["split"])
                               and r.agreement_n == g["n"])
    differ = sorted({r.artifact for r in rows if r.export_gate and not r.export_sample})
    if differ:
        notes.append(f"agreement of {', '.join(differ)} is judged here on other photos than their export gated them on (its "
                     "record is in the row); pass --images with the training run's split.json, and --n-images as many as its "
                     "test split holds, to judge them on the same photos")


def _artifacts(m: Models, metas, arrays: Arrays, model_dir: str, opt: Options, cuda: bool, notes: list[str]):
    """The files to time: the ``--models`` given, or fp32 + INT8 ONNX (and GPU artifacts) exported here."""
    from pawlens.runtime.factory import backend_installed

    if metas:
        return sort_given_files(m, metas, notes)
    made = export_artifacts(m.ckpt, model_dir, arrays.calib, want_ort=backend_installed("ort") or backend_installed("openvino"),
                            want_fp16=cuda and ("ort" in opt.wanted or "trt" in opt.wanted), want_trt=cuda and "trt" in opt.wanted,
                            notes=notes)
    return made, []


def _measure(m: Models, artifacts, extra_artifacts, arrays: Arrays, opt: Options, devices, cuda: bool, notes: list[str],
             checks: list[dict]) -> BenchResult:
    """Candidates -> workers -> parity -> timed rounds -> rows, extras, auto's verdict; the machine's load checked after
    each batch size (into ``checks``)."""
    cands = build_candidates(m, artifacts, extra_artifacts, opt, devices, notes)
    workers, runners, failed = schedule.start_workers(cands, lambda c: arrays.timing[c.group], isolation=opt.isolation,
                                                      spinning=opt.spinning, progress=opt.progress)
    try:
        notes += [f"{k}: CUDA was requested but ONNX Runtime runs on {', '.join(d.get('providers', []))} (fall-back)."
                  for k, d in runners.items() if d.get("fallback")]
        parity = measure_parity(m, cands, workers, runners, arrays, failed, opt, notes)
        peer_figs: dict = {}
        missing: set[str] = set()
        sizes = {g: gd["cfg"].input_size for g, gd in m.groups.items()}

        passes = peers.peer_rounds(opt.rounds if opt.method == "burst" else 1, opt.peer_runs)

        def peer_pass(b: int, r: int) -> None:  # the workers idle meanwhile; one tool run per row, --peer-runs spread over the rounds
            for _ in range(passes.count(r) if opt.peers else 0):
                peers.measure_peers([c for c in cands if c.key in workers], b, runners, sizes=sizes, opt=opt, notes=notes,
                                    missing=missing, into=peer_figs)

        def after(b: int) -> None:
            if opt.method != "burst":
                peer_pass(b, 0)
            checks.append(machine.load_check(when=f"after batch {b}"))
        timing = None
        if opt.method == "burst":
            timing = schedule.time_bursts(workers, opt.batch_sizes, rounds=opt.rounds, burst_s=opt.burst_ms / 1e3, min_calls=opt.min_calls,
                                          warmup=opt.warmup, pause_ms=opt.pause_ms, failed=failed, progress=opt.progress, after_batch=after,
                                          after_round=peer_pass)
            samples = timing.steady
        else:
            samples = schedule.time_rounds(workers, opt.batch_sizes, iters=opt.iters, warmup=opt.warmup, round_iters=opt.round_iters,
                                           pause_ms=opt.pause_ms, failed=failed, progress=opt.progress, after_batch=after)
    finally:
        notes += schedule.close_workers(workers, runners)
    rows = analysis.make_rows(cands, opt.batch_sizes, samples, failed, parity, iters=opt.iters if opt.method == "rounds" else 1,
                              model_of=lambda c: m.groups[c.group]["label"], timing=timing)
    notes += peers.apply_peers(rows, peer_figs, analysis.load_goals()["peer_tolerance"])
    analysis.set_speedups(rows, m.label)
    extras = measure_extras(m, opt, devices, notes)
    if "cpu" in devices:
        analysis.apply_ceiling(rows, extras, m.label)
    by_key = {c.key: c for c in cands}
    files = [(p, me) for p, me, _ in artifacts] + [(m.path, m.meta)]
    picks = analysis.auto_picks(files, rows, opt.batch_sizes, by_key, cuda=cuda, tolerance=analysis.load_goals()["auto_tolerance"])
    notes += analysis.agreement_notes(parity)
    return BenchResult(rows, {}, extras, [], picks, runners, notes)
