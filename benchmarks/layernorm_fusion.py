"""Is ONNX Runtime's fused SkipLayerNormalization faster than the Add + LayerNormalization it
replaces, on this machine?

(a) A one-op graph, `LayerNormalization(x + y)` over batch x 128 x 384, as written (ORT fuses it
into SkipLayerNormalization) and with `compress.text.graph.unfuse_skip_layernorm` applied (ORT
leaves Add and LayerNormalization apart); (b) optionally, exported sentence encoders given on
the command line, each as exported and rewritten, fed 128 random token ids. Each pair is timed
interleaved with ORT's default graph optimisations, 1 thread, batch 1.

    python benchmarks/layernorm_fusion.py [ENCODER.onnx ...] [--time 3]

Writes benchmarks/results/layernorm_fusion.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from compress.measure.latency import measure_interleaved
from compress.measure.ort import make_session
from compress.measure.system import cpu_info, versions
from compress.text.graph import unfuse_skip_layernorm

HERE = Path(__file__).resolve().parent


def add_layernorm_graph(hidden: int = 384) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    shape = ["batch", 128, hidden]  # fixed inner dims, as the fusion requires
    init = [helper.make_tensor(n, TensorProto.FLOAT, [hidden],
                               rng.standard_normal(hidden).astype(np.float32).tolist())
            for n in ("gamma", "beta")]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["s"]),
         helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["out"], axis=-1,
                          epsilon=1e-12)],
        "add_layernorm",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "y")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def optimized_ops(path: Path) -> list[str]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(path.with_suffix(".optimized.onnx"))
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sorted({n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node})


def compare(model: onnx.ModelProto, feed: dict, work: Path, name: str, seconds: float) -> dict:
    plain, rewritten = work / f"{name}-fused.onnx", work / f"{name}-unfused.onnx"
    onnx.save(model, str(plain))
    rewired = unfuse_skip_layernorm(model)
    onnx.save(model, str(rewritten))
    sessions = {"fused": make_session(plain, threads=1),
                "unfused": make_session(rewritten, threads=1)}
    lat = measure_interleaved(sessions, dict.fromkeys(sessions, feed), warmup_runs=10,
                              min_runs=50, min_time_s=seconds)
    out = [s.run(None, feed)[0] for s in sessions.values()]
    return {"name": name, "layernorms_rewritten": rewired,
            "fused_p50_us": lat["fused"].p50_ms * 1e3,
            "unfused_p50_us": lat["unfused"].p50_ms * 1e3,
            "speedup_unfused": lat["fused"].p50_ms / lat["unfused"].p50_ms,
            "max_abs_diff": float(np.abs(out[0] - out[1]).max()),
            "fused_graph_ops": [o for o in optimized_ops(plain) if "LayerNorm" in o],
            "unfused_graph_ops": [o for o in optimized_ops(rewritten) if "LayerNorm" in o]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("encoders", nargs="*", type=Path)
    ap.add_argument("--time", type=float, default=3.0, help="measured seconds per graph")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        x = {k: rng.standard_normal((1, 128, 384)).astype(np.float32) for k in ("x", "y")}
        rows.append(compare(add_layernorm_graph(), x, work, "add+layernorm 1x128x384",
                            args.time))
        ids = rng.integers(1000, 20000, (1, 128)).astype(np.int64)
        for path in args.encoders:
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            rows.append(compare(onnx.load(str(path)), feed, work, str(path), args.time))
    result = {"cpu": cpu_info(), "versions": versions(), "threads": 1, "batch": 1, "rows": rows}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "layernorm_fusion.json").write_text(json.dumps(result, indent=1))
    lines = ["| graph | LayerNorms rewritten | as exported (ORT fuses) | unfused | speed-up | "
             "max abs diff | ORT ops, fused / unfused |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['layernorms_rewritten']} | {r['fused_p50_us']:.1f} us "
                     f"| {r['unfused_p50_us']:.1f} us | {r['speedup_unfused']:.2f}x | "
                     f"{r['max_abs_diff']:.2g} | {', '.join(r['fused_graph_ops'])} / "
                     f"{', '.join(r['unfused_graph_ops'])} |")
    text = "\n".join(lines)
    (HERE / "results" / "layernorm_fusion.md").write_text(
        f"p50 at batch 1, 1 thread, interleaved; {result['cpu']}; {result['versions']}\n\n"
        f"{text}\n")
    print(text)


if __name__ == "__main__":
    main()
