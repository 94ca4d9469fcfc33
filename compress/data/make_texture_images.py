"""Write a synthetic image folder a recipe has never seen: `OUT/<class>/<index>.png`.

    python -m compress.data.make_texture_images OUT [--kind textures|shapes] [--per-class 150]

textures: stripes, checks, dots and noise, each with a random frequency, orientation, phase and
two random colours. shapes: a circle, square, triangle or cross at a random position, size and
colour on a random background, with mild pixel noise. 48x48 RGB PNG files; the same bytes on
every run for a seed. Used by benchmarks/image_recipe.py and benchmarks/distill_defaults.py to
check the documented image recipe against a plain small CNN (docs/your-data.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

TEXTURES = ("stripes", "checks", "dots", "noise")
SHAPES = ("circle", "square", "triangle", "cross")


def _colours(rng) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, 256, 3).astype(np.float32)
    b = rng.integers(0, 256, 3).astype(np.float32)
    # Two colours at least a little apart, or the texture is invisible.
    while np.abs(a - b).sum() < 150:
        b = rng.integers(0, 256, 3).astype(np.float32)
    return a, b


def texture(kind: str, size: int, rng) -> np.ndarray:
    """A (size, size) mask in [0, 1] of one texture class."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    freq = rng.uniform(0.12, 0.45)  # radians per pixel: periods of ~14 to ~50 pixels / 2 pi
    phase = rng.uniform(0, 2 * np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    if kind == "stripes":
        return (np.sin(u * freq + phase) > 0).astype(np.float32)
    if kind == "checks":
        return ((np.sin(u * freq + phase) > 0) ^ (np.sin(v * freq + phase) > 0)).astype(
            np.float32)
    if kind == "dots":
        period = 2 * np.pi / freq
        cu = (u + phase) % period - period / 2
        cv = (v + phase) % period - period / 2
        r = period * rng.uniform(0.18, 0.32)
        return (cu**2 + cv**2 < r**2).astype(np.float32)
    # noise: blocky random cells of a random scale
    cell = int(rng.integers(2, 7))
    small = rng.random((size // cell + 1, size // cell + 1)) > 0.5
    return np.kron(small, np.ones((cell, cell)))[:size, :size].astype(np.float32)


def shape(kind: str, size: int, rng) -> np.ndarray:
    """A (size, size) mask in [0, 1] of one shape class at a random place and size."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = rng.uniform(size * 0.15, size * 0.32)
    cy, cx = rng.uniform(r + 1, size - r - 1, 2)
    dy, dx = yy - cy, xx - cx
    if kind == "circle":
        return (dy**2 + dx**2 < r**2).astype(np.float32)
    if kind == "square":
        return ((np.abs(dy) < r * 0.85) & (np.abs(dx) < r * 0.85)).astype(np.float32)
    if kind == "triangle":  # apex up: inside three half-planes
        top, base = cy - r, cy + r * 0.7
        half = (yy - top) / (base - top) * r
        return ((yy >= top) & (yy <= base) & (np.abs(dx) <= half)).astype(np.float32)
    bar = r * 0.3
    return (((np.abs(dy) < bar) & (np.abs(dx) < r)) |
            ((np.abs(dx) < bar) & (np.abs(dy) < r))).astype(np.float32)


def synthetic_images(kind: str = "textures", per_class: int = 150, size: int = 48,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(uint8 images (N, size, size, 3), labels (N,), class names), classes interleaved."""
    classes = TEXTURES if kind == "textures" else SHAPES
    draw = texture if kind == "textures" else shape
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(per_class):
        for label, name in enumerate(classes):
            mask = draw(name, size, rng)[..., None]
            fg, bg = _colours(rng)
            rgb = bg * (1 - mask) + fg * mask + rng.normal(0, 8, (size, size, 3))
            images.append(np.clip(rgb, 0, 255).round().astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int64), classes


def write_texture_images(out: Path, kind: str = "textures", per_class: int = 150,
                         size: int = 48, seed: int = 0) -> int:
    """Write the PNGs under `out/<class>/`; returns how many."""
    from PIL import Image

    images, labels, classes = synthetic_images(kind, per_class, size, seed)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = out / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="RGB").save(folder / f"{i:04d}.png")
    return len(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (one sub-folder per class)")
    parser.add_argument("--kind", choices=("textures", "shapes"), default="textures")
    parser.add_argument("--per-class", type=int, default=150, help="images per class")
    parser.add_argument("--size", type=int, default=48, help="side in pixels (default 48)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out} is not empty; give a new folder", file=sys.stderr)
        return 2
    n = write_texture_images(args.out, args.kind, args.per_class, args.size, args.seed)
    print(f"wrote {n} PNG files ({args.size}x{args.size} RGB, {args.kind}) into {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
