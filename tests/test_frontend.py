# pytest tests/test_frontend.py
"""frontend.py: CTC frame arithmetic (as transformers counts frames), and frames asked of a model's config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from asr_lightning.data import WAV2VEC2_CONV_KERNEL, WAV2VEC2_CONV_STRIDE
from asr_lightning.frontend import ctc_min_frames, ctc_output_frames, frame_seconds, input_features, output_frames


def tiny_wav2vec2() -> Wav2Vec2Model:
    config = Wav2Vec2Config(
        conv_dim=(8,) * 7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    assert tuple(config.conv_kernel) == WAV2VEC2_CONV_KERNEL
    assert tuple(config.conv_stride) == WAV2VEC2_CONV_STRIDE
    return Wav2Vec2Model(config)


def test_ctc_output_frames_one_second() -> None:
    assert ctc_output_frames(16000, (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)) == 49


def test_ctc_output_frames_matches_transformers() -> None:
    model = tiny_wav2vec2()
    samples = [400, 401, 719, 720, 1000, 16000, 16001, 48000, 123_457]
    expected = model._get_feat_extract_output_lengths(torch.tensor(samples)).tolist()
    got = [ctc_output_frames(n, WAV2VEC2_CONV_KERNEL, WAV2VEC2_CONV_STRIDE) for n in samples]
    assert got == expected
    assert got[0] == 1  # 400 samples = one 25 ms receptive field


def test_ctc_output_frames_too_short_is_zero() -> None:
    assert ctc_output_frames(0, WAV2VEC2_CONV_KERNEL, WAV2VEC2_CONV_STRIDE) == 0
    assert ctc_output_frames(100, WAV2VEC2_CONV_KERNEL, WAV2VEC2_CONV_STRIDE) == 0


def test_ctc_output_frames_kernel_stride_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        ctc_output_frames(16000, (10, 3), (5,))


@pytest.mark.parametrize(
    ("labels", "frames"),
    [([1, 2, 2, 3], 5), ([1, 1, 1], 5), ([1, 2, 3], 3), ([4], 1), ([], 0), ([1, 2, 1], 3)],
)
def test_ctc_min_frames(labels: list[int], frames: int) -> None:
    assert ctc_min_frames(labels) == frames


def test_output_frames_asks_the_config() -> None:
    model = tiny_wav2vec2()
    samples = [400, 16000, 16001]
    expected = model._get_feat_extract_output_lengths(torch.tensor(samples)).tolist()
    assert [output_frames(model.config, n) for n in samples] == expected
    assert frame_seconds(model.config, 16000) == 0.02


def test_input_features_normalise_as_the_feature_extractor() -> None:
    fe = Wav2Vec2FeatureExtractor(do_normalize=True)
    audio = np.random.default_rng(0).normal(3.0, 2.0, 1600).astype(np.float32)
    values = input_features(fe, audio)
    assert values.dtype == np.float32 and values.shape == audio.shape
    assert abs(values.mean()) < 1e-3 and abs(values.std() - 1) < 1e-2
