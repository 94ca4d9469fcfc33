"""A plain baseline beside every trained model, where one is cheap: for tables (layout NF) a
standardised scikit-learn LogisticRegression on the same split; for images (NCHW) and sequences
(NCL) a small CNN (four conv blocks, global average pooling, about 24 k parameters) trained
briefly with a fixed recipe, what a user writes in plain PyTorch before reaching for a tool. A
network below it has not learned what the plain model gets with no tuning (the symptom of bad
preprocessing, too few epochs or the wrong width), so a training stage records both figures and
warns when the model falls short."""

from __future__ import annotations

import hashlib
import sys

from compress.trainer.options import BASELINE_METRICS, TrainOptions

__all__ = ["BASELINE_METRICS", "baseline_accuracy", "baseline_metrics", "small_cnn"]
LOGREG = "standardised LogisticRegression (scikit-learn, lbfgs, C=1, train split)"
# The small CNN's fixed recipe: AdamW, lr 3e-3, cosine, batch 32, no augmentation, best val
# epoch, about CNN_STEPS optimizer steps (10 to 30 epochs): a small image set needs more epochs
# than a large one. Four blocks: at 48x48 the receptive field (38 px) spans a drawn shape; with
# three blocks and 15 epochs of batch 64 it reached 30 % on shapes and 61 % on textures.
CNN_STEPS = 400
CNN_EPOCHS = (10, 30)
CNN_BATCH = 32
CNN_CHANNELS = (16, 32, 32, 32)
# A shortfall this large (in points, and in test samples) counts as below the CNN baseline: a
# briefly trained CNN is noisier than a logistic regression, so a small gap is not a finding.
CNN_MARGIN_PTS = 1.0
CNN_MARGIN_SAMPLES = 3

_CACHE: dict[str, tuple[float, float, str]] = {}  # data fingerprint -> the baseline's figures


def small_cnn(input_shape: list[int], num_classes: int, channels=CNN_CHANNELS):
    """Conv-BN-ReLU blocks (2-D for images, 1-D for sequences), each after the first halving
    the resolution by max pooling, then global average pooling and a linear classifier."""
    from torch import nn

    conv, bn, pool, gap = ((nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)
                           if len(input_shape) == 3 else
                           (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d))
    layers, c_in, side = [], input_shape[0], min(input_shape[1:])
    for i, c in enumerate(channels):
        if i and side >= 2:  # a (N, F, 1) table laid out as a sequence has nothing to pool
            layers.append(pool(2))
            side //= 2
        layers += [conv(c_in, c, 3, padding=1, bias=False), bn(c), nn.ReLU()]
        c_in = c
    return nn.Sequential(*layers, gap(1), nn.Flatten(), nn.Linear(c_in, num_classes))


def _fingerprint(data) -> str:
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_val, data.x_test):
        h.update(str(a.shape).encode())
        h.update(a[: min(len(a), 256)].tobytes())
    return h.hexdigest()


def cnn_epochs(train_samples: int) -> int:
    steps_per_epoch = -(-train_samples // CNN_BATCH)
    low, high = CNN_EPOCHS
    return min(high, max(low, -(-CNN_STEPS // steps_per_epoch)))


def cnn_method(data) -> str:
    kind = "2-D" if data.x_train.ndim == 4 else "1-D"
    return (f"small {kind} CNN (conv {'-'.join(map(str, CNN_CHANNELS))}, AdamW lr 3e-3, cosine, "
            f"batch {CNN_BATCH}, {cnn_epochs(len(data.x_train))} epochs, no augmentation, best "
            "val epoch)")


def _cnn_baseline(data, progress: bool, fit) -> tuple[float, float, str]:
    """`fit` is compress.trainer.training.fit, passed in: the training loop imports this
    module, so this one does not import it back."""
    import torch

    torch.manual_seed(0)
    model = small_cnn(list(data.x_train.shape[1:]), data.num_classes)
    opts = TrainOptions(epochs=cnn_epochs(len(data.x_train)), batch_size=CNN_BATCH, lr=3e-3,
                        schedule="cosine", patience=None, baseline=False, seed=0)
    # One CPU thread: for a net this small a second intra-op thread gains nothing, and on a
    # busy machine its waits made the same fit 30x slower (docs/distillation.md).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = fit(model, data, opts, progress=progress, desc="plain CNN baseline")
        device = next(model.parameters()).device
        with torch.no_grad():
            model.eval()
            logits = torch.cat([model(torch.as_tensor(data.x_test[i:i + 1024]).to(device)).cpu()
                                for i in range(0, len(data.x_test), 1024)])
        test = float((logits.argmax(1) == torch.as_tensor(data.y_test)).double().mean() * 100)
    finally:
        torch.set_num_threads(threads)
    return round(test, 4), round(result.best_val_accuracy_pct, 4), cnn_method(data)


def baseline_accuracy(data, fit, progress: bool = False) -> tuple[float, float, str] | None:
    """(test accuracy in %, val accuracy in %, method) of the plain baseline for `data`; None
    where there is none (a layout with no cheap reference). `fit`: the training loop
    (compress.trainer.training.fit, passed in: that module imports this one)."""
    if data.x_train.ndim == 2:
        from sklearn.linear_model import LogisticRegression

        # data.x_* are already standardised per feature with the training split's statistics.
        clf = LogisticRegression(max_iter=5000)
        clf.fit(data.x_train, data.y_train)
        acc = float((clf.predict(data.x_test) == data.y_test).mean() * 100)
        val = float((clf.predict(data.x_val) == data.y_val).mean() * 100)
        return round(acc, 4), round(val, 4), LOGREG
    if data.x_train.ndim not in (3, 4):
        return None
    # Every training stage of a pipeline reports it: the CNN trains once per data split.
    key = _fingerprint(data)
    if key not in _CACHE:
        _CACHE[key] = _cnn_baseline(data, progress, fit)
    return _CACHE[key]


def baseline_metrics(data, test_accuracy_pct: float, who: str, fit, enabled: bool = True,
                     progress: bool = False) -> dict:
    """The baseline's figures for a model with `test_accuracy_pct`, and a warning (printed to
    stderr and recorded, so the report repeats it) when the model is below the baseline."""
    found = baseline_accuracy(data, fit, progress) if enabled else None
    if found is None:
        return dict.fromkeys(BASELINE_METRICS)
    acc, val, method = found
    gap = round(test_accuracy_pct - acc, 4)
    below = gap < 0
    if method != LOGREG:
        below = -gap >= CNN_MARGIN_PTS and -gap * len(data.y_test) / 100 >= CNN_MARGIN_SAMPLES
    warning = None
    if below:
        warning = (f"test accuracy {test_accuracy_pct:.2f} % is {-gap:.2f} pts below the plain "
                   f"baseline ({method}: {acc:.2f} %); check the preprocessing, epochs, width "
                   "and lr")
        print(f"warning: {who}: {warning}", file=sys.stderr)
    return {"baseline_test_accuracy_pct": acc, "baseline_val_accuracy_pct": val,
            "baseline_method": method, "vs_baseline_pts": gap, "baseline_warning": warning}
