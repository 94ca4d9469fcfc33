"""Why the documented image recipe underfits images it was not developed on: the teacher of
pipelines/digits-images.yaml trained on synthetic textures and shapes (48x48 RGB, 150 per class,
compress.data.make_texture_images) at the recipe's 32x32 and at the images' own 48x48, for the
recipe's 10 epochs and longer, against the plain small-CNN baseline on the same split.

    nice -n 10 python benchmarks/image_recipe.py [--sets textures shapes] [--runs NAME ...]

Writes benchmarks/results/image_recipe.{json,md} (docs/your-data.md has the table).
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
# The teacher step of pipelines/digits-images.yaml, as documented in docs/your-data.md.
RECIPE = {"model": {"arch": "resnet", "width": 24, "stages": 3, "blocks_per_stage": 1,
                    "dropout": 0.1},
          "epochs": 10, "batch_size": 64, "optimizer": "adamw", "lr": 0.002,
          "weight_decay": 0.0001, "schedule": "cosine", "label_smoothing": 0.1,
          "augment_shift": 2, "patience": None}
RUNS = {  # name -> (side in pixels, changes to the recipe)
    "recipe (32x32, 10 epochs)": (32, {}),
    "recipe at 48x48, 10 epochs": (48, {}),
    "32x32, 30 epochs": (32, {"epochs": 30}),
    "48x48, 30 epochs": (48, {"epochs": 30}),
    "48x48, epochs auto": (48, {"epochs": "auto", "max_epochs": 60, "patience": 8}),
}


def load(kind: str, side: int):
    """The set as the image_folder source gives it: Pillow bilinear resize, pixel / 255, a
    stratified test fifth (seeded), per-channel normalisation from the training split."""
    from PIL import Image

    import compress
    from compress.data.make_texture_images import synthetic_images

    x, y, classes = synthetic_images(kind, per_class=150, size=48, seed=0)
    if side != 48:
        x = np.stack([np.asarray(Image.fromarray(im).resize((side, side),
                                                            Image.Resampling.BILINEAR))
                      for im in x])
    x = x.transpose(0, 3, 1, 2).astype(np.float32) / 255
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    n_test = len(y) // 5
    return compress.data.from_arrays(x[n_test:], y[n_test:], x[:n_test], y[:n_test],
                                     class_labels=list(classes), seed=0)


def run_set(kind: str, runs: list[str]) -> dict:
    import torch

    import compress
    from compress.trainer.baseline import baseline_accuracy
    from compress.trainer.training import fit

    out = {}
    t0 = time.perf_counter()
    test, val, method = baseline_accuracy(load(kind, 48), fit)
    out["plain small CNN at 48x48 (the baseline)"] = {
        "test_accuracy_pct": test, "val_accuracy_pct": val, "method": method,
        "wall_time_s": round(time.perf_counter() - t0, 1)}
    print(f"{kind}: baseline {test:.2f} %", flush=True)
    for name in runs:
        side, changes = RUNS[name]
        opts = {**RECIPE, **changes}
        model = opts.pop("model")
        torch.manual_seed(0)
        t0 = time.perf_counter()
        r = compress.train(model, load(kind, side), baseline=False, **opts)
        m = r.metrics
        out[name] = {k: m[k] for k in ("test_accuracy_pct", "val_accuracy_pct", "best_epoch",
                                       "epochs_run", "best_epoch_is_last", "params")}
        out[name]["wall_time_s"] = round(time.perf_counter() - t0, 1)
        print(f"{kind}: {name}: {m['test_accuracy_pct']:.2f} % (best epoch {m['best_epoch']} "
              f"of {m['epochs_run']})", flush=True)
    return out


def markdown(result: dict) -> str:
    lines = [f"# Image recipe on unseen images ({result['date']})", "",
             f"`{result['command']}`; {result['machine']}. Test accuracy on 120 held-out "
             "images per set (4 classes, 150 per class, 48x48 RGB); the teacher step of "
             "pipelines/digits-images.yaml with the changes named.", "",
             "| run | " + " | ".join(result["sets"]) + " |",
             "|---|" + "---|" * len(result["sets"])]
    names = list(next(iter(result["sets"].values())))
    for name in names:
        cells = []
        for s in result["sets"].values():
            r = s.get(name)
            if r is None:
                cells.append("-")
                continue
            extra = (f" (best epoch {r['best_epoch']} of {r['epochs_run']}, {r['wall_time_s']} s)"
                     if "best_epoch" in r else f" ({r['wall_time_s']} s)")
            cells.append(f"{r['test_accuracy_pct']:.2f} %{extra}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["textures", "shapes"])
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS),
                    help="teacher runs (none: the baseline only)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "image_recipe")
    args = ap.parse_args()
    import torch

    # One thread: on a shared 2-core machine, intra-op threads wait on each other.
    torch.set_num_threads(1)
    result = {"date": dt.date.today().isoformat(),
              "command": "python benchmarks/image_recipe.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
                         "cores (shared with other jobs, loaded), torch 1 thread",
              "sets": {}}
    for kind in args.sets:
        result["sets"][kind] = run_set(kind, args.runs)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        args.out.with_suffix(".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
