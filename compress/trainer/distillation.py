"""Knowledge distillation shared by the stages that train a student against a teacher (`distill`,
the fine-tuning inside `prune`, quantization-aware fine-tuning).

Hinton et al. (2015): loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE.
The T^2 factor keeps the soft-target gradients on the same scale as the hard-target ones when T
changes. Optional hint (feature) distillation (FitNets, Romero et al. 2015) adds the MSE between
a student layer's output, through a learned 1x1 projection, and a teacher layer's output.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from compress import artifacts
from compress.errors import ArtifactError, ConfigError
from compress.trainer.options import DistillOptions, HintConfig  # noqa: F401  (re-exported)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
    unlabeled: bool = False,
) -> torch.Tensor:
    """alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, targets).

    `unlabeled`: targets of -1 mark samples without a label (a transfer set of unlabeled
    images): the soft term covers every sample, CE the labelled ones only (0 if none are)."""
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits.float() / t, dim=1),
        F.log_softmax(teacher_logits.float() / t, dim=1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)
    if alpha >= 1.0:
        return soft
    if unlabeled:
        hard = F.cross_entropy(student_logits.float(), targets, ignore_index=-1,
                               reduction="sum", label_smoothing=label_smoothing)
        hard = hard / (targets >= 0).sum().clamp(min=1)
    else:
        hard = F.cross_entropy(student_logits.float(), targets, label_smoothing=label_smoothing)
    return alpha * soft + (1.0 - alpha) * hard


def load_model(path: Path, input_shape: list[int] | None = None, role: str = "checkpoint"):
    """(model in eval mode, checkpoint dict) from a compress checkpoint; checks the data fits."""
    from compress.models.checkpoint import model_from_checkpoint

    ckpt = artifacts.load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    if input_shape is not None and list(ckpt["input_shape"]) != list(input_shape):
        raise ArtifactError(
            f"{role} {path} expects inputs {ckpt['input_shape']} but the data gives "
            f"{list(input_shape)}; use a {role} trained on this pipeline's data"
        )
    return model, ckpt


def _module(model: nn.Module, name: str, role: str, field: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or not name:
        names = [n for n in modules if n and n.count(".") <= 1][:30]
        raise ConfigError(
            f"hint: {field} '{name}' is not a module of the {role}; choose one of: "
            + ", ".join(names)
        )
    return modules[name]


class Distiller(nn.Module):
    """The student plus what distillation learns beside it (the hint projection).

    `fit()` trains this module; its forward is the student's, so validation, early stopping and
    best-epoch selection see the student alone. `loss` runs the frozen teacher on the same
    (augmented) batch the student just saw.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, example: torch.Tensor,
                 opts: DistillOptions, hint: HintConfig | None = None,
                 label_smoothing: float = 0.0, cache_teacher: bool = False):
        super().__init__()
        self.student = student
        # A plain attribute, not a submodule: the teacher is neither trained nor saved.
        object.__setattr__(self, "_teacher", teacher.eval().requires_grad_(False))
        self.opts, self.hint, self.label_smoothing = opts, hint, label_smoothing
        self._feats: dict[str, torch.Tensor] = {}
        # Without augmentation every epoch shows the teacher the same samples: its logits are
        # computed once per sample (keyed by the sample's bytes) instead of once per epoch,
        # which for a large pretrained teacher over an unlabeled transfer set is most of the time.
        self._logits: dict[bytes, torch.Tensor] | None = (
            {} if cache_teacher and hint is None else None)
        self.proj: nn.Module | None = None
        if hint is not None:
            s_mod = _module(student, hint.student_layer, "student", "student_layer")
            t_mod = _module(teacher, hint.teacher_layer, "teacher", "teacher_layer")
            for key, model, mod in (("s", student, s_mod), ("t", teacher, t_mod)):
                mod.register_forward_hook(
                    lambda m, _i, out, key=key, model=model:
                    self._feats.__setitem__(key, _channels_first(model, m, out)))
            with torch.no_grad():
                was = student.training
                student.eval()
                device = next(student.parameters()).device  # e.g. a teacher left on the GPU
                teacher.to(device)
                student(example[:2].to(device))
                teacher(example[:2].to(device))
                student.train(was)
            s, t = self._feats["s"], self._feats["t"]
            if s.ndim != t.ndim:
                raise ConfigError(
                    f"hint: student_layer '{hint.student_layer}' outputs {s.ndim}-D features but "
                    f"teacher_layer '{hint.teacher_layer}' {t.ndim}-D; pick layers of one kind"
                )
            self.proj = _projection(s.shape[1], t.shape[1], s.ndim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)

    def to(self, *args, **kwargs):
        self._teacher.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self._logits is None:
            return self._teacher(x)
        keys = [_sample_key(row) for row in x.detach().cpu()]
        todo = [i for i, k in enumerate(keys) if k not in self._logits]
        if todo:
            new = self._teacher(x[todo]).detach()
            for i, row in zip(todo, new, strict=True):
                self._logits[keys[i]] = row
        return torch.stack([self._logits[k] for k in keys])

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        student_feat = self._feats.get("s")
        with torch.no_grad():
            teacher_logits = self._teacher_logits(x)
        loss = distillation_loss(logits, teacher_logits, targets, self.opts.temperature,
                                 self.opts.alpha, self.label_smoothing,
                                 getattr(self.opts, "transfer", "labeled") == "unlabeled")
        if self.proj is not None:
            s = self.proj(student_feat)
            t = self._feats["t"].detach()
            if s.shape[2:] != t.shape[2:]:
                # Match resolutions by pooling the larger map down to the smaller one.
                if s.shape[2:].numel() > t.shape[2:].numel():
                    s = _pool(s, t.shape[2:])
                else:
                    t = _pool(t, s.shape[2:])
            loss = loss + self.hint.weight * F.mse_loss(s.float(), t.float())
        return loss


def _sample_key(x: torch.Tensor) -> bytes:
    return hashlib.blake2b(x.numpy().tobytes(), digest_size=16).digest()


def _channels_first(model: nn.Module, module: nn.Module, out) -> torch.Tensor:
    """A hooked layer's output as (batch, channels, ...): a GRU/LSTM's (output, state) tuple
    gives its output, and the (batch, steps, features) sequences inside recurrent and
    transformer models are turned to (batch, features, steps), like a Conv1d's."""
    if isinstance(out, tuple | list):
        out = out[0]
    if (out.ndim == 3 and getattr(model, "steps_first_features", False)
            and not isinstance(module, nn.Conv1d)):
        out = out.transpose(1, 2)
    return out


def _projection(c_in: int, c_out: int, ndim: int) -> nn.Module:
    if ndim == 2:
        return nn.Linear(c_in, c_out, bias=False)
    conv = nn.Conv1d if ndim == 3 else nn.Conv2d
    return conv(c_in, c_out, 1, bias=False)


def _pool(x: torch.Tensor, size) -> torch.Tensor:
    pool = F.adaptive_avg_pool1d if x.ndim == 3 else F.adaptive_avg_pool2d
    return pool(x, tuple(size) if x.ndim == 4 else int(size[0]))
