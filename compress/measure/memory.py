"""Memory of a model in use: peak RSS of a fresh process that loads the model and runs the
benchmark inputs, minus that process's RSS just before loading.

The child imports its runtime (onnxruntime or torch) and reads the inputs first, so neither
the interpreter nor the runtime library is counted in the model's figure (the library's own
share is reported beside it: what a deployment pays for choosing that runtime). The kernel's
peak counter (VmHWM) is reset just before loading through /proc/self/clear_refs, because
`ru_maxrss` is the lifetime peak and would hide a model smaller than the import spike.

    python -m compress.measure.memory --runtime ort --model M.onnx --inputs x.npz --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil  # not Linux: no /proc

    return int(psutil.Process().memory_info().rss)


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


def _maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB


def _load_runner(runtime: str, model: str, threads: int, mem_arena: bool):
    """Load the model; return a function running one batch."""
    if runtime == "ort":
        from compress.measure.ort import make_session

        session = make_session(model, threads=threads, mem_arena=mem_arena)
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})
    import torch

    from compress.artifacts import load_checkpoint
    from compress.models.checkpoint import model_from_checkpoint

    net = model_from_checkpoint(load_checkpoint(model), Path(model))

    def run(x):
        with torch.inference_mode():
            return net(torch.from_numpy(x))

    return run


def child(args: argparse.Namespace) -> dict:
    import gc

    rss_start = _rss_bytes()
    import numpy as np

    if args.runtime == "ort":
        import onnxruntime  # noqa: F401  (imported before the baseline on purpose)

        from compress.measure.ort import session_settings

        settings = session_settings(args.threads, not args.no_arena)
    else:
        import torch

        torch.set_num_threads(args.threads or os.cpu_count() or 1)
        settings = {"torch_threads": torch.get_num_threads(), "inference_mode": True}
        import compress.models.checkpoint  # noqa: F401  (model code, loaded before the baseline)
    with np.load(args.inputs, allow_pickle=False) as npz:
        batches = [np.ascontiguousarray(npz[k]) for k in sorted(npz.files)]
    gc.collect()
    rss_lib = _rss_bytes()
    reset = _reset_peak()
    maxrss_before = _maxrss_bytes()
    base = _rss_bytes()

    run = _load_runner(args.runtime, args.model, args.threads, not args.no_arena)
    rss_loaded = _rss_bytes()
    for x in batches:
        for _ in range(args.runs):
            run(x)
    after = _rss_bytes()
    if reset:
        peak, how = _status_kib("VmHWM") * 1024, "VmHWM, reset via /proc/self/clear_refs"
    else:
        peak, how = _maxrss_bytes(), "ru_maxrss (lifetime peak; could not reset)"
        if maxrss_before > base:
            how += "; the import spike exceeded the baseline, so the peak may be understated"
    return {
        "runtime": args.runtime,
        "peak_delta_bytes": max(peak - base, 0),
        "loaded_delta_bytes": rss_loaded - base,
        "retained_delta_bytes": after - base,
        "runtime_import_bytes": rss_lib - rss_start,
        "rss_before_load_bytes": base,
        "peak_rss_bytes": peak,
        "peak_method": how,
        "batch_sizes": [int(x.shape[0]) for x in batches],
        "runs_per_batch": args.runs,
        "threads": args.threads,
        "settings": settings,
    }


def measure_memory(model: str | Path, runtime: str, batches: list, threads: int = 1,
                   runs: int = 10, mem_arena: bool = True, timeout_s: float = 300) -> dict:
    """Run the child in a fresh interpreter and return its figures (see module docstring).

    Raises:
        StageError: the child failed (its last stderr line is in the message).
    """
    import numpy as np

    from compress.errors import StageError

    pkg_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [pkg_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    with tempfile.TemporaryDirectory(prefix="compress-mem-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **{f"b{i:03d}": b for i, b in enumerate(batches)})
        cmd = [sys.executable, "-m", "compress.measure.memory", "--runtime", runtime, "--model",
               str(model), "--inputs", str(inputs), "--threads", str(threads), "--runs",
               str(runs)] + ([] if mem_arena else ["--no-arena"])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  env=env)
        except subprocess.TimeoutExpired as e:
            raise StageError(f"memory measurement of {model} took over {timeout_s:g} s") from e
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise StageError(f"memory measurement of {model} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="peak RSS of loading and running one model")
    ap.add_argument("--runtime", choices=["ort", "torch"], required=True)
    ap.add_argument("--model", required=True, help="ONNX file (ort) or checkpoint (torch)")
    ap.add_argument("--inputs", required=True, help=".npz of input batches")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-arena", action="store_true", help="ORT: disable the CPU memory arena")
    print(json.dumps(child(ap.parse_args(argv))))


if __name__ == "__main__":
    main()
