"""ONNX Runtime's own file format (.ort, for mobile and reduced builds): conversion with
onnxruntime's tool and the check that both files predict alike."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from compress.errors import StageError
from compress.measure import ort as ort_measure
from compress.onnx.external import copy_model


def convert_to_ort(onnx_path: Path, out_dir: Path, source: dict | None = None,
                   runtime_optimizations: bool = False, extra_meta: dict | None = None
                   ) -> tuple[Path, Path]:
    """Convert with onnxruntime's tool ('Fixed' optimizations, no NCHWc: portable across CPUs);
    returns (model.ort, model.required_operators.config) under `out_dir`. The .ort keeps the
    ONNX file's metadata, with `compress.source` replaced by `source` when given, `extra_meta`
    added and the oldest runtime set to this one (older runtimes need not read a newer ORT
    format). `runtime_optimizations`: ORT's 'Runtime' style, which ORT recommends for NNAPI and
    CoreML: the graph keeps its QDQ node groups for those EPs, and the fusions the CPU EP would
    make are saved beside it and applied only to the nodes the CPU EP ends up running."""
    import onnxruntime as ort
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    from compress.onnx.contract import set_metadata
    from compress.onnx.ort_compat import min_onnxruntime

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".convert-") as tmp:
        src = Path(tmp) / "model.onnx"
        copy_model(onnx_path, src)  # with its external weights file, if any
        meta = ort_measure.read_metadata(src)
        if source is not None:
            meta["compress.source"] = source
        meta.update(extra_meta or {})
        style = OptimizationStyle.Runtime if runtime_optimizations else OptimizationStyle.Fixed
        meta["compress.format"] = {
            "format": "ort", "converter": "onnxruntime.tools."
            f"convert_onnx_models_to_ort (onnxruntime {ort.__version__})",
            "optimization": ("Runtime: basic level saved, the rest recorded for the CPU EP"
                             if runtime_optimizations else "Fixed, level all, no NchwcTransformer")}
        set_metadata(src, meta, min_ort=min_onnxruntime(0, {}, ort_format_by=ort.__version__))
        chatter = io.StringIO()
        # The tool narrates on stdout and logs at INFO where it wrote the config: not news here.
        logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                convert_onnx_models_to_ort(src, Path(tmp) / "out",
                                           optimization_styles=[style])
        except Exception as e:  # the converter raises whatever ORT raised
            raise StageError(f"{onnx_path}: onnxruntime's ORT-format converter failed "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
        made = Path(tmp) / "out"
        opt = ".with_runtime_opt" if runtime_optimizations else ""
        ort_file = made / f"model{opt}.ort"
        config = made / f"model.required_operators{opt}.config"
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
