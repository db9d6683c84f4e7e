"""Pawlens training: data layouts and splits, the training loop (two-phase transfer), evaluation and reports."""
