"""The inputs of `compress explain`: ONNX models (a checkpoint where occlusion needs ONNX is
refused, in one line), the teacher's checkpoint and the data the first model records."""

from __future__ import annotations

from pathlib import Path


def explain_inputs(models: tuple[Path, ...], teacher: Path, checkpoints: tuple[Path, ...],
                   data) -> tuple[dict, object]:
    """({input name: Artifact}, data config). Models are named m0, m1, ...; the extra
    checkpoints c0, c1, ...; the teacher checkpoint `teacher`."""
    import zipfile

    from compress import artifacts
    from compress.cli.stage import data_config
    from compress.errors import ConfigError
    from compress.measure.ort import read_metadata
    from compress.stages import Artifact

    names = {}
    for i, path in enumerate(models):
        if not path.is_file():
            raise ConfigError(f"compress explain: {path}: ONNX model not found")
        if zipfile.is_zipfile(path):
            raise ConfigError(f"compress explain: {path} is a checkpoint, but occlusion runs the "
                              "model in ONNX Runtime; export it first (`compress export "
                              f"{path} --out DIR`) and pass DIR/model.onnx")
        names[f"m{i}"] = Artifact(f"m{i}", "onnx", path, artifacts.sha256_file(path))
    for i, path in enumerate(checkpoints):
        names[f"c{i}"] = Artifact(f"c{i}", "checkpoint", path, artifacts.sha256_file(path))
    if not teacher.is_file():
        raise ConfigError(f"compress explain: option --teacher: {teacher}: checkpoint not found")
    artifacts.load_checkpoint(teacher)  # a bad file fails here, in one line, before any work
    names["teacher"] = Artifact("teacher", "checkpoint", teacher, artifacts.sha256_file(teacher))
    if data is None:
        data = read_metadata(models[0]).get("compress.data")
        if data is None:
            raise ConfigError(f"compress explain: {models[0]} carries no data spec in its "
                              "metadata; pass --data")
    return names, data_config(data, "compress explain: option ")
