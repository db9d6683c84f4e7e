"""Pawlens demo: the main job end to end (train -> export -> parity -> bench -> report)."""
