# pytest tests/test_throughput.py
"""FLOP counting and the throughput callback's logged speed and padding efficiency."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

import train
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


def test_training_logs_throughput_and_padding_efficiency(demo_cfg, tmp_path: Path) -> None:
    cfg = demo_cfg("data.max_batch_seconds=20", "trainer.max_steps=6", "trainer.log_every_n_steps=2")
    metrics = train.train(cfg)
    assert 0.5 < metrics["train/padding_efficiency"] <= 1.0
    assert metrics["train/epoch_audio_sec_per_sec"] > 0
    rows = list(csv.DictReader(next((tmp_path / "run").rglob("metrics.csv")).open()))
    speed = [r for r in rows if r.get("train/audio_sec_per_sec")]
    assert len(speed) == 3  # every 2 of 6 batches
    for row in speed:
        assert float(row["train/audio_sec_per_sec"]) > 0 and float(row["train/tflops_per_sec"]) > 0
        assert not row.get("train/mfu")  # no peak FLOP/s known for CPUs


def test_mfu_is_logged_when_the_peak_is_given(demo_cfg, tmp_path: Path) -> None:
    cfg = demo_cfg("trainer.max_steps=2", "trainer.log_every_n_steps=1", "callbacks.throughput.peak_flops=1e12")
    train.train(cfg)
    rows = list(csv.DictReader(next((tmp_path / "run").rglob("metrics.csv")).open()))
    mfu = [float(r["train/mfu"]) for r in rows if r.get("train/mfu")]
    tflops = [float(r["train/tflops_per_sec"]) for r in rows if r.get("train/tflops_per_sec")]
    assert len(mfu) == 2 and mfu == pytest.approx(tflops)  # peak of 1 TFLOP/s: MFU = TFLOP/s
