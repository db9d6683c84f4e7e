"""Pawlens benchmarks, in one place: the runtimes side by side (``pawlens bench``), the desktop app on a clip
(``pawlens bench-gui``, :mod:`.gui`) and training throughput (``pawlens bench-train``, :mod:`.train_speed`).

The runtime bench is split by role:

* :mod:`.inputs`: the photos (or synthetic frames) every row sees, sampled and labelled by one rule;
* :mod:`.candidates`: the rows to time, from the formats table (:mod:`pawlens.runtime.formats`);
* :mod:`.harness`: one worker process (or an inline worker) per row, built with ``make_runner``;
* :mod:`.schedule`: warm-up, then interleaved timed rounds over the workers: raw samples;
* :mod:`.analysis`: rows from the samples, parity per row, the compute ceilings, auto's verdict, the goals
  (read from ``goals.json``);
* :mod:`.report`: bench.json / bench.csv / bench.md (from a :class:`~pawlens.document.Document`) / bench.png;
* :mod:`.run`: :func:`~.run.run_bench`, the library call; :mod:`.cli`: ``pawlens-bench``.

This package imports nothing heavy: worker processes import :mod:`pawlens.bench.harness` first.
"""
