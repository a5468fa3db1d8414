# pytest tests/test_frontend.py
"""What a model takes and gives per clip, asked in one place: its input features and its CTC output frames.

Filtering (the alignability check), the CTC loss lengths, decoding over each clip's own frames, chunking and
timestamps all count frames here, so an encoder with another geometry changes this module only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def input_features(feature_extractor: Any, audio: np.ndarray) -> np.ndarray:
    """One clip's model input: (samples,) audio at the extractor's rate, normalised as the model expects."""
    values = feature_extractor(audio, sampling_rate=feature_extractor.sampling_rate).input_values[0]
    return np.asarray(values, dtype=np.float32)


def output_frames(config: Any, num_samples: int) -> int:
    """Logit frames a CTC model (its `config`) makes of `num_samples` input samples."""
    return ctc_output_frames(int(num_samples), tuple(config.conv_kernel), tuple(config.conv_stride))


def frame_seconds(config: Any, sampling_rate: int) -> float:
    """Seconds per logit frame (its hop): 0.02 for wav2vec2 at 16 kHz."""
    return config.inputs_to_logits_ratio / sampling_rate


def ctc_output_frames(num_samples: int, kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Frames a convolutional feature encoder makes from `num_samples` (as `_get_feat_extract_output_lengths`)."""
    for k, s in zip(kernels, strides, strict=True):
        num_samples = (num_samples - k) // s + 1
    return max(num_samples, 0)


def ctc_min_frames(labels: Sequence[int]) -> int:
    """Fewest frames CTC needs for `labels`: one per label plus a blank between each repeated pair."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:], strict=False))
