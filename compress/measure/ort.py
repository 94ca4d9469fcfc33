"""The one place that opens ONNX Runtime sessions, plus batched inference and accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compress.errors import ArtifactError


def session_settings(threads: int = 0, mem_arena: bool = True) -> dict[str, object]:
    """The options `make_session` sets, as recorded beside every measurement."""
    return {
        "provider": "CPUExecutionProvider",
        "intra_op_num_threads": threads,
        "inter_op_num_threads": 1,
        "execution_mode": "ORT_SEQUENTIAL",
        "graph_optimization_level": "ORT_ENABLE_ALL",
        # ORT's CPU arena keeps freed blocks for reuse: faster, but peak memory stays reserved.
        "enable_cpu_mem_arena": mem_arena,
    }


def make_session(path: str | Path, threads: int = 0, mem_arena: bool = True):
    """A CPU session; `threads` = intra-op threads (0 lets ORT use every core)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = mem_arena
    opts.log_severity_level = 3
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: ONNX model not found")
    from compress.artifacts import external_files

    external_files(path)  # a missing or wrong-sized weights file: one line, before ORT's page
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
        raise ArtifactError(
            f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]}); "
            "re-export it with `compress export`"
        ) from e


def predict(session, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits for every row of `x`, run in batches (of the model's own batch size when its input
    shape is fixed, as a mobile build's is)."""
    name = session.get_inputs()[0].name
    fixed = session.get_inputs()[0].shape[0]
    if isinstance(fixed, int):
        batch = fixed
        if len(x) % fixed:  # the last batch padded with copies of the first row, then cut
            pad = np.repeat(x[:1], fixed - len(x) % fixed, axis=0)
            return predict(session, np.concatenate([x, pad]), batch)[: len(x)]
    outs = [session.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def accuracy_pct(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean() * 100)


def check_input_shape(session, sample_shape: list[int], path: str | Path) -> None:
    """Refuse a model whose declared input does not fit the data, before running it."""
    declared = session.get_inputs()[0].shape[1:]
    if len(declared) != len(sample_shape) or any(
        isinstance(d, int) and d != s for d, s in zip(declared, sample_shape, strict=True)
    ):
        raise ArtifactError(
            f"{path}: model input is {['N', *declared]} but the data's samples are "
            f"{['N', *sample_shape]}; {_data_hint(session)}"
        )


def _data_hint(session) -> str:
    """How to fix a model/data mismatch: the data the model's metadata says it was made for,
    or (a model made elsewhere) which data to give."""
    import json

    made_for = session.get_modelmeta().custom_metadata_map.get("compress.data")
    try:
        source = json.loads(made_for).get("source") if made_for else None
    except (ValueError, AttributeError):
        source = None
    where = "(`--data` on the command line, `data:` in a pipeline)"
    if source:
        return f"the model was made for data source '{source}': give that data {where}"
    return (f"give the data this model takes {where}, or a model whose input fits these "
            "samples")


def read_metadata(path: str | Path) -> dict[str, object]:
    """The model's `metadata_props`, with compress.* JSON values decoded."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ArtifactError(f"{path}: not a readable ONNX file ({e})") from e
    out: dict[str, object] = {}
    for p in model.metadata_props:
        try:
            out[p.key] = json.loads(p.value) if p.key.startswith("compress.") else p.value
        except json.JSONDecodeError:
            out[p.key] = p.value
    return out


def batch_of(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


def check_fixed_batch(path: Path, batch_sizes: list[int], where: str) -> None:
    """A model built for one batch size (`target: mobile` fixes it at 1) cannot be timed at
    another: one line naming the model and what to do, before anything is measured."""
    dim = make_session(path, threads=1).get_inputs()[0].shape[0]
    other = [b for b in batch_sizes if isinstance(dim, int) and b != dim]
    if other:
        raise ArtifactError(f"{where}: the model has a fixed batch size of {dim} and cannot be "
                            f"timed at batch size(s) {other}; bench it in a bench stage of its "
                            f"own with batch_sizes: [{dim}]")
