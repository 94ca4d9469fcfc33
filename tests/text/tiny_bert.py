"""A tiny random BERT (3 layers, hidden 32) with the real all-MiniLM-L6-v2 tokenizer files, saved
as a Hugging Face folder: what the text stages load, without the 90 MB model or a network. With
`pooling`, also sentence-transformers' modules.json and Pooling config, as a user's own
sentence-transformers model folder has them."""

from __future__ import annotations

import json


def make_tiny_bert(folder, layers: int = 3, pooling: str | None = None):
    import torch
    import transformers

    from compress.text.encoder import copy_tokenizer, packaged_model_dir

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=128)
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    copy_tokenizer(packaged_model_dir("all-minilm-l6-v2"), folder)
    if pooling is not None:
        modules = [{"idx": 0, "name": "0", "path": "",
                    "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling"}]
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": 32, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False}))
    return folder
