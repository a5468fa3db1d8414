# pytest tests/test_throughput.py
"""FLOP counting: wav2vec2-base's GFLOP per audio-second, and the fit at lengths it was not fitted on."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from asr_lightning.throughput import flops_coefficients

BASE = Wav2Vec2Config(vocab_size=32)  # wav2vec2-base's architecture


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
