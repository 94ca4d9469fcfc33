"""ONNX tools: export contract and metadata, ORT quantization, inspection, ORT version matrix.
Named like the library it wraps; `import onnx` inside still means the top-level package."""
