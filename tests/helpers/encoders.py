# pytest tests/test_encoders.py
"""Tiny random-init checkpoints of every encoder family, saved with `save_pretrained` as the Hub ships them."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCTC, SeamlessM4TFeatureExtractor, Wav2Vec2FeatureExtractor

from asr_lightning.text import build_vocab, make_tokenizer

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
CNN = {"conv_dim": [16] * 7, "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2}
# name -> (model_type, config fields, whether its feature extractor returns attention masks)
ENCODERS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "hubert": ("hubert", CNN, False),  # group norm (hubert-base): no masks
    "wavlm": ("wavlm", {**CNN, "num_buckets": 16, "max_bucket_distance": 32}, False),
    "data2vec_audio": ("data2vec-audio", {**CNN, "conv_pos_kernel_size": 5, "num_conv_pos_embeddings": 5}, True),
    "wav2vec2_conformer": ("wav2vec2-conformer", {**CNN, "conv_depthwise_kernel_size": 3}, False),
    # XLS-R / MMS / large-lv60: the layer-norm ("stable") wav2vec2 variant, trained with masks
    "xls_r_like": ("wav2vec2", {**CNN, "feat_extract_norm": "layer", "do_stable_layer_norm": True}, True),
    "w2v_bert": ("wav2vec2-bert", {"feature_projection_input_dim": 160, "conv_depthwise_kernel_size": 3}, True),
}
# the demo corpus's characters, uppercased as the text normalisation does
DEMO_VOCAB = build_vocab([string.ascii_uppercase + "'"])


def save_encoder(kind: str, out: Path, tokenizer: bool = True, seed: int = 0, head: bool = False) -> Path:
    """A pretrain-only style checkpoint (base model, no CTC head; `head`: a fine-tuned one, `<family>.*` weights
    and `lm_head`) with its feature extractor, and a character tokenizer when `tokenizer`."""
    model_type, fields, masks = ENCODERS[kind]
    torch.manual_seed(seed)
    config = AutoConfig.for_model(model_type, **SMALL, **fields, vocab_size=len(DEMO_VOCAB))
    (AutoModelForCTC if head else AutoModel).from_config(config).save_pretrained(out)
    if model_type == "wav2vec2-bert":
        fe = SeamlessM4TFeatureExtractor()
    else:
        fe = Wav2Vec2FeatureExtractor(return_attention_mask=masks, do_normalize=True)
    fe.save_pretrained(out)
    if tokenizer:
        make_tokenizer(DEMO_VOCAB).save_pretrained(out)
    return out
