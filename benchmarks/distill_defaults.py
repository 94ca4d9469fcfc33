"""Which distillation temperature and alpha help a student, measured on several data sets:
each (T, alpha) against the same student trained on labels alone (alpha 0), same seeds, same
epochs, the teacher trained once per data set.

    nice -n 10 python benchmarks/distill_defaults.py [--seeds 0 1] [--sets digits wine ...]

Writes benchmarks/results/distill_defaults.{json,md}: per data set and setting the mean test and
val accuracy over the student seeds and the gain over labels only (docs/distillation.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TEMPERATURES = (1.0, 2.0, 4.0)
ALPHAS = (0.5, 0.7, 0.9)


def depthwise_student(channels: int = 16, classes: int = 10):
    """A small depthwise-separable nn.Sequential (the issue's kind of user student)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
        nn.Conv2d(channels, 2 * channels, 1),
        nn.BatchNorm2d(2 * channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * channels, classes))


def image_data(kind: str):
    import compress
    from compress.data.make_texture_images import synthetic_images

    x, y, classes = synthetic_images(kind, per_class=150, size=48, seed=0)
    x = x.transpose(0, 3, 1, 2).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    n_test = len(y) // 5
    return compress.data.from_arrays(x[n_test:], y[n_test:], x[:n_test], y[:n_test],
                                     class_labels=list(classes), seed=0)


# name -> (data, teacher spec, teacher epochs, student factory(data), student epochs, options)
def data_sets():
    from compress.api import _dataset

    small_resnet = {"arch": "resnet", "width": 8, "stages": 2}

    def digits():
        return _dataset({"source": "digits", "seed": 0})

    return {
        "wine": (lambda: _dataset({"source": "sklearn", "name": "wine", "seed": 0}),
                 {"arch": "mlp", "hidden": [256, 128]}, 40, {"arch": "mlp", "hidden": [16]},
                 15, {}),
        "breast_cancer": (lambda: _dataset({"source": "sklearn", "name": "breast_cancer",
                                            "seed": 0}),
                          {"arch": "mlp", "hidden": [256, 128]}, 40,
                          {"arch": "mlp", "hidden": [16]}, 15, {}),
        "digits": (digits, {"arch": "resnet", "width": 16}, 12, small_resnet, 10, {}),
        "digits-depthwise": (digits, {"arch": "resnet", "width": 16}, 12, "depthwise", 8, {}),
        "mnist1d-seed1": (lambda: _dataset({"source": "mnist1d", "seed": 1,
                                            "num_samples": 2000}),
                          {"arch": "resnet", "width": 16}, 20, small_resnet, 15, {}),
        "textures": (lambda: image_data("textures"),
                     {"arch": "resnet", "width": 16, "stages": 3}, 20,
                     {"arch": "resnet", "width": 8, "stages": 3}, 12, {}),
    }


def student(spec, data, seed: int):
    import torch

    from compress.models import build_model

    torch.manual_seed(seed)  # the same initial weights for every setting of one seed
    if spec == "depthwise":
        return depthwise_student(16, data.num_classes)
    return build_model(spec, data.input_shape, data.num_classes)


_TEACHERS: dict = {}  # digits and digits-depthwise share one teacher


def sweep(name: str, seeds: list[int]) -> dict:
    import torch

    import compress

    load, t_spec, t_epochs, s_spec, s_epochs, opts = data_sets()[name]
    data = load()
    t0 = time.perf_counter()
    key = json.dumps([data.name, len(data.y_train), t_spec, t_epochs, opts], default=str)
    if key not in _TEACHERS:
        torch.manual_seed(0)
        _TEACHERS[key] = compress.train(t_spec, data, epochs=t_epochs, patience=None, **opts)
    teacher = _TEACHERS[key]
    settings = [(None, 0.0)] + [(t, a) for t in TEMPERATURES for a in ALPHAS]
    rows = []
    for temp, alpha in settings:
        tests, vals = [], []
        for seed in seeds:
            r = compress.distill(teacher.model, student(s_spec, data, seed), data,
                                 temperature=temp or 1.0, alpha=alpha, epochs=s_epochs,
                                 patience=None, compare_without_teacher=False, seed=seed,
                                 **opts)
            tests.append(r.metrics["test_accuracy_pct"])
            vals.append(r.metrics["val_accuracy_pct"])
        rows.append({"temperature": temp, "alpha": alpha,
                     "test_accuracy_pct": round(float(np.mean(tests)), 3),
                     "val_accuracy_pct": round(float(np.mean(vals)), 3),
                     "test_per_seed": tests, "val_per_seed": vals})
        print(f"{name}: T {temp} alpha {alpha}: test {np.mean(tests):.2f} val {np.mean(vals):.2f}",
              flush=True)
    base = rows[0]
    for r in rows:
        r["test_gain_pts"] = round(r["test_accuracy_pct"] - base["test_accuracy_pct"], 3)
        r["val_gain_pts"] = round(r["val_accuracy_pct"] - base["val_accuracy_pct"], 3)
    return {"teacher_test_accuracy_pct": teacher.metrics["test_accuracy_pct"],
            "teacher_epochs": t_epochs, "student_epochs": s_epochs,
            "student": s_spec if isinstance(s_spec, dict) else "depthwise-separable Sequential",
            "test_samples": len(data.y_test), "val_samples": len(data.y_val),
            "wall_time_s": round(time.perf_counter() - t0, 1), "rows": rows}


def markdown(result: dict) -> str:
    sets = result["sets"]
    head = ["setting", *sets, "mean gain", "worst gain"]
    lines = [f"# Distillation defaults ({result['date']})", "",
             f"`{result['command']}`; {result['machine']}. Test accuracy gain in points over "
             f"the same student on labels only (alpha 0), mean over student seeds "
             f"{result['seeds']}; first row: labels-only accuracy.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    n = len(next(iter(sets.values()))["rows"])
    for i in range(n):
        r0 = next(iter(sets.values()))["rows"][i]
        label = ("labels only (alpha 0)" if r0["alpha"] == 0 else
                 f"T {r0['temperature']:g}, alpha {r0['alpha']:g}")
        gains = [s["rows"][i]["test_gain_pts"] for s in sets.values()]
        if i == 0:
            cells = [f"{s['rows'][0]['test_accuracy_pct']:.2f} %" for s in sets.values()]
            lines.append(f"| {label} | " + " | ".join(cells) + " | - | - |")
        else:
            cells = [f"{g:+.2f}" for g in gains]
            lines.append(f"| {label} | " + " | ".join(cells) +
                         f" | {np.mean(gains):+.2f} | {min(gains):+.2f} |")
    lines += ["", "| data set | teacher test % | student | epochs (teacher / student) | test "
              "samples | wall s |", "|---|---|---|---|---|---|"]
    for name, s in sets.items():
        lines.append(f"| {name} | {s['teacher_test_accuracy_pct']:.2f} | {s['student']} | "
                     f"{s['teacher_epochs']} / {s['student_epochs']} | {s['test_samples']} | "
                     f"{s['wall_time_s']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--sets", nargs="+", default=list(data_sets()))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "distill_defaults")
    args = ap.parse_args()
    import torch

    # One thread: on a shared 2-core machine, intra-op threads spin and waste most of the CPU.
    torch.set_num_threads(1)
    result = {"date": dt.date.today().isoformat(),
              "command": "python benchmarks/distill_defaults.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} cores (shared with other jobs, loaded), torch 1 "
                         "thread",
              "seeds": args.seeds, "sets": {}}
    for name in args.sets:
        result["sets"][name] = sweep(name, args.seeds)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        args.out.with_suffix(".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
