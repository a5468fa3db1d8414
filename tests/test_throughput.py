# pytest tests/test_throughput.py
"""FLOP counting: wav2vec2-base's GFLOP per audio-second, the fit at lengths it was not fitted on, and every
CTC encoder family counted (waveform and filterbank)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig, AutoModelForCTC, Wav2Vec2Config, Wav2Vec2ForCTC

from asr_lightning.throughput import flops_coefficients, trains_feature_encoder

BASE = Wav2Vec2Config(vocab_size=32)  # wav2vec2-base's architecture
TINY = {
    "vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "conv_dim": (8,) * 7, "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2,
}  # fmt: skip
# what each family needs beyond TINY to stay tiny (its own position embeddings and convolution module)
FAMILIES = {
    "hubert": {},
    "wavlm": {"num_buckets": 8, "max_bucket_distance": 16},
    "data2vec-audio": {"conv_pos_kernel_size": 5, "num_conv_pos_embeddings": 5},
    "wav2vec2-conformer": {"conv_depthwise_kernel_size": 3},
    "wav2vec2-bert": {"conv_depthwise_kernel_size": 3, "feature_projection_input_dim": 160, "output_hidden_size": 32},
}


def count(config: Wav2Vec2Config, seconds: float, frozen: bool) -> float:
    with torch.device("meta"):
        model = Wav2Vec2ForCTC(Wav2Vec2Config(**{**config.to_dict(), "layerdrop": 0.0, "apply_spec_augment": False}))
        audio = torch.zeros(1, int(seconds * 16000))
    if frozen:
        model.freeze_feature_encoder()
    with FlopCounterMode(display=False) as counter:
        model(audio).logits.sum().backward()
    return counter.get_total_flops()


def test_base_frozen_cnn_is_about_40_gflop_per_audio_second() -> None:
    a, b = flops_coefficients(BASE, train_feature_encoder=False)
    assert 30e9 < a + b < 45e9  # the estimate was ~35
    full_a, full_b = flops_coefficients(BASE, train_feature_encoder=True)
    assert full_a > a * 1.15  # the CNN's weight and input gradients
    assert b > 0  # self-attention grows with the square of the length
    inference_a, _ = flops_coefficients(BASE, training=False)
    assert inference_a < a / 2  # a backward pass costs about twice the forward


def test_fit_predicts_a_length_it_was_not_fitted_on() -> None:
    a, b = flops_coefficients(BASE, train_feature_encoder=False)
    assert a * 12 + b * 144 == pytest.approx(count(BASE, 12.0, frozen=True), rel=0.01)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_ctc_encoder_family_is_counted(model_type: str) -> None:
    config = AutoConfig.for_model(model_type, **{**TINY, **FAMILIES[model_type]})
    a, b = flops_coefficients(config)
    inference_a, inference_b = flops_coefficients(config, training=False)
    assert a > 0 and b >= 0 and inference_a > 0 and inference_b >= 0
    assert a + b > inference_a + inference_b  # a backward pass on top of the forward


def test_w2v_bert_has_no_cnn_to_freeze() -> None:
    config = AutoConfig.for_model("wav2vec2-bert", **{**TINY, **FAMILIES["wav2vec2-bert"]})
    # its feature projection (the "feature encoder" of filterbank models) trains either way
    assert flops_coefficients(config, train_feature_encoder=True) == flops_coefficients(config)
    with torch.device("meta"):
        model = AutoModelForCTC.from_config(config)
    assert not trains_feature_encoder(model)


def test_trains_feature_encoder_reads_the_cnn() -> None:
    with torch.device("meta"):
        model = AutoModelForCTC.from_config(AutoConfig.for_model("hubert", **TINY))
    assert trains_feature_encoder(model)
    model.freeze_feature_encoder()
    assert not trains_feature_encoder(model)
