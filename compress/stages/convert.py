"""Stage `convert`: an ONNX model -> ORT format, for onnxruntime's mobile and reduced builds.

Consumes an ONNX model (an `export`, `quantize` or `qat` stage); produces `model.ort`, written
by onnxruntime's own converter (`onnxruntime.tools.convert_onnx_models_to_ort`), and
`model.required_operators.config`, the operator list to build a reduced runtime with
(`build.sh --include_ops_by_config`). The .ort must predict exactly what the .onnx predicts on
the test split, else StageError.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from compress.errors import StageError
from compress.measure import ort as ort_measure
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage

METRICS = ("test_accuracy_pct", "onnx_test_accuracy_pct", "identical_predictions",
           "max_abs_diff", "size_bytes", "onnx_size_bytes")


class ConvertConfig(StageConfig):
    stage: Literal["convert"] = "convert"
    input: str = Field(description="id of the stage whose ONNX model is converted")
    format: Literal["ort"] = Field("ort", description="target format: ort (ONNX Runtime's "
                                   "flatbuffer format for mobile and reduced builds)")

    references = {"input": {"onnx"}}


def convert_to_ort(onnx_path: Path, out_dir: Path, source: dict | None = None
                   ) -> tuple[Path, Path]:
    """Convert with onnxruntime's tool ('Fixed' optimizations, no NCHWc: portable across CPUs);
    returns (model.ort, model.required_operators.config) under `out_dir`. The .ort keeps the
    ONNX file's metadata, with `compress.source` replaced by `source` when given and the
    oldest runtime set to this one (older runtimes need not read a newer ORT format)."""
    import onnxruntime as ort
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    from compress.ort_compat import min_onnxruntime
    from compress.stages.export import set_metadata

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".convert-") as tmp:
        src = Path(tmp) / "model.onnx"
        shutil.copyfile(onnx_path, src)
        meta = ort_measure.read_metadata(src)
        if source is not None:
            meta["compress.source"] = source
        meta["compress.format"] = {"format": "ort", "converter": "onnxruntime.tools."
                                   f"convert_onnx_models_to_ort (onnxruntime {ort.__version__})",
                                   "optimization": "Fixed, level all, no NchwcTransformer"}
        set_metadata(src, meta, min_ort=min_onnxruntime(0, {}, ort_format_by=ort.__version__))
        chatter = io.StringIO()
        # The tool narrates on stdout and logs at INFO where it wrote the config: not news here.
        logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                convert_onnx_models_to_ort(src, Path(tmp) / "out",
                                           optimization_styles=[OptimizationStyle.Fixed])
        except Exception as e:  # the converter raises whatever ORT raised
            raise StageError(f"{onnx_path}: onnxruntime's ORT-format converter failed "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
        made = Path(tmp) / "out"
        ort_file, config = made / "model.ort", made / "model.required_operators.config"
        if not ort_file.is_file() or not config.is_file():
            raise StageError(f"{onnx_path}: the converter wrote no .ort file "
                             f"({chatter.getvalue().strip()[-200:]})")
        # The config names the temporary path it was generated from; name the real file.
        text = config.read_text().replace(str(ort_file), "model.ort")
        ort_out, config_out = out_dir / "model.ort", out_dir / "model.required_operators.config"
        shutil.move(str(ort_file), ort_out)
        config_out.write_text(text)
    return ort_out, config_out


def compare_predictions(onnx_path: Path, ort_path: Path, x: np.ndarray, y: np.ndarray) -> dict:
    """Test accuracy of both files and whether every prediction is the same."""
    a = ort_measure.predict(ort_measure.make_session(onnx_path, 1), x)
    b = ort_measure.predict(ort_measure.make_session(ort_path, 1), x)
    return {"test_accuracy_pct": ort_measure.accuracy_pct(b, y),
            "onnx_test_accuracy_pct": ort_measure.accuracy_pct(a, y),
            "identical_predictions": bool((a.argmax(1) == b.argmax(1)).all()),
            "max_abs_diff": float(np.abs(a - b).max())}


@register_stage(ConvertConfig, produces="ort", metrics=lambda cfg: METRICS)
def convert(cfg: ConvertConfig, ctx: StageContext) -> StageResult:
    src = ctx.inputs[cfg.input]
    data = ctx.dataset()
    ort_measure.check_input_shape(ort_measure.make_session(src.path, 1), data.input_shape,
                                  src.path)
    from compress.stages.export import source_of

    ort_path, _ = convert_to_ort(src.path, ctx.out_dir,
                                 source_of(ctx, src, onnx_sha256=src.sha256))
    metrics = compare_predictions(src.path, ort_path, data.x_test, data.y_test)
    if not metrics["identical_predictions"]:
        raise StageError(f"{ort_path}: the ORT-format model predicts differently from "
                         f"{src.path} on the test split (max |diff| of logits "
                         f"{metrics['max_abs_diff']:.3g}); keep shipping the .onnx")
    metrics["size_bytes"] = ort_path.stat().st_size
    metrics["onnx_size_bytes"] = src.path.stat().st_size
    return StageResult(primary="model.ort", metrics=metrics)
