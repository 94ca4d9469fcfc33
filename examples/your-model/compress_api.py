"""The pipeline.yaml of this folder through the Python API alone: our ResNet teacher, your
MobileNet-style student (my_models.py), distilled, pruned, exported, quantized, benchmarked.

    PYTHONPATH=examples/your-model python examples/your-model/compress_api.py [--epochs N]
"""

from __future__ import annotations

import argparse

from my_models import build_student
from sklearn.datasets import load_digits

import compress


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", default="exported/your-model-api")
    args = ap.parse_args()
    fit = {"epochs": args.epochs, "batch_size": 64, "augment_shift": 1, "patience": None}

    # Your arrays (here: scikit-learn's digits, 8x8 images shaped (N, 1, 8, 8)).
    d = load_digits()
    x, y = d.images[:, None].astype("float32"), d.target
    data = compress.data.from_arrays(x[:1437], y[:1437], x[1437:], y[1437:])

    teacher = compress.train({"arch": "resnet", "width": 48, "stages": 2}, data, lr=0.002, **fit)
    student = compress.distill(teacher.model, build_student(num_classes=10, width=16), data,
                               temperature=4, alpha=0.9, lr=0.005, **fit)
    pruned = compress.prune(student.model, data, teacher=teacher.model, ratio=0.25, steps=1,
                            lr=0.002, **{**fit, "epochs": max(1, args.epochs // 5)})
    teacher_onnx = compress.export(teacher.model, f"{args.out}/teacher.onnx", data)
    fp32 = compress.export(pruned.model, f"{args.out}/student_fp32.onnx", data)
    int8 = compress.quantize(fp32.path, data, calibration={"method": "minmax", "samples": 512},
                             max_val_accuracy_drop_pts=1.0)
    bench = compress.bench({"teacher": teacher_onnx.path, "student_fp32": fp32.path,
                            "student_int8": int8.path}, data, batch_sizes=[1, 64])
    print(f"distillation gain: {student.metrics['distillation_gain_pts']:+.2f} pts; pruned "
          f"{pruned.metrics['params_before']} -> {pruned.metrics['params']} params")
    print(bench.summary())


if __name__ == "__main__":
    main()
