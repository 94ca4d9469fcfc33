"""Measurement in ONNX Runtime: sessions, accuracy, latency, and the machine it ran on."""
