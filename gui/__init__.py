"""Pawlens desktop app (PySide6): live classification with a Grad-CAM overlay.  Talks only to ``runtime``."""
