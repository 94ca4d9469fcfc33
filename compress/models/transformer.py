"""Transformer encoder classifier (ViT-style) over a sequence input.

The sequence (last axis = time, as in `rnn`) is cut into tokens by a 1-D conv embedding: kernel =
stride = `patch` is ViT's linear patchify; a wider `kernel` overlaps neighbouring patches (a conv
stem). Then learned or sinusoidal positions, an optional [CLS] token, pre-norm encoder layers
(LN -> multi-head self-attention -> residual, LN -> feed-forward -> residual), a final LN and
cls or mean pooling.

Attention is written out (one qkv Linear, matmul, softmax, one output Linear) so it exports to
plain ONNX MatMul/Softmax ops and torch-pruning can remove whole heads: `blocks` records the real
heads and feed-forward sizes of every layer after pruning.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from compress.errors import ConfigError
from compress.models.specs import EncoderLayerSpec, TransformerSpec  # noqa: F401  (re-exported)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.num_heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(width, 3 * heads * head_dim)
        self.proj = nn.Linear(heads * head_dim, width)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def sync(self) -> None:
        """After torch-pruning removed whole heads from qkv/proj: the real head count."""
        self.num_heads = self.qkv.out_features // (3 * self.head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
        y = attn.softmax(dim=-1) @ v
        y = y.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        return self.drop(self.proj(y))


class FeedForward(nn.Module):
    def __init__(self, width: int, ff: int, dropout: float):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(width, ff), nn.GELU(), nn.Linear(ff, width)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class EncoderLayer(nn.Module):
    def __init__(self, width: int, spec: EncoderLayerSpec, head_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, spec.heads, head_dim, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.ff = FeedForward(width, spec.ff, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


def sinusoidal(n: int, width: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(1e4) / width))
    pe = torch.zeros(n, width)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : width // 2]
    return pe


class Transformer(nn.Module):
    # Its 3-D features are (batch, steps, features): hints transpose them (distillation).
    steps_first_features = True

    def __init__(self, spec: TransformerSpec, input_shape: list[int], num_classes: int):
        super().__init__()
        if len(input_shape) < 2:
            raise ConfigError(f"model: transformer reads sequences, (C, L) or (C, H, W) inputs, "
                              f"but the data gives {input_shape}; use mlp for flat features")
        steps, kernel = input_shape[-1], spec.kernel or spec.patch
        if kernel > steps:
            raise ConfigError(f"model: transformer patch/kernel {kernel} is longer than the "
                              f"{steps}-step input; lower `patch` (and `kernel`)")
        pad = (kernel - spec.patch + 1) // 2 if kernel > spec.patch else 0  # steps / patch tokens
        self.embed = nn.Conv1d(math.prod(input_shape[:-1]), spec.width, kernel,
                               stride=spec.patch, padding=pad)
        tokens = (steps + 2 * pad - kernel) // spec.patch + 1
        self.pooling = spec.pooling
        if spec.pooling == "cls":
            self.cls = nn.Parameter(torch.zeros(1, 1, spec.width))
            tokens += 1
        if spec.positions == "learned":
            self.pos = nn.Parameter(torch.randn(1, tokens, spec.width) * 0.02)
        else:
            self.register_buffer("pos", sinusoidal(tokens, spec.width)[None], persistent=False)
        self.layers = nn.Sequential(*[EncoderLayer(spec.width, s, spec.head_dim, spec.dropout)
                                      for s in spec.layout()])
        self.norm = nn.LayerNorm(spec.width)
        self.head = nn.Linear(spec.width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x.reshape(x.shape[0], -1, x.shape[-1])).transpose(1, 2)
        if self.pooling == "cls":
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], dim=1)
        t = self.norm(self.layers(t + self.pos))
        return self.head(t[:, 0] if self.pooling == "cls" else t.mean(dim=1))

    def after_pruning(self) -> None:
        for layer in self.layers:
            layer.attn.sync()

    def pruning_plan(self) -> tuple[dict, list[nn.Module], list]:
        """torch-pruning arguments: heads per qkv Linear; the layers that write the residual
        stream (kept whole: only heads and feed-forward neurons are removed); and the free
        parameters (positions, [CLS]) with their width axis."""
        heads = {layer.attn.qkv: layer.attn.num_heads for layer in self.layers}
        keep = [self.embed, self.head] + [m for layer in self.layers
                                          for m in (layer.attn.proj, layer.ff.fc2)]
        free = [(p, 2) for p in (getattr(self, "pos", None), getattr(self, "cls", None))
                if isinstance(p, nn.Parameter)]
        return heads, keep, free
