"""Stage `embed_quantize`: int8 sentence encoder, static or dynamic chosen by measurement.

Consumes an `embed_export` ONNX model and the `pretrained` teacher's embeddings; produces
`model.onnx` (int8, same inputs, outputs and metadata) and `candidates.json`. Every candidate
(each float graph the export kept, see `embed_export`'s `layernorm: measure`, x each mode) is
built, its cosine to the teacher measured in ONNX Runtime on the val sentences and
its latency at batch 1 interleaved with the others; the fastest candidate that keeps the cosine
within `max_cosine_drop` of the float model wins (else the most faithful one).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from compress import artifacts
from compress.errors import StageError
from compress.measure import ort as ort_measure
from compress.onnx.quantization import CalibrationConfig, Quantizer, Setting, preprocess
from compress.stages.base import StageConfig, StageContext, StageResult, register_stage
from compress.stages.text import text_corpus
from compress.text.corpus import teacher_embeddings
from compress.text.timing import CandidateTiming, time_candidates

SETTINGS = {
    "dynamic": Setting("dynamic", "uint8", "qoperator", per_channel=True),
    "static": Setting("static", "uint8", "qdq", per_channel=True),
}


class EmbedQuantizeConfig(StageConfig, CandidateTiming):
    stage: Literal["embed_quantize"] = "embed_quantize"
    input: str = Field(description="id of the embed_export stage to quantize")
    teacher: str = Field(description="id of the pretrained stage whose embeddings are the target")
    modes: list[Literal["dynamic", "static"]] = Field(
        ["dynamic", "static"], min_length=1, description="candidates, measured side by side")
    calibration: CalibrationConfig = Field(
        default_factory=lambda: CalibrationConfig(samples=256, batch_size=16),
        description="static only: train sentences whose activations set the int8 ranges")
    max_cosine_drop: float = Field(0.01, ge=0, le=2,
                                   description="val cosine a candidate may lose vs the fp32 model")

    data_kind = "text"
    references = {"input": {"onnx"}, "teacher": {"checkpoint"}}


def metric_names(cfg: EmbedQuantizeConfig) -> list[str]:
    # Per-candidate figures (graphs x modes: known only once the export ran) are in
    # candidates.json; these are known before the run, so gates can name them.
    return ["chosen", "graph", "mode", "val_cosine", "test_cosine", "size_bytes", "p50_ms",
            "fp32.val_cosine", "fp32.p50_ms", "candidates"]


def float_graphs(src_path: Path, meta: dict) -> dict[str, Path]:
    """The float graphs to quantize: every candidate `embed_export` kept under candidates/
    (it measured several), else the one model it wrote."""
    folder = src_path.parent / "candidates"
    found = {p.stem: p for p in sorted(folder.glob("*.onnx"))} if folder.is_dir() else {}
    chosen = (meta.get("compress.metrics") or {}).get("layernorm", "export")
    return found or {chosen: src_path}


def activation_matmuls(path) -> list[str]:
    """Names of the MatMul nodes with no constant input: attention's scores (Q K^T) and mix
    (P V). Static int8 leaves them, and every non-MatMul op, in float: per-tensor ranges
    calibrated on a few sentences cannot hold softmax outputs, the attention mask's large
    negative bias and LayerNorm inputs at once (quantizing every op cost 0.21 val cosine)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    consts = {i.name for i in graph.initializer}
    consts |= {n.output[0] for n in graph.node if n.op_type == "Constant"}
    return [n.name for n in graph.node
            if n.op_type == "MatMul" and not any(i in consts for i in n.input)]


@register_stage(EmbedQuantizeConfig, produces="onnx", metrics=metric_names)
def embed_quantize(cfg: EmbedQuantizeConfig, ctx: StageContext) -> StageResult:
    import numpy as np

    from compress.onnx.contract import set_metadata
    from compress.onnx.quantization import calibration_sample
    from compress.text.encoder import copy_tokenizer, load_tokenizer, ort_embed, tokenize
    from compress.text.metrics import mean_cosine

    src = ctx.inputs[cfg.input]
    targets = teacher_embeddings(ctx.inputs[cfg.teacher].path)
    corpus = text_corpus(ctx)
    copy_tokenizer(src.path.parent, ctx.out_dir)
    meta = ort_measure.read_metadata(src.path)
    max_length = (meta.get("compress.preprocessing") or {}).get("max_length", 128)
    tok = load_tokenizer(ctx.out_dir, max_length)
    work = ctx.out_dir / "work"
    work.mkdir()
    # One shape for the whole calibration set (padded to its longest sentence).
    calib = calibration_sample(np.array(corpus.train, dtype=object), cfg.calibration).tolist()
    ids, mask = tokenize(tok, calib)
    paths, settings, failed = {"fp32": src.path}, {}, {}
    for graph, float_path in float_graphs(src.path, meta).items():
        pre = work / f"{graph}.pre.onnx"
        try:
            preprocess(float_path, pre, symbolic_shapes=False)
        except StageError as e:
            failed.update({f"{graph}.{mode}": str(e) for mode in cfg.modes})
            continue
        (work / graph).mkdir()
        quantizer = Quantizer(pre, work / graph, cfg.calibration,
                              {"input_ids": ids, "attention_mask": mask}, None)
        for mode in cfg.modes:
            name = f"{graph}.{mode}"
            try:
                # Static: the weight MatMuls only (see activation_matmuls). Dynamic keeps ORT's
                # default op set (MatMul, Gather, Attention): ranges measured on each input.
                paths[name] = quantizer.quantize(
                    SETTINGS[mode], work / f"{name}.onnx",
                    exclude=activation_matmuls(pre) if mode == "static" else (),
                    op_types=["MatMul"] if mode == "static" else None)
                settings[name] = SETTINGS[mode]
            except StageError as e:  # one graph ORT cannot quantize leaves the others
                failed[name] = str(e)
    if not settings:
        raise StageError(f"no int8 candidate could be built: {'; '.join(failed.values())}")
    sessions = {n: ort_measure.make_session(p, threads=cfg.threads) for n, p in paths.items()}
    val_cos = {n: mean_cosine(ort_embed(s, tok, corpus.val), targets["val"])
               for n, s in sessions.items()}
    lat, tokens = time_candidates(sessions, tok, corpus.val, cfg)
    ok = [n for n in settings if val_cos[n] >= val_cos["fp32"] - cfg.max_cosine_drop]
    chosen = (min(ok, key=lambda n: lat[n].p50_ms) if ok
              else max(settings, key=lambda n: val_cos[n]))
    test_cos = mean_cosine(ort_embed(sessions[chosen], tok, corpus.test), targets["test"])
    del sessions
    candidates = {n: {"setting": settings[n].name if n in settings else "fp32",
                      "val_cosine": val_cos[n], "size_bytes": paths[n].stat().st_size,
                      "latency": lat[n].as_dict(),
                      "eligible": n in ok if n in settings else None} for n in paths}
    candidates.update({n: {"failed": why} for n, why in failed.items()})
    artifacts.write_json(ctx.out_dir / "candidates.json", {
        "chosen": chosen, "rule": f"fastest p50 at batch 1, {tokens} tokens, "
        f"{cfg.threads} thread(s), among val cosine >= fp32 - {cfg.max_cosine_drop}",
        "candidates": candidates})
    out = ctx.out_dir / "model.onnx"
    shutil.copyfile(paths[chosen], out)
    shutil.rmtree(work)
    graph, mode = chosen.rsplit(".", 1)
    metrics = {"chosen": chosen, "graph": graph, "mode": mode, "val_cosine": val_cos[chosen],
               "test_cosine": test_cos, "p50_ms": lat[chosen].p50_ms,
               "fp32.val_cosine": val_cos["fp32"], "fp32.p50_ms": lat["fp32"].p50_ms,
               "candidates": len(settings)}
    meta["compress.metrics"] = metrics
    meta["compress.quantization"] = {"chosen": settings[chosen].name, "graph": graph,
                                     "candidates": candidates}
    meta["compress.source"] = {"pipeline": ctx.pipeline, "stage": ctx.stage_id,
                               "from_stage": src.stage_id, "onnx_sha256": src.sha256}
    set_metadata(out, meta)
    metrics["size_bytes"] = out.stat().st_size
    return StageResult(primary="model.onnx", metrics=metrics)
