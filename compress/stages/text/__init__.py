"""The text stages: sentence encoders (the transformers extra), one module each, registered as
`pretrained`, `embed_distill`, `embed_export`, `embed_quantize` and `embed_bench` (the YAML
names; the folder stands in for the prefix)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from compress.errors import ConfigError

if TYPE_CHECKING:
    from compress.data import TextCorpus
    from compress.stages.base import StageContext


def text_corpus(ctx: StageContext) -> TextCorpus:
    """The pipeline's sentences, or a ConfigError if its data is not text."""
    from compress.data import TextCorpus

    data = ctx.dataset()
    if not isinstance(data, TextCorpus):
        raise ConfigError(f"stage '{ctx.stage_id}' needs text data (data: {{source: pydoc}}), "
                          f"not '{data.name}'")
    return data
