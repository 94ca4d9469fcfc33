"""A tiny random BERT (3 layers, hidden 32) with the real all-MiniLM-L6-v2 tokenizer files, saved
as a Hugging Face folder: what the text stages load, without the 90 MB model or a network."""

from __future__ import annotations


def make_tiny_bert(folder, layers: int = 3):
    import torch
    import transformers

    from compress.text.encoder import copy_tokenizer, packaged_model_dir

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=128)
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    copy_tokenizer(packaged_model_dir("all-minilm-l6-v2"), folder)
    return folder
