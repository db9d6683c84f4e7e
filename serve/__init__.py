"""Serving past one process: a Triton model repository from an export (:mod:`.repository`), the real Triton server
started and stopped (:mod:`.server`, ``pawlens serve``), the Python-backend model it runs (:mod:`.model`) and the
client runner that ``pawlens predict --server`` and ``pawlens bench --server`` use (:mod:`.client`)."""
