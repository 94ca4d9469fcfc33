"""A user's own sentence encoder: a local Hugging Face folder of a BERT-family model, checked
before anything is loaded, and the pooling it was trained with.

What the folder must hold: `config.json` (model_type `bert`: MiniLM, BGE, E5, GTE and other
BERT-architecture encoders), the weights as `model.safetensors` (never a pickle), and the fast
tokenizer's `tokenizer.json`. The pooling comes from sentence-transformers' Pooling module
(`modules.json` -> its folder's `config.json`, else `1_Pooling/config.json`) when there is one:
the model was trained to be read that way. A plain HF folder has none; sentence-transformers
then mean-pools, and so do we.
"""

from __future__ import annotations

import json
from pathlib import Path

from compress.errors import ConfigError

POOLINGS = ("mean", "cls")
# sentence-transformers' Pooling config keys -> our name (None: a pooling we do not run)
ST_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
            "pooling_mode_max_tokens": None, "pooling_mode_mean_sqrt_len_tokens": None,
            "pooling_mode_weightedmean_tokens": None, "pooling_mode_lasttoken": None}
SUPPORTED_TYPES = ("bert",)


def _read_json(path: Path, folder: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the {what} ({type(e).__name__}); "
                          f"is {folder} a complete Hugging Face model folder?") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the {what} is not a JSON object")
    return data


def check_model_dir(folder: Path) -> dict:
    """The HF config of the BERT-family encoder in `folder`, or a one-line ConfigError naming
    what is missing or unsupported and what the folder needs instead."""
    if not folder.is_dir():
        raise ConfigError(f"model_dir {folder}: not a folder; give a local Hugging Face model "
                          "folder (config.json, model.safetensors, tokenizer.json)")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model_dir {folder}: no config.json, so not a Hugging Face model "
                          "folder (save one with model.save_pretrained(folder))")
    config = _read_json(folder / "config.json", folder, "model config")
    kind = config.get("model_type")
    if kind not in SUPPORTED_TYPES:
        raise ConfigError(f"model_dir {folder}: model_type '{kind}' is not supported; only "
                          f"BERT-family encoders (model_type {', '.join(SUPPORTED_TYPES)}) are")
    if not (folder / "model.safetensors").is_file():
        found = sorted(p.name for p in folder.glob("*.bin")) or ["no weights"]
        raise ConfigError(f"model_dir {folder}: no model.safetensors ({', '.join(found)}); "
                          "save the weights with save_pretrained(folder, safe_serialization=True)")
    if not (folder / "tokenizer.json").is_file():
        raise ConfigError(f"model_dir {folder}: no tokenizer.json (the fast tokenizer); save it "
                          "with AutoTokenizer.from_pretrained(...).save_pretrained(folder)")
    return config


def _pooling_config_path(folder: Path) -> Path | None:
    """Where sentence-transformers keeps this model's Pooling module config, if anywhere."""
    modules = folder / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{modules}: cannot read it ({type(e).__name__})") from e
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and str(entry.get("type", "")).endswith(".Pooling"):
                return folder / str(entry.get("path", "")) / "config.json"
    fallback = folder / "1_Pooling" / "config.json"
    return fallback if fallback.is_file() else None


def trained_pooling(folder: Path) -> tuple[str, str]:
    """(pooling, where it was read): the one sentence-transformers' config selects, else
    ("mean", "default")."""
    path = _pooling_config_path(folder)
    if path is None:
        return "mean", "default (no sentence-transformers Pooling config)"
    config = _read_json(path, folder, "sentence-transformers pooling config")
    modes = [k for k in ST_MODES if config.get(k)]
    if len(modes) != 1 or ST_MODES[modes[0]] is None:
        named = ", ".join(modes) or "none"
        raise ConfigError(f"{path}: pooling {named} is not supported; a sentence encoder here "
                          f"pools one way, {' or '.join(POOLINGS)} (set pooling: to override)")
    return ST_MODES[modes[0]], str(path.relative_to(folder))
