"""compress: train, distill, prune, quantize, export to ONNX and benchmark in ONNX Runtime."""

__version__ = "0.1.0"
