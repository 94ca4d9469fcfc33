"""What a measurement ran on: library versions, CPU model, and the ISA flags int8 speed needs."""

from __future__ import annotations

import functools
import os
import platform

# Flags that decide which int8/fp32 kernels ORT can use.
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8",
              "asimddp", "i8mm", "sve")


def versions() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime
    import sklearn
    import torch

    import compress

    return {
        "compress": compress.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,  # makes the data splits (and the digits set)
    }


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model Name") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu_model": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count() or 1,
        "isa": [f for f in _ISA_FLAGS if f in flags],
    }
