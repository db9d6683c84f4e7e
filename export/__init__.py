"""Pawlens export: checkpoint -> ONNX -> FP16 / INT8 ONNX -> TensorRT engine, each gated by numerical parity."""
