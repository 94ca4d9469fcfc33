"""compress.text.model_dir: a user's own encoder folder is checked before it is loaded, with one
line naming what is wrong; the pooling is the one sentence-transformers' config says."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from compress.errors import ConfigError
from compress.text.model_dir import check_model_dir, trained_pooling


@pytest.fixture
def folder(tiny_bert_dir, tmp_path):
    """A writable copy of the tiny BERT folder (config, safetensors, tokenizer)."""
    return shutil.copytree(tiny_bert_dir, tmp_path / "model")


def _one_line(e) -> str:
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_bert_folder_passes_and_pools_by_mean_without_a_pooling_config(folder):
    # execute / assert
    assert check_model_dir(folder)["model_type"] == "bert"
    assert trained_pooling(folder)[0] == "mean"


@pytest.mark.parametrize("breakage, message", [
    ("missing", "not a folder"),
    ("no_config", "no config.json"),
    ("roberta", "model_type 'roberta' is not supported"),
    ("bin_only", r"no model.safetensors \(pytorch_model.bin\)"),
    ("no_tokenizer", "no tokenizer.json"),
    ("bad_json", "cannot read the model config"),
])
def test_a_folder_that_is_not_such_a_model_is_a_one_line_error(folder, breakage, message):
    # setup
    if breakage == "missing":
        folder = folder / "nope"
    elif breakage == "no_config":
        (folder / "config.json").unlink()
    elif breakage == "roberta":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {"model_type": "roberta"}))
    elif breakage == "bin_only":
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    elif breakage == "no_tokenizer":
        (folder / "tokenizer.json").unlink()
    elif breakage == "bad_json":
        (folder / "config.json").write_text("{not json")
    # execute / assert
    with pytest.raises(ConfigError) as e:
        check_model_dir(folder)
    assert re.search(message, _one_line(e))


def _pooling_config(folder, path: str, **modes) -> None:
    (folder / path).mkdir(parents=True)
    (folder / path / "config.json").write_text(json.dumps(modes))


def test_pooling_follows_modules_json_to_the_pooling_folder(folder):
    # setup: the Pooling module lives in a folder not named 1_Pooling
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "pool", "type": "sentence_transformers.models.Pooling"}]))
    _pooling_config(folder, "pool", pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    _pooling_config(folder, "1_Pooling", pooling_mode_mean_tokens=True)  # not what modules say
    # execute / assert
    assert trained_pooling(folder) == ("cls", "pool/config.json")


def test_a_pooling_we_do_not_run_is_a_one_line_error(folder):
    # setup
    _pooling_config(folder, "1_Pooling", pooling_mode_max_tokens=True)
    # execute / assert
    with pytest.raises(ConfigError, match="pooling_mode_max_tokens is not supported") as e:
        trained_pooling(folder)
    _one_line(e)
