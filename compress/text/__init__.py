"""Pretrained sentence encoders (Hugging Face BERT) for text pipelines: tokenization, the
encoder with mean pooling and an in-model vocabulary remap, students cut from a teacher, and the
embedding quality metrics. Needs the optional extra `compress[transformers]`."""

from __future__ import annotations

from compress.errors import ConfigError


def require_transformers():
    """The `transformers` module, or a one-line ConfigError saying how to install it."""
    try:
        import tokenizers  # noqa: F401
        import transformers
    except ImportError as e:
        raise ConfigError(f"text pipelines need Hugging Face transformers and tokenizers ({e.name} "
                          "is missing): pip install 'compress[transformers]'") from e
    return transformers
