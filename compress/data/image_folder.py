"""Images as they lie on disk: `path/<class>/*.png|jpg` (torchvision's ImageFolder layout), or
fixed splits `path/train/<class>/...`, `path/test/<class>/...` and optionally `path/val/...`.

Files are decoded once with Pillow, in chunks, into a uint8 (N, C, H, W) memory-mapped array
cached under the run folder (`<run>/.cache/images-<key>.npy`) and keyed by the files' bytes and
the decoding settings: a rerun rehashes the files and decodes nothing. Raw model inputs are
pixel / 255 as float32, channels in RGB order (or one grey channel), then per-channel mean/std
from the training split as for every source.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from compress.artifacts import sha256_file, sha256_json
from compress.data.problems import listed
from compress.data.splits import (
    LabelledSplitFields,
    RawSplits,
    check_class_counts,
    stratified_split,
)
from compress.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "val", "test")
CHUNK = 256  # images decoded per write into the memory map: bounds the decoding memory
CACHE_FORMAT = 1
RESIZE = ("Pillow Image.resize((W, H), Image.Resampling.BILINEAR) after the mode conversion "
          "(antialiased when shrinking), only when the file is not already H x W")
# Pretrained networks expect the statistics they were trained with, not this data's: the
# normalisation is the data's (every model of a pipeline sees the same inputs), so it is a data
# field, which the weights' origin decides.
Normalize = Literal["train", "imagenet"]
NORMALIZE_HELP = ("train: per-channel mean/std of the training split; imagenet: ImageNet's "
                  "(0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) on pixels / 255, as "
                  "ImageNet-pretrained weights (torchvision's) expect")
_CACHE_DIR: ContextVar[Path | None] = ContextVar("compress_image_cache", default=None)


class ImageFolderData(LabelledSplitFields):
    source: Literal["image_folder"] = "image_folder"
    path: str = Field(description="folder with one sub-folder per class (or train/ val/ test/ "
                                  "sub-folders of that shape); relative to the pipeline file")
    size: tuple[int, int] | None = Field(
        None, description="[H, W] in pixels every image is resized to (bilinear); default: "
        "keep the files' size, which must then be the same for all")
    channels: Literal[1, 3] = Field(3, description="3 = RGB (alpha dropped), 1 = greyscale (L)")
    normalize: Normalize = Field("train", description=NORMALIZE_HELP)
    test_fraction: float = Field(0.2, gt=0, lt=0.5,
                                 description="held out for test when there is no test/ folder")


@contextlib.contextmanager
def decode_cache(folder: str | Path):
    """Cache decoded images under `folder` (the runner passes `<run folder>/.cache`) while the
    block runs. Outside such a block images are decoded into an anonymous temporary file."""
    token = _CACHE_DIR.set(Path(folder))
    try:
        yield
    finally:
        _CACHE_DIR.reset(token)


@dataclass
class ImageIndex:
    """Every image file, its class index and its split ("" when the folder has no fixed splits)."""

    root: Path
    files: list[Path]
    labels: np.ndarray
    splits: list[str]
    class_labels: list[str]


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except PermissionError as e:
        raise DataError(f"{folder}: cannot list it (permission denied); make it readable "
                        "(chmod -R a+rX)") from e


def _images_of(class_dir: Path) -> list[Path]:
    """The image files under one class folder (sub-folders too), sorted; anything else refused."""
    files = []
    for e in _entries(class_dir):
        p = Path(e.path)
        if e.is_dir():
            files += _images_of(p)
        elif p.suffix.lower() in SUFFIXES:
            files.append(p)
        else:
            raise DataError(f"{p}: not a PNG or JPEG file (suffix '{p.suffix}'); image folders "
                            "hold only .png/.jpg/.jpeg files, so move it out")
    return files


def _classes(folder: Path) -> dict[str, list[Path]]:
    dirs = [e for e in _entries(folder) if e.is_dir()]
    if not dirs:
        loose = [e.name for e in _entries(folder) if Path(e.name).suffix.lower() in SUFFIXES]
        what = f"{len(loose)} image(s) but " if loose else ""
        raise DataError(f"{folder}: {what}no class sub-folders; put each class's images in a "
                        f"folder named after the class, e.g. {folder}/cat/1.png")
    out = {}
    for d in dirs:
        files = _images_of(Path(d.path))
        if not files:
            raise DataError(f"{d.path}: class folder holds no PNG or JPEG images; add some or "
                            "remove the folder")
        out[d.name] = files
    return out


def scan(cfg: ImageFolderData) -> ImageIndex:
    """List the folder's images and classes; DataError on any layout problem."""
    root = Path(cfg.path)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "folder not found"
        raise DataError(f"{root}: {what}; `data.path` must be a folder with one sub-folder per "
                        "class")
    names = {e.name for e in _entries(root) if e.is_dir()}
    if not names:
        if not _entries(root):
            raise DataError(f"{root}: the folder is empty; put each class's images in a "
                            f"sub-folder named after the class, e.g. {root}/cat/1.png")
        _classes(root)  # raises: files but no class folders
    if "train" in names or "test" in names:
        if not {"train", "test"} <= names or names - set(SPLITS):
            raise DataError(
                f"{root}: sub-folders {sorted(names)} mix fixed splits and classes; give either "
                "class folders only, or train/ and test/ (and optionally val/) each holding "
                "class folders")
        per_split = {s: _classes(root / s) for s in SPLITS if s in names}
    else:
        per_split = {"": _classes(root)}
    first = "train" if "train" in per_split else ""
    labels = sorted(per_split[first])
    if len(labels) < 2:
        raise DataError(f"{root / first}: only one class folder ({labels[0]}); a classifier "
                        "needs at least two classes")
    for split, classes in per_split.items():
        unknown = sorted(set(classes) - set(labels))
        if unknown:
            raise DataError(f"{root / split}: class folder(s) {unknown} are not in train/; every "
                            "class must have training images")
    files, ys, splits = [], [], []
    for split, classes in per_split.items():
        for name in sorted(classes):
            files += classes[name]
            ys += [labels.index(name)] * len(classes[name])
            splits += [split] * len(classes[name])
    return ImageIndex(root, files, np.asarray(ys, dtype=np.int64), splits, labels)


_FILE_HASHES: dict[tuple, str] = {}


def _file_sha256(p: Path) -> str:
    """sha256 of a file's bytes, remembered per process while its size and mtime stay put."""
    try:
        st = p.stat()
        key = (str(p), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in _FILE_HASHES:
            _FILE_HASHES[key] = sha256_file(p)
    except PermissionError as e:
        raise DataError(f"{p}: cannot read it (permission denied); make the image files "
                        "readable (chmod -R a+rX)") from e
    return _FILE_HASHES[key]


def content_key(cfg: ImageFolderData, index: ImageIndex | None = None) -> str:
    """Hash of every file's bytes, its class and split, and the decoding settings."""
    from PIL import __version__ as pillow_version

    index = index or scan(cfg)
    files = [[s, index.class_labels[y], p.relative_to(index.root).as_posix(), _file_sha256(p)]
             for p, y, s in zip(index.files, index.labels, index.splits, strict=True)]
    return sha256_json({"format": CACHE_FORMAT, "size": cfg.size, "channels": cfg.channels,
                        "pillow": pillow_version, "resize": RESIZE, "files": files})


def _target_size(cfg: ImageFolderData, files: list[Path]) -> tuple[int, int]:
    """(H, W) of the decoded arrays; reads headers only, so bad files fail before decoding."""
    from PIL import Image, UnidentifiedImageError

    first: tuple[Path, tuple[int, int]] | None = None
    bad = []  # every unreadable file, named in one message
    for p in files:
        try:
            with Image.open(p) as img:
                fmt, (w, h) = img.format, img.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            bad.append(f"{p}: not an image Pillow can read ({type(e).__name__})")
            continue
        if fmt not in ("PNG", "JPEG"):
            bad.append(f"{p}: a {fmt} image")
            continue
        if cfg.size is None:
            if first is None:
                first = (p, (h, w))
            elif first[1] != (h, w):
                raise DataError(
                    f"{p}: {h}x{w} pixels but {first[0]} is {first[1][0]}x{first[1][1]}; the "
                    "images differ in size, so set `size: [H, W]` in data to resize them all")
    if len(bad) == 1:
        fix = "image folders take PNG and JPEG only" if bad[0].endswith(" image") else \
            "replace or remove the file"
        raise DataError(f"{bad[0]}; {fix}")
    if bad:
        raise DataError(f"{len(bad)} bad image files: {listed(bad)}; image folders take PNG and "
                        "JPEG files Pillow can read: replace or remove them")
    return cfg.size or first[1]


def decode_file(p: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image file as uint8 (C, H, W): the exact steps `compress.preprocessing.image` states."""
    from PIL import Image

    try:
        with Image.open(p) as img:
            img.load()  # a truncated file fails here, not at open
            img = img.convert("RGB" if channels == 3 else "L")  # decoding errors surface here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{p}: cannot decode it ({str(e).splitlines()[0][:120]}); the file is "
                        "damaged or truncated: replace or remove it") from e
    return to_model_pixels(img, size, channels)


def to_model_pixels(img, size: tuple[int, int], channels: int) -> np.ndarray:
    """A Pillow image as uint8 (C, H, W) at `size`: the mode conversion (greyscale repeated into
    3 channels for RGB) and the resize every image source shares (RESIZE)."""
    from PIL import Image

    img = img.convert("RGB" if channels == 3 else "L")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _decode_into(path: Path, files: list[Path], size: tuple[int, int], channels: int) -> None:
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                   shape=(len(files), channels, *size))
    bad: list[DataError] = []  # every file that does not decode, named in one message
    for start in range(0, len(files), CHUNK):
        for i, p in enumerate(files[start:start + CHUNK], start):
            try:
                mm[i] = decode_file(p, size, channels)
            except DataError as e:
                bad.append(e)
    if len(bad) == 1:
        raise bad[0]
    if bad:
        raise DataError(f"{len(bad)} image files do not decode: "
                        f"{listed([str(e).split('; the file is')[0] for e in bad])}; they are "
                        "damaged or truncated: replace or remove them")
    mm.flush()
    del mm


def decoded_images(cfg: ImageFolderData, index: ImageIndex) -> np.ndarray:
    """uint8 (N, C, H, W), memory-mapped, decoding only when no cache entry has this key."""
    key = content_key(cfg, index)
    cache = _CACHE_DIR.get()
    target = cache / f"images-{key[:32]}.npy" if cache else None
    if target is not None and target.is_file():
        return np.load(target, mmap_mode="r", allow_pickle=False)
    size = _target_size(cfg, index.files)
    if target is None:
        fd, tmp = tempfile.mkstemp(prefix="compress-images-", suffix=".npy")
        os.close(fd)
        try:
            _decode_into(Path(tmp), index.files, size, cfg.channels)
            # the map keeps the data once the name is gone
            return np.load(tmp, mmap_mode="r", allow_pickle=False)
        finally:
            Path(tmp).unlink(missing_ok=True)
    created = [p for p in (cache, *cache.parents) if not p.exists()]
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=cache)
    os.close(fd)
    try:
        _decode_into(Path(tmp), index.files, size, cfg.channels)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        for p in created:  # a failed decode leaves no folder behind
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    for old in cache.glob("images-*.npy"):  # one data spec per run folder: older keys are dead
        if old != target:
            old.unlink(missing_ok=True)
    return np.load(target, mmap_mode="r", allow_pickle=False)


def steps(cfg: ImageFolderData, size: tuple[int, int]) -> dict:
    """`compress.preprocessing.image`: how an app turns an image file into the raw input."""
    return {"size": list(size), "mode": "RGB" if cfg.channels == 3 else "L",
            "channel_order": "RGB" if cfg.channels == 3 else "grey", "layout": "NCHW",
            "resize": RESIZE, "scale": 1 / 255,
            "steps": ["open with Pillow", "convert(mode) (drops alpha)", "resize to size [H, W] "
                      "if needed", "uint8 array HWC -> CHW", "multiply by scale (x / 255) as "
                      "float32", "then (x - mean[c]) / std[c]"]}


def load_image_folder_raw(cfg: ImageFolderData) -> RawSplits:
    index = scan(cfg)
    y, where = index.labels, np.asarray(index.splits)
    if where[0] == "":  # refused before decoding, so that nothing is written
        check_class_counts(y, index.class_labels, str(index.root), "image(s)")
    images = decoded_images(cfg, index)

    def take(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # sorted: the memory map is read front to back (the trainer shuffles every epoch)
        return np.asarray(images[np.sort(idx)], dtype=np.float32) / 255, y[np.sort(idx)]

    if where[0] == "":
        idx = np.arange(len(y))
        rest, y_rest, test, _ = stratified_split(idx, y, cfg.test_fraction, cfg.seed)
        frac = cfg.val_fraction / (1 - cfg.test_fraction)
        train, _, val, _ = stratified_split(rest, y_rest, frac, cfg.seed)
    else:
        train, test = np.flatnonzero(where == "train"), np.flatnonzero(where == "test")
        val = np.flatnonzero(where == "val")
        if len(val) == 0:
            train, _, val, _ = stratified_split(train, y[train], cfg.val_fraction, cfg.seed)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = take(train), take(val), take(test)
    raw = RawSplits(x_tr, y_tr, x_va, y_va, x_te, y_te, num_classes=len(index.class_labels),
                    class_labels=index.class_labels)
    raw.source_steps = {"image": steps(cfg, images.shape[2:])}
    return raw
