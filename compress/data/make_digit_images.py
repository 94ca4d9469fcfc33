"""Write scikit-learn's handwritten digits as an image folder: `OUT/<digit>/<index>.png`.

    python -m compress.data.make_digit_images OUT [--size 32] [--limit N]

The 1,797 real 8x8 scans are upscaled (bicubic) to SIZE x SIZE and coloured: each image gets
a dark ink and a light paper colour of random hue from a seeded generator, so the three RGB
channels differ (an app that swaps the channel order feeds the model other statistics).
Deterministic: the same bytes on every run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def write_digit_images(out: Path, size: int = 32, limit: int | None = None,
                       seed: int = 0) -> int:
    """Write the PNGs; returns how many. `limit` takes the first N per class (for tests)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    counts: dict[int, int] = {}
    written = 0
    for i, (img, label) in enumerate(zip(d.images, d.target, strict=True)):
        ink = rng.integers(0, 110, 3)  # dark ink on light paper, each of a random hue
        paper = rng.integers(150, 256, 3)
        counts[label] = counts.get(label, 0) + 1
        if limit is not None and counts[label] > limit:
            continue
        grey = Image.fromarray((img * (255 / 16)).astype(np.uint8), mode="L")
        a = np.asarray(grey.resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
        rgb = paper[None, None, :] * (1 - a[..., None]) + ink[None, None, :] * a[..., None]
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb.round().astype(np.uint8), mode="RGB").save(folder / f"{i:04d}.png")
        written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (class sub-folders 0..9)")
    parser.add_argument("--size", type=int, default=32, help="side in pixels (default 32)")
    parser.add_argument("--limit", type=int, default=None, help="first N images per class")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out} is not empty; give a new folder", file=sys.stderr)
        return 2
    n = write_digit_images(args.out, args.size, args.limit)
    print(f"wrote {n} PNG files ({args.size}x{args.size} RGB) into {args.out}/<digit>/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
