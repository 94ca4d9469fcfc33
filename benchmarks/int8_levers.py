"""What each int8 lever of the quantize stage buys, on one fp32 model, timed side by side.

    python benchmarks/int8_levers.py exported/digits/student_fp32/model.onnx [--time 3]

Builds from the same pre-processed fp32 model, with the same calibration (512 train samples,
MinMax): QOperator U8S8 7-bit weights (the stage's choice) as the file was before (spatial
ReduceMean -> a float island), with the pooling rewritten to GlobalAveragePool, and with the
narrow first conv kept fp32 as well; beside them the careful user's ORT call (pre-processed,
QDQ U8S8, per-channel). Every model interleaved with the fp32 one at batch 1 and 64, one thread;
p50, speed-up over fp32, % of the machine's limit (measured here), test accuracy. Writes
benchmarks/results/int8_levers.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from compress.config import parse_pipeline
from compress.data import load_dataset
from compress.measure import ort as ort_measure
from compress.measure.latency import measure_interleaved
from compress.measure.limit import measure_limit, percent_of_limit
from compress.measure.system import cpu_info
from compress.onnx.islands import describe
from compress.onnx.macs import count_macs
from compress.onnx.placement import narrow_convs
from compress.onnx.quantization import (
    CalibrationConfig,
    Quantizer,
    Setting,
    calibration_sample,
    preprocess,
)
from compress.onnx.rewrite import pools_to_global_average

OUT = Path(__file__).parent / "results"


def build(fp32: Path, work: Path, x_train) -> dict[str, Path]:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    preprocess(fp32, work / "pre.onnx")
    pools_to_global_average(work / "pre.onnx", work / "gap.onnx")
    calib = CalibrationConfig(samples=512)
    x = calibration_sample(x_train, calib)
    best = Setting("static", "uint8", "qoperator", True, True)
    plain = Quantizer(work / "pre.onnx", work, calib, x, "input")
    (work / "gap").mkdir()
    gap = Quantizer(work / "gap.onnx", work / "gap", calib, x, "input")
    narrow = tuple(narrow_convs(work / "gap.onnx", 8))
    out = {"int8, ReduceMean (as before)": plain.quantize(best, work / "reducemean.onnx"),
           "int8, GlobalAveragePool": gap.quantize(best, work / "gap_int8.onnx"),
           "int8, GlobalAveragePool + first conv fp32":
               gap.quantize(Setting("static", "uint8", "qoperator", True, True,
                                    keep_float=narrow), work / "gap_first.onnx")}
    plain.reader.rewind()
    quantize_static(str(work / "pre.onnx"), str(work / "careful.onnx"), plain.reader,
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    out["ORT careful user (QDQ U8S8 per-channel)"] = work / "careful.onnx"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("fp32", type=Path)
    ap.add_argument("--time", type=float, default=3.0, help="seconds per batch size")
    args = ap.parse_args()
    cfg = parse_pipeline({"name": "x", "data": {"source": "digits", "seed": 0,
                                               "val_fraction": 0.1, "test_fraction": 0.2},
                          "stages": [{"id": "t", "stage": "train"}]}, "x").data
    data = load_dataset(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"fp32": args.fp32, **build(args.fp32, Path(tmp), data.x_train)}
        sessions = {n: ort_measure.make_session(p, 1) for n, p in paths.items()}
        rows = {n: {"macs": count_macs(p, list(data.input_shape)),
                    "float_ops": [f["op"] for f in describe(p)[0]] if n != "fp32" else [],
                    "test_accuracy_pct": round(ort_measure.accuracy_pct(
                        ort_measure.predict(sessions[n], data.x_test), data.y_test), 2)}
                for n, p in paths.items()}
        limit = measure_limit(1)
        for b in (1, 64):
            x = ort_measure.batch_of(data.x_test, b)
            stats = measure_interleaved(sessions, {n: {"input": x} for n in sessions},
                                        warmup_runs=20, min_runs=200, min_time_s=args.time,
                                        max_time_s=10 * args.time)
            for n, st in stats.items():
                lim = limit.limit_ms(rows[n]["macs"], b)
                rows[n][f"b{b}"] = {"p50_us": round(st.p50_ms * 1000, 1),
                                    "speedup_vs_fp32": round(stats["fp32"].p50_ms / st.p50_ms, 3),
                                    "pct_of_limit": percent_of_limit(lim, st.p50_ms)}
    result = {"model": str(args.fp32), "limit": limit.record(), "cpu": cpu_info(), "rows": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / "int8_levers.json").write_text(json.dumps(result, indent=2))
    lines = ["| model | test acc | float ops left | p50 b1 | vs fp32 | % of limit | p50 b64 | "
             "vs fp32 | % of limit |", "|---|---|---|---|---|---|---|---|---|"]
    for n, r in rows.items():
        lines.append(f"| {n} | {r['test_accuracy_pct']:.2f} % | {', '.join(r['float_ops']) or '-'}"
                     f" | {r['b1']['p50_us']} us | {r['b1']['speedup_vs_fp32']:.2f}x | "
                     f"{r['b1']['pct_of_limit']:.0f} % | {r['b64']['p50_us']} us | "
                     f"{r['b64']['speedup_vs_fp32']:.2f}x | {r['b64']['pct_of_limit']:.0f} % |")
    lim = limit.record()
    lines += ["", f"Limit: floor {lim['floor_ms'] * 1000:.1f} us, fp32 {lim['fp32_gmacs']:.0f} "
              f"GMAC/s, u8s8 {lim['int8_gmacs']:.0f} GMAC/s ({lim['int8_kernel']}), one thread; "
              f"CPU {result['cpu'].get('cpu_model')}."]
    (OUT / "int8_levers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
