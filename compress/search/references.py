"""The points a search's front is drawn against (the teacher, a hand-tuned student): each one's
ORT val accuracy and p50, timed interleaved with the pick's graph in one run, at the search's
batch and threads, so the ratio pick / reference holds even on a loaded machine."""

from __future__ import annotations

import tempfile
from pathlib import Path


def measure_references(refs: dict[str, tuple[str, Path]], pick_graph: Path | None, data,
                       batch: int, threads: int, time_s: float) -> dict[str, dict]:
    """{name: {val_accuracy_pct, p50_ms, pick_p50_ms, size_bytes}} for `refs` ({name: (kind,
    path)}: a checkpoint is exported to a temporary fp32 graph first)."""
    import torch

    from compress.measure.latency import measure_interleaved
    from compress.measure.ort import accuracy_pct, batch_of, make_session, predict
    from compress.onnx.external import model_size_bytes
    from compress.onnx.quick import quick_export
    from compress.trainer.distillation import load_model

    if not refs:
        return {}
    with tempfile.TemporaryDirectory(prefix="compress-search-ref-") as tmp:
        paths = {}
        for name, (kind, path) in refs.items():
            if kind == "checkpoint":
                model, _ = load_model(Path(path), data.input_shape, role=f"reference {name}")
                path = Path(tmp) / f"{name}.onnx"
                quick_export(model.cpu().eval(), torch.as_tensor(data.x_test[:2]), path)
            paths[name] = Path(path)
        if pick_graph is not None:
            paths["__pick__"] = pick_graph
        sessions = {n: make_session(p, threads) for n, p in paths.items()}
        x = batch_of(data.x_val, batch)
        stats = measure_interleaved(sessions, {n: {"input": x} for n in sessions},
                                    warmup_runs=10, min_runs=50, min_time_s=time_s,
                                    max_time_s=20 * time_s)
        pick_p50 = stats["__pick__"].p50_ms if pick_graph is not None else None
        return {n: {"val_accuracy_pct": accuracy_pct(predict(sessions[n], data.x_val),
                                                     data.y_val),
                    "p50_ms": round(stats[n].p50_ms, 5),
                    "pick_p50_ms": None if pick_p50 is None else round(pick_p50, 5),
                    "size_bytes": model_size_bytes(paths[n])}
                for n in refs}
