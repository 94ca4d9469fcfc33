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


# Used when neither sysfs nor sysconf tells the cache sizes: a generous last-level cache of a
# desktop or one server socket, so that evicting "more than the LLC" still holds on most CPUs.
FALLBACK_CACHES = {"l1d_bytes": 48 << 10, "l2_bytes": 2 << 20, "l3_bytes": 32 << 20}


@functools.lru_cache(maxsize=1)
def cache_sizes() -> dict:
    """Per-core data cache sizes in bytes (`l1d_bytes`, `l2_bytes`, `l3_bytes`: the last level
    this core shares) and `source`: "sysfs", "getconf" (or sysctl), or "fallback" (a stated
    guess)."""
    found = _sysfs_caches()
    source = "sysfs"
    if not found.get("l2_bytes") and not found.get("l3_bytes"):
        found, source = _command_caches(), "getconf"
    if not found.get("l2_bytes") and not found.get("l3_bytes"):
        return {**FALLBACK_CACHES, "source": "fallback"}
    # A CPU without an L3 (many ARM cores): its L2 is the last level.
    return {"l1d_bytes": found.get("l1d_bytes", 0), "l2_bytes": found.get("l2_bytes", 0),
            "l3_bytes": found.get("l3_bytes", 0), "source": source}


def _size_bytes(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG") or 0) * scale


def _sysfs_caches() -> dict:
    import glob

    out = {}
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            level = int(open(f"{d}/level").read())
            kind = open(f"{d}/type").read().strip()
            size = _size_bytes(open(f"{d}/size").read())
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or level not in (1, 2, 3) or size <= 0:
            continue
        out["l1d_bytes" if level == 1 else f"l{level}_bytes"] = size
    return out


def _command_caches() -> dict:
    """glibc's `getconf` (Linux containers without sysfs) or macOS's `sysctl`."""
    import subprocess

    queries = {"l1d_bytes": ("LEVEL1_DCACHE_SIZE", "hw.l1dcachesize"),
               "l2_bytes": ("LEVEL2_CACHE_SIZE", "hw.l2cachesize"),
               "l3_bytes": ("LEVEL3_CACHE_SIZE", "hw.l3cachesize")}
    out = {}
    for key, (getconf, sysctl) in queries.items():
        for cmd in (["getconf", getconf], ["sysctl", "-n", sysctl]):
            try:
                text = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout
                value = int(text.strip() or 0)
            except (OSError, ValueError, subprocess.SubprocessError):
                continue
            if value > 0:
                out[key] = value
                break
    return out
