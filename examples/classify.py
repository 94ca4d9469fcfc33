"""Classify raw inputs with a model exported by compress, using onnxruntime and numpy only.

    python examples/classify.py exported/digits/student_int8/model.onnx [--data test_data.npz]
    python examples/classify.py exported/digits-images/student_int8/model.onnx --image a.png b.jpg

Everything needed to feed the model is in its metadata_props: the input name and shape, the
preprocessing (mean and std per feature of a table, layout NF, else per channel) and the
class labels. Given labelled raw test data
(by default `test_data.npz` in the pipeline folder above the model: x raw in model layout, y
labels), it prints the accuracy and compares it with the test accuracy stored in the model.
Exit code 0 when they agree, 1 when they do not, 2 on bad input. Works on .onnx and .ort files.

With --image (models trained on an image folder; needs Pillow too) it decodes each file as the
metadata's `compress.preprocessing.image` says (mode, resize, channel order, scale), then
normalises and predicts as above, and prints each file's label and probability.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def load(model_path: Path) -> tuple[ort.InferenceSession, dict]:
    """The session and the model's compress.* metadata, JSON-decoded."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    raw = session.get_modelmeta().custom_metadata_map
    meta = {k: json.loads(v) for k, v in raw.items() if k.startswith("compress.")}
    missing = [k for k in ("compress.input", "compress.preprocessing") if k not in meta]
    if missing:
        raise SystemExit(f"error: {model_path}: no {', '.join(missing)} in its metadata; "
                         "give a model exported by compress")
    return session, meta


def preprocess(raw: np.ndarray, pre: dict) -> np.ndarray:
    """(raw - mean[i]) / std[i] along axis 1 (a feature for NF, a channel otherwise), in float64,
    then float32: as in training."""
    shape = [1, -1] + [1] * (raw.ndim - 2)
    mean = np.asarray(pre["mean"], dtype=np.float64).reshape(shape)
    std = np.asarray(pre["std"], dtype=np.float64).reshape(shape)
    if raw.shape[1] != mean.shape[1]:
        raise SystemExit(f"error: inputs have {raw.shape[1]} channels, the model expects "
                         f"{mean.shape[1]} (layout {pre.get('layout')})")
    return ((raw - mean) / std).astype(np.float32)


def predict(session: ort.InferenceSession, meta: dict, raw: np.ndarray,
            batch: int = 256) -> np.ndarray:
    """Class indices for raw inputs shaped like the model's input (batch first), run in chunks
    of `batch`, or of the model's own batch size where its input shape is fixed (a `target:
    mobile` build takes exactly 1)."""
    x = preprocess(raw, meta["compress.preprocessing"])
    name = meta["compress.input"]["name"]
    fixed = session.get_inputs()[0].shape[0]
    if isinstance(fixed, int) and fixed > 0:
        batch = fixed
        if len(x) % fixed:  # the last chunk padded with copies of the first row, then cut
            x = np.concatenate([x, np.repeat(x[:1], fixed - len(x) % fixed, axis=0)])
    logits = [session.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(logits)[: len(raw)].argmax(axis=1)


def image_input(path: Path, image: dict) -> np.ndarray:
    """One image file as the raw input (1, C, H, W): the steps `compress.preprocessing.image`
    states, as the image_folder source applied them in training."""
    from PIL import Image

    height, width = image["size"]
    with Image.open(path) as img:
        img = img.convert(image["mode"])  # "RGB" (alpha dropped) or "L"
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    chw = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return (chw.astype(np.float32) / 255)[None]


def classify_images(session: ort.InferenceSession, meta: dict, files: list[Path]) -> int:
    image = meta["compress.preprocessing"].get("image")
    if image is None:
        print("error: the model was not trained on image files (no compress.preprocessing.image "
              "in its metadata); use --data", file=sys.stderr)
        return 2
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        print(f"error: {', '.join(missing)}: file not found", file=sys.stderr)
        return 2
    labels = meta.get("compress.class_labels") or []
    name = meta["compress.input"]["name"]
    for path in files:
        try:
            raw = image_input(path, image)
        except OSError as e:
            print(f"error: {path}: cannot decode it ({e})", file=sys.stderr)
            return 2
        logits = session.run(None, {name: preprocess(raw, meta["compress.preprocessing"])})[0][0]
        p = np.exp(logits - logits.max())
        k = int(p.argmax())
        label = labels[k] if k < len(labels) else str(k)
        print(f"{path}: {label} (p={p[k] / p.sum():.3f})")
    return 0


def find_test_data(model_path: Path) -> Path | None:
    for folder in (model_path.parent, *list(model_path.parents)[1:3]):
        if (folder / "test_data.npz").is_file():
            return folder / "test_data.npz"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an .onnx or .ort file exported by compress")
    parser.add_argument("--data", type=Path, default=None,
                        help=".npz with x (raw inputs) and y (labels); default: test_data.npz "
                             "in the pipeline folder")
    parser.add_argument("--image", type=Path, nargs="+", default=None,
                        help="PNG/JPEG files to classify (models trained on an image folder)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"error: {args.model}: model not found", file=sys.stderr)
        return 2
    if args.image:
        session, meta = load(args.model)
        return classify_images(session, meta, args.image)
    data_path = args.data or find_test_data(args.model)
    if data_path is None or not data_path.is_file():
        print(f"error: no labelled test data found for {args.model}; pass --data FILE.npz "
              "(arrays x, y)", file=sys.stderr)
        return 2
    session, meta = load(args.model)
    with np.load(data_path, allow_pickle=False) as d:
        x, y = d["x"], d["y"]
    labels = meta.get("compress.class_labels") or [str(i) for i in range(int(y.max()) + 1)]

    pred = predict(session, meta, x)
    accuracy = float((pred == y).mean() * 100)
    stored = (meta.get("compress.metrics") or {}).get("test_accuracy_pct")
    shown = ", ".join(f"{labels[p]}" for p in pred[:10])
    print(f"model:    {args.model} (input {meta['compress.input']['name']} "
          f"{meta['compress.input']['shape']})")
    print(f"data:     {data_path} ({len(y)} samples)")
    print(f"first predictions: {shown} (true: {', '.join(labels[t] for t in y[:10])})")
    print(f"accuracy: {accuracy:.4f} %")
    if stored is None:
        print("stored:   (the model's metadata holds no test accuracy)")
        return 0
    agree = abs(accuracy - stored) < 1e-9
    print(f"stored:   {stored:.4f} % -> {'match' if agree else 'MISMATCH'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
