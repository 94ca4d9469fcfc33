"""Peer baselines: what a user would do without compress, on the same teacher and test split,
measured by the bench in the same interleaved run as the pipeline's models.

- `peer_torch_fp32`: the teacher checkpoint in PyTorch eager mode (`torch.inference_mode`,
  `torch.set_num_threads` matched to the bench's thread setting);
- the teacher's own ONNX (`peers.onnx`) in ONNX Runtime: the ORT fp32 peer;
- `peer_ort_static`: `onnxruntime.quantization.quantize_static` called with no options (QDQ,
  QInt8 activations and weights, per-tensor, MinMax), calibrated on a seeded sample of the
  training split through a `CalibrationDataReader`;
- `peer_ort_careful`: `quantize_static` as a careful user calls it, after reading ORT's
  quantization guide: `quant_pre_process` first, then QDQ with uint8 activations x int8 weights
  (U8S8, the fast pair on x86), per-channel weights, MinMax, the same calibration sample;
- `peer_ort_dynamic`: `quantize_dynamic` called with no options.

The default static peer (S8S8) is slow on x86 (0.4-0.6x fp32 measured): beating it proves
nothing; the careful peer is what compress must beat.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from compress import artifacts
from compress.errors import StageError

# (path, metadata_props) -> None: stamps a model file's metadata
SetMetadata = Callable[[Path, dict], None]

TORCH, STATIC, DYNAMIC = "peer_torch_fp32", "peer_ort_static", "peer_ort_dynamic"
CAREFUL = "peer_ort_careful"
LABELS = {
    TORCH: "PyTorch eager fp32",
    STATIC: "ORT quantize_static, defaults",
    CAREFUL: "ORT quantize_static, careful: pre-processed, QDQ U8S8, per-channel",
    DYNAMIC: "ORT quantize_dynamic, defaults",
    "ort_fp32": "ORT fp32",
}


class PeersConfig(BaseModel):
    """`peers:` of a bench stage: the teacher, as a checkpoint and as its exported ONNX."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str = Field(description="id of the checkpoint stage the peers start from")
    onnx: str = Field(description="id of the stage that exported that checkpoint (ORT fp32)")
    calibration_samples: int = Field(
        256, ge=1, description="training samples (seeded draw) for quantize_static's MinMax")


# The models a bench adds for `peers:`, besides the teacher's ONNX (which is a pipeline stage).
PEER_IDS = (TORCH, STATIC, CAREFUL, DYNAMIC)
# the keyword arguments of the careful call (besides model, output and calibration reader)
CAREFUL_ARGS = {"quant_format": "QDQ", "activation_type": "QUInt8", "weight_type": "QInt8",
                "per_channel": True}


@contextlib.contextmanager
def _quiet_root_logger():
    # onnxruntime.quantization warns on the root logger that pre-processing is advised; a user
    # calling it with defaults skips that too, which is the point of this baseline.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _defaults(fn) -> dict[str, str]:
    """The keyword defaults of an ORT quantization function, as this ORT version has them."""
    import inspect

    return {name: str(p.default) for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty and p.default is not None}


def _own_metadata(paths: dict[str, Path], fp32_onnx: Path, set_metadata: SetMetadata) -> None:
    """ORT's quantizers copy the teacher's metadata, metrics included: a peer file would claim
    the teacher's accuracy. Keep how to feed it; say what made it; its figures are in bench.json."""
    from compress.artifacts import sha256_file
    from compress.measure.ort import read_metadata

    meta = {k: v for k, v in read_metadata(fp32_onnx).items()
            if k.startswith("compress.") and k not in ("compress.metrics", "compress.source",
                                                       "compress.min_onnxruntime")}
    for name, path in paths.items():
        how = {STATIC: "quantize_static with its default options",
               DYNAMIC: "quantize_dynamic with its default options",
               CAREFUL: "quant_pre_process, then quantize_static(QDQ, U8S8, per_channel)"}[name]
        set_metadata(path, {**meta, "compress.source": {
            "made_by": f"onnxruntime.quantization: {how} (a bench peer: "
                       "its accuracy and latency are in bench.json)",
            "from_onnx_sha256": sha256_file(fp32_onnx)}})


def quantize_peers(fp32_onnx: Path, x_train: np.ndarray, samples: int, seed: int,
                   out_dir: Path, set_metadata: SetMetadata
                   ) -> tuple[dict[str, Path], dict[str, dict]]:
    """Write `peer_ort_static.onnx`, `peer_ort_careful.onnx` and `peer_ort_dynamic.onnx` under
    `out_dir`, their metadata through `set_metadata` (compress.onnx.contract's, passed in:
    measure/ imports no onnx/).

    Returns:
        (paths by peer id, what each call used: its defaults and, for static, the calibration).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    from compress.measure.ort import make_session

    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_train), size=min(samples, len(x_train)), replace=False)
    name = make_session(fp32_onnx, threads=1).get_inputs()[0].name
    x = np.ascontiguousarray(x_train[np.sort(pick)])

    class Calibration(CalibrationDataReader):
        """ORT's calibration protocol: `get_next() -> feed | None`, here batches of 32."""

        def __init__(self):
            self.feeds = iter([{name: x[i : i + 32]} for i in range(0, len(x), 32)])

        def rewind(self):
            self.__init__()

        def get_next(self):
            return next(self.feeds, None)

    reader = Calibration()
    paths = {p: out_dir / f"{p}.onnx" for p in (STATIC, CAREFUL, DYNAMIC)}
    pre = out_dir / "careful_pre_processed.onnx"
    try:
        with _quiet_root_logger():
            with artifacts.atomic_path(paths[STATIC]) as tmp:
                quantize_static(fp32_onnx, tmp, reader)
            quant_pre_process(str(fp32_onnx), str(pre))
            reader.rewind()
            with artifacts.atomic_path(paths[CAREFUL]) as tmp:
                quantize_static(pre, tmp, reader, quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                per_channel=True)
            pre.unlink()
            with artifacts.atomic_path(paths[DYNAMIC]) as tmp:
                quantize_dynamic(fp32_onnx, tmp)
    except Exception as e:  # ORT's quantizer raises plain exceptions for unsupported graphs
        raise StageError(f"peers: onnxruntime.quantization failed on {fp32_onnx} "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    _own_metadata(paths, fp32_onnx, set_metadata)
    used = {
        STATIC: {"defaults": _defaults(quantize_static), "pre_processing": "none",
                 "calibration": {"samples": len(x), "split": "train", "seed": seed,
                                 "batch_size": 32}},
        CAREFUL: {"arguments": CAREFUL_ARGS, "pre_processing": "quant_pre_process (defaults)",
                  "calibration": {"samples": len(x), "split": "train", "seed": seed,
                                  "batch_size": 32, "method": "MinMax"}},
        DYNAMIC: {"defaults": _defaults(quantize_dynamic), "pre_processing": "none"},
    }
    return paths, used


def check_peer_onnx(onnx_path: Path, checkpoint_sha256: str, onnx_id: str, ckpt_id: str) -> None:
    """The ORT fp32 peer must be the export of the peers' checkpoint, or ratios would lie."""
    from compress.measure.ort import read_metadata

    source = read_metadata(onnx_path).get("compress.source") or {}
    if isinstance(source, dict) and source.get("checkpoint_sha256") not in (None,
                                                                            checkpoint_sha256):
        raise StageError(f"peers: '{onnx_id}' was not exported from '{ckpt_id}' (its metadata "
                         "names another checkpoint); set peers.onnx to that checkpoint's export")


class TorchCandidate:
    """The PyTorch eager peer as the latency and energy harnesses see it: `bind(x)` returns a
    zero-argument callable; run it inside `settings(threads)`."""

    def __init__(self, checkpoint: Path):
        import torch

        from compress.models.checkpoint import model_from_checkpoint

        self.torch = torch
        self.model = model_from_checkpoint(artifacts.load_checkpoint(checkpoint), checkpoint)

    def bind(self, x: np.ndarray):
        import functools

        # partial: the module's __call__ is the first Python frame, as in a user's loop.
        return functools.partial(self.model, self.torch.from_numpy(x))

    def predict(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        with self.settings(0):
            return np.concatenate([self.model(self.torch.from_numpy(x[i : i + batch])).numpy()
                                   for i in range(0, len(x), batch)])

    @contextlib.contextmanager
    def settings(self, threads: int):
        """Threads matched to the ORT setting (0 = every core) and inference mode."""
        torch = self.torch
        before = torch.get_num_threads()
        torch.set_num_threads(threads or os.cpu_count() or 1)
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(before)
