"""Runtimes beside Python onnxruntime (OpenVINO, onnxruntime-web in Node) behind one small
interface (`base.Runtime`), and the per-runtime comparison `bench` reports (`compare.py`)."""

from __future__ import annotations

RUNTIME_NAMES = ("onnxruntime", "openvino", "onnxruntime-web")


def get_runtime(name: str):
    """The adapter of a runtime named in `runtimes:` (names validated by the bench config)."""
    if name == "onnxruntime":
        from compress.measure.runtimes.ort import Onnxruntime

        return Onnxruntime()
    if name == "openvino":
        from compress.measure.runtimes.openvino import Openvino

        return Openvino()
    if name == "onnxruntime-web":
        from compress.measure.runtimes.ortweb import OrtWeb

        return OrtWeb()
    from compress.errors import ConfigError

    raise ConfigError(f"unknown runtime {name!r}; use one of {', '.join(RUNTIME_NAMES)}")
