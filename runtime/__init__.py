"""Pawlens runtime: one Runner contract, one backend per file, Predictor, parity (the benchmarks are in bench/).

``import runtime`` never imports onnxruntime, openvino or tensorrt: each backend imports its library
in ``activate()`` and raises :class:`~pawlens.errors.BackendUnavailable` naming the extra to install.
"""
