"""ONNX models made elsewhere, checked before use (`import` stage, `distill` from an ONNX
teacher). The teacher that runs such a file in training is `compress.trainer.ort_teacher`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.errors import ConfigError


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file a stage names, for its cache key (new bytes rerun it); None if absent."""
    from compress.artifacts import sha256_file

    return sha256_file(path) if Path(path).is_file() else None


def check_foreign_onnx(path: str | Path, data, field: str = "onnx") -> dict:
    """Refuse a file that cannot stand in for a model of this data: unreadable or truncated,
    failing onnx.checker, not loading in ORT, no float input, an input that does not fit the
    samples, a fixed batch axis, or outputs other than logits of the data's classes.
    Returns what was learned (input name, opset, ...). Errors start with the field."""
    import onnx

    from compress.measure import ort as ort_measure

    path = Path(path)
    where = f"field '{field}': {path}"
    if not path.is_file():
        raise ConfigError(f"{where}: ONNX file not found")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf DecodeError for truncated files, ValidationError, ...
        first = (str(e).splitlines() or [""])[0][:160]
        raise ConfigError(f"{where}: not a valid ONNX model ({type(e).__name__}: {first}); "
                          "is the file complete?") from e
    try:
        session = ort_measure.make_session(path, threads=1)
    except Exception as e:
        raise ConfigError(f"{where}: {e}") from e
    inputs = session.get_inputs()
    floats = [i for i in inputs if i.type == "tensor(float)"]
    if len(inputs) != 1 or not floats:
        listed = ", ".join(f"{i.name} {i.type}" for i in inputs)
        raise ConfigError(f"{where}: needs exactly one float32 input (the samples), it has: "
                          f"{listed or 'none'}")
    shape = inputs[0].shape
    if len(shape) != 1 + len(data.input_shape) or any(
            isinstance(d, int) and d != s for d, s in zip(shape[1:], data.input_shape,
                                                          strict=True)):
        raise ConfigError(f"{where}: its input is shaped {shape} but the data's samples are "
                          f"{['batch', *data.input_shape]}")
    if isinstance(shape[0], int):
        raise ConfigError(f"{where}: its batch axis is fixed at {shape[0]}; compress runs "
                          "batches of several sizes: export it with a dynamic batch axis")
    out = session.run(None, {inputs[0].name: data.x_test[:2]})[0]
    if list(np.shape(out)) != [2, data.num_classes]:
        raise ConfigError(f"{where}: its first output is shaped {list(np.shape(out))} for 2 "
                          f"samples; it must be logits of the data's {data.num_classes} classes")
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    return {"input_name": inputs[0].name, "input_shape": [str(d) for d in shape],
            "output_name": session.get_outputs()[0].name, "opset": opsets.get("ai.onnx"),
            "producer": f"{model.producer_name} {model.producer_version}".strip()}
