# pytest tests/test_throughput.py   (callbacks.ThroughputLogger logs what is counted here)
"""Model FLOPs of wav2vec2 CTC training and inference, per clip length, for throughput and MFU.

FLOPs are counted, not guessed: `torch.utils.flop_counter` runs one forward + backward of the run's own
architecture on the meta device (no memory, no time) at two clip lengths and fits
`flops(s) = a * s + b * s**2` for a clip of `s` seconds (the quadratic term is self-attention). Only the
parameters that train get weight gradients, so a frozen CNN is counted as frozen. wav2vec2-base with a frozen
feature encoder comes to about 40 GFLOP per audio-second (fine-tuning it all: about 50). These are model
FLOPs of the real audio: padding, recomputation under gradient checkpointing and layerdrop's skipped layers
are not counted, so MFU measures useful work (the PaLM definition).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC


def flops_coefficients(
    config: Wav2Vec2Config, train_feature_encoder: bool = False, training: bool = True, seconds: float = 5.0
) -> tuple[float, float]:
    """Coefficients `(a, b)` of the FLOPs of one clip of `s` seconds, `a * s + b * s**2`.

    Args:
        config: the model's architecture.
        train_feature_encoder: whether the CNN feature encoder gets gradients (False: frozen).
        training: forward + backward (True) or forward only (inference).
        seconds: the shorter of the two clip lengths measured (the other is twice as long).
    """
    counts = [_count(config, train_feature_encoder, training, s) for s in (seconds, 2 * seconds)]
    # f(s) = a s + b s^2 at s and 2s:  f(2s) - 2 f(s) = 2 b s^2
    b = (counts[1] - 2 * counts[0]) / (2 * seconds**2)
    a = (counts[0] - b * seconds**2) / seconds
    return a, b


def clips_flops(coefficients: tuple[float, float], seconds: Iterable[float]) -> float:
    """FLOPs of clips of these durations, from `flops_coefficients`."""
    a, b = coefficients
    return sum(a * s + b * s * s for s in seconds)


def _count(config: Wav2Vec2Config, train_feature_encoder: bool, training: bool, seconds: float) -> float:
    cfg = Wav2Vec2Config(**{**config.to_dict(), "layerdrop": 0.0, "apply_spec_augment": False})
    cfg._attn_implementation = "sdpa"  # the same FLOPs as eager or flash-attention; it runs on meta tensors
    with torch.device("meta"):
        model = Wav2Vec2ForCTC(cfg)
        audio = torch.zeros(1, int(seconds * 16000))
    model.train(training)
    if not train_feature_encoder:
        model.freeze_feature_encoder()
    with FlopCounterMode(display=False) as counter:
        logits = model(audio).logits  # (1, frames, vocab)
        if training:
            logits.float().log_softmax(-1).sum().backward()
    return float(counter.get_total_flops())
