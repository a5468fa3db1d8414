# pytest tests/test_frontend.py
"""What a model takes and gives per clip, asked in one place: its input features and its CTC output frames.

Filtering (the alignability check), the CTC loss lengths, decoding over each clip's own frames, chunking and
timestamps all count frames through `Frontend`, so an encoder with another geometry changes nothing else:
wav2vec2, HuBERT, WavLM and data2vec take waveforms (`input_values`, one per sample) through a CNN of 320x
downsampling; w2v-BERT 2.0 takes log-mel filterbanks (`input_features`: 10 ms frames, stacked in pairs) and
an optional convolutional adapter. The frame counts are the model class's own `_get_feat_extract_output_lengths`
over the feature extractor's own frame count, never a copy of their geometry.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import transformers

# Filterbank extractors (SeamlessM4TFeatureExtractor, w2v-BERT 2.0's): a 25 ms window every 10 ms at 16 kHz,
# with no centring (Kaldi's framing), then `stride` frames stacked into one input vector.
FBANK_WINDOW, FBANK_HOP = 400, 160


class Frontend:
    """A CTC model's view of audio: what to feed it and how many logit frames it makes.

    Args:
        config: the model's `PretrainedConfig` (any of `transformers.MODEL_FOR_CTC_MAPPING`).
        feature_extractor: its feature extractor (waveform `Wav2Vec2FeatureExtractor` or filterbank
            `SeamlessM4TFeatureExtractor`).
    """

    def __init__(self, config: Any, feature_extractor: Any) -> None:
        self.config = config
        self.feature_extractor = feature_extractor
        self.sampling_rate = int(feature_extractor.sampling_rate)
        self.input_name: str = feature_extractor.model_input_names[0]  # input_values or input_features
        if self.input_name not in ("input_values", "input_features"):
            raise ValueError(
                f"{type(feature_extractor).__name__} gives {self.input_name!r}: only waveform (input_values) and "
                "filterbank (input_features) CTC encoders are supported"
            )
        self._lengths_fn = _output_lengths_fn(config)
        # samples per logit frame, measured over a long input (conv stacks: exactly the product of strides)
        n = 1 << 22
        self.hop_samples = round(n / self.output_frames(n))

    @property
    def filterbank(self) -> bool:
        """Whether the model takes filterbank frames rather than waveform samples."""
        return self.input_name == "input_features"

    @property
    def uses_attention_mask(self) -> bool:
        """Whether batches carry attention masks (the feature extractor's setting)."""
        return bool(self.feature_extractor.return_attention_mask)

    @property
    def frame_seconds(self) -> float:
        """Seconds per logit frame (its hop): 0.02 for wav2vec2 at 16 kHz."""
        return self.hop_samples / self.sampling_rate

    def features(self, audio: np.ndarray) -> np.ndarray:
        """One clip's model input: (samples,) for waveform models, (frames, dim) for filterbank ones, float32."""
        fe = self.feature_extractor
        if self.filterbank:
            if self.input_frames(len(audio)) == 0:  # the extractor would divide by zero frames
                return np.zeros((0, fe.feature_size * fe.stride), dtype=np.float32)
            # padding=False: no frame padded up to a multiple of `stride` (the batch pads, with a mask)
            values = fe(audio, sampling_rate=fe.sampling_rate, padding=False).input_features[0]
        elif type(fe) is transformers.Wav2Vec2FeatureExtractor:
            # its own arithmetic, without its per-call batching and checks (a third of a short clip's cost in a
            # worker); bit-identical (tests/test_frontend.py)
            values = np.asarray(audio, dtype=np.float32)
            if fe.do_normalize:
                values = (values - values.mean()) / np.sqrt(values.var() + 1e-7)
        else:
            values = fe(audio, sampling_rate=fe.sampling_rate).input_values[0]
        return np.asarray(values, dtype=np.float32)

    def input_frames(self, num_samples: int) -> int:
        """Model input steps of `num_samples` samples: samples themselves, or stacked filterbank frames."""
        if not self.filterbank:
            return int(num_samples)
        frames = 0 if num_samples < FBANK_WINDOW else 1 + (int(num_samples) - FBANK_WINDOW) // FBANK_HOP
        return frames // int(self.feature_extractor.stride)

    def output_frames(self, num_samples: int) -> int:
        """Logit frames the model makes of `num_samples` input samples (0 when shorter than its receptive field)."""
        steps = self.input_frames(num_samples)
        if steps == 0:
            return 0
        return max(int(self._lengths_fn(torch.tensor(steps))), 0)

    def output_frames_batch(self, num_samples: Sequence[int], max_frames: int) -> list[int]:
        """Each clip's logit frames, capped at the batch's padded frame count."""
        return [min(self.output_frames(n), max_frames) for n in num_samples]

    def min_samples(self) -> int:
        """Fewest samples that give one logit frame."""
        low, high = 1, self.hop_samples * 64
        while low < high:  # output_frames is monotone in the length
            mid = (low + high) // 2
            low, high = (mid + 1, high) if self.output_frames(mid) < 1 else (low, mid)
        return low


def ctc_min_frames(labels: Sequence[int]) -> int:
    """Fewest frames CTC needs for `labels`: one per label plus a blank between each repeated pair."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:], strict=False))


def _output_lengths_fn(config: Any):
    """The model class's `_get_feat_extract_output_lengths`, bound to `config` alone (it reads nothing else)."""
    try:
        cls = transformers.MODEL_FOR_CTC_MAPPING[type(config)]
    except KeyError:
        raise ValueError(
            f"model_type {config.model_type!r} has no CTC model in transformers (AutoModelForCTC): use one of "
            f"{sorted({c.model_type for c in transformers.MODEL_FOR_CTC_MAPPING.keys()})}"
        ) from None
    fn = getattr(cls, "_get_feat_extract_output_lengths", None)
    if fn is None:
        raise ValueError(f"{cls.__name__} does not say how many frames it makes (_get_feat_extract_output_lengths)")
    owner = SimpleNamespace(config=config)
    return lambda lengths: fn(owner, lengths)
