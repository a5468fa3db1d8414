# pytest tests/test_frontend.py
"""frontend.py: every family's model input and CTC frame count, asked of the model, equal what the model does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.encoders import CNN, ENCODERS, SMALL
from transformers import AutoConfig, AutoModelForCTC, SeamlessM4TFeatureExtractor, Wav2Vec2FeatureExtractor

from asr_lightning.frontend import Frontend, ctc_min_frames

SAMPLES = [399, 400, 559, 560, 719, 720, 1000, 16000, 16001, 23_457]
# the families of tests/helpers/encoders.py, plus the two geometries an adapter changes
FAMILIES = {
    **{k: (t, f) for k, (t, f, _) in ENCODERS.items()},
    "w2v_bert_adapter": ("wav2vec2-bert", {**ENCODERS["w2v_bert"][1], "add_adapter": True, "adapter_kernel_size": 3,
                                           "adapter_stride": 2, "num_adapter_layers": 1, "output_hidden_size": 32}),
    "wav2vec2_adapter": ("wav2vec2", {**CNN, "add_adapter": True, "adapter_stride": 2, "num_adapter_layers": 2,
                                      "output_hidden_size": 32}),
}  # fmt: skip


def frontend_and_model(family: str) -> tuple[Frontend, torch.nn.Module]:
    model_type, fields = FAMILIES[family]
    config = AutoConfig.for_model(model_type, **SMALL, **fields, vocab_size=8)
    fe = SeamlessM4TFeatureExtractor() if model_type == "wav2vec2-bert" else Wav2Vec2FeatureExtractor()
    torch.manual_seed(0)
    return Frontend(config, fe), AutoModelForCTC.from_config(config).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_output_frames_are_the_frames_the_model_makes(family: str) -> None:
    frontend, model = frontend_and_model(family)
    rng = np.random.default_rng(0)
    for n in SAMPLES:
        expected = frontend.output_frames(n)
        if expected == 0:
            continue
        inputs = torch.from_numpy(frontend.features(rng.normal(size=n).astype(np.float32)))[None]
        with torch.no_grad():
            logits = model(**{frontend.input_name: inputs}).logits  # (1, frames, vocab)
        assert logits.shape[1] == expected, n


@pytest.mark.parametrize(
    ("family", "name", "hop", "min_samples"),
    [
        ("hubert", "input_values", 320, 400),  # wav2vec2's CNN: 20 ms frames, a 25 ms receptive field
        ("w2v_bert", "input_features", 320, 560),  # two stacked 10 ms filterbank frames of a 25 ms window
        ("w2v_bert_adapter", "input_features", 640, 560),  # the adapter halves the frame rate
        ("wav2vec2_adapter", "input_values", 1280, 400),
    ],
)
def test_geometry_is_asked_of_the_model(family: str, name: str, hop: int, min_samples: int) -> None:
    frontend, _ = frontend_and_model(family)
    assert frontend.input_name == name and frontend.hop_samples == hop
    assert frontend.frame_seconds == hop / 16000
    assert frontend.min_samples() == min_samples
    assert frontend.output_frames(min_samples) == 1 and frontend.output_frames(min_samples - 1) == 0


def test_wav2vec2_makes_49_frames_of_a_second() -> None:
    frontend, _ = frontend_and_model("xls_r_like")
    assert frontend.output_frames(16000) == 49 and frontend.output_frames(0) == 0


def test_filterbank_input_frames_match_the_feature_extractor() -> None:
    frontend, _ = frontend_and_model("w2v_bert")
    rng = np.random.default_rng(1)
    for n in SAMPLES:
        features = frontend.features(rng.normal(size=n).astype(np.float32))
        assert features.shape == (frontend.input_frames(n), 160) and features.dtype == np.float32


@pytest.mark.parametrize(
    ("labels", "frames"),
    [([1, 2, 2, 3], 5), ([1, 1, 1], 5), ([1, 2, 3], 3), ([4], 1), ([], 0), ([1, 2, 1], 3)],
)
def test_ctc_min_frames(labels: list[int], frames: int) -> None:
    assert ctc_min_frames(labels) == frames


def test_waveform_features_normalise_as_the_feature_extractor() -> None:
    frontend, _ = frontend_and_model("hubert")
    audio = np.random.default_rng(0).normal(3.0, 2.0, 1600).astype(np.float32)
    values = frontend.features(audio)
    assert values.dtype == np.float32 and values.shape == audio.shape
    assert abs(values.mean()) < 1e-3 and abs(values.std() - 1) < 1e-2


def test_an_encoder_without_a_ctc_model_is_named() -> None:
    with pytest.raises(ValueError, match="no CTC model"):
        Frontend(AutoConfig.for_model("whisper"), Wav2Vec2FeatureExtractor())


@pytest.mark.parametrize("normalize", [True, False])
def test_waveform_features_are_the_feature_extractors_bits(normalize: bool) -> None:
    frontend, _ = frontend_and_model("hubert")
    frontend.feature_extractor.do_normalize = normalize
    rng = np.random.default_rng(2)
    for n in (400, 1601, 23_457):
        for scale in (0.01, 1.0, 3.0):
            audio = rng.normal(0.3, scale, n).astype(np.float32)
            fe = frontend.feature_extractor
            expected = np.asarray(fe(audio, sampling_rate=16000).input_values[0], dtype=np.float32)
            assert np.array_equal(frontend.features(audio), expected)
