# pytest tests/test_throughput.py   (callbacks.ThroughputLogger logs what is counted here)
"""Model FLOPs of CTC training and inference, per clip length, for throughput and MFU.

FLOPs are counted, not guessed: `torch.utils.flop_counter` runs one forward + backward of the run's own
architecture (any `AutoModelForCTC` encoder: wav2vec2, HuBERT, WavLM, data2vec-audio, wav2vec2-conformer,
w2v-BERT 2.0) on the meta device (no memory, no time) at two clip lengths and fits
`flops(s) = a * s + b * s**2` for a clip of `s` seconds (the quadratic term is self-attention). The input is
what `Frontend` feeds the model for that much audio: waveform samples, or w2v-BERT's stacked filterbank frames.
Only the parameters that train get weight gradients, so a frozen CNN is counted as frozen. wav2vec2-base with
a frozen feature encoder comes to about 40 GFLOP per audio-second (fine-tuning it all: about 50); w2v-BERT 2.0
(600M parameters, no CNN) to about 250. These are model FLOPs of the real audio: padding, recomputation under
gradient checkpointing and layerdrop's skipped layers are not counted, so MFU measures useful work (the PaLM
definition).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForCTC, PretrainedConfig, PreTrainedModel

from asr_lightning.frontend import Frontend
from asr_lightning.text import load_feature_extractor


def flops_coefficients(
    config: PretrainedConfig, train_feature_encoder: bool = False, training: bool = True, seconds: float = 5.0
) -> tuple[float, float]:
    """Coefficients `(a, b)` of the FLOPs of one clip of `s` seconds, `a * s + b * s**2`.

    Args:
        config: the model's architecture (any config of `transformers.MODEL_FOR_CTC_MAPPING`).
        train_feature_encoder: whether the CNN feature encoder gets gradients (False: frozen). A no-op for
            filterbank models (w2v-BERT 2.0): their feature projection always trains.
        training: forward + backward (True) or forward only (inference).
        seconds: the shorter of the two clip lengths measured (the other is twice as long).
    """
    model, frontend = _meta_model(config, train_feature_encoder, training)
    counts = [_count(model, frontend, training, s) for s in (seconds, 2 * seconds)]
    # f(s) = a s + b s^2 at s and 2s:  f(2s) - 2 f(s) = 2 b s^2
    b = (counts[1] - 2 * counts[0]) / (2 * seconds**2)
    a = (counts[0] - b * seconds**2) / seconds
    return a, b


def clips_flops(coefficients: tuple[float, float], seconds: Iterable[float]) -> float:
    """FLOPs of clips of these durations, from `flops_coefficients`."""
    a, b = coefficients
    return sum(a * s + b * s * s for s in seconds)


def trains_feature_encoder(model: PreTrainedModel) -> bool:
    """Whether a CTC model's CNN feature encoder gets gradients (`flops_coefficients`' `train_feature_encoder`).

    Filterbank models (w2v-BERT 2.0) have no CNN: False.
    """
    if model.main_input_name != "input_values":
        return False
    return any(p.requires_grad for p in model.base_model.feature_extractor.parameters())


def _meta_model(
    config: PretrainedConfig, train_feature_encoder: bool, training: bool
) -> tuple[PreTrainedModel, Frontend]:
    cfg = type(config)(**{**config.to_dict(), "layerdrop": 0.0, "apply_spec_augment": False})
    # the family's default extractor: only its frame geometry counts here (Frontend raises, naming the supported
    # model types, for a config with no CTC model)
    frontend = Frontend(cfg, load_feature_extractor(None, cfg))
    # SDPA: the same FLOPs as eager or flash-attention, and it runs on meta tensors (a run's config may ask
    # for flash-attention). WavLM has no SDPA path: eager.
    supports_sdpa = transformers.MODEL_FOR_CTC_MAPPING[type(cfg)]._supports_sdpa
    with torch.device("meta"):
        model = AutoModelForCTC.from_config(cfg, attn_implementation="sdpa" if supports_sdpa else "eager")
    model.train(training)
    if not train_feature_encoder and not frontend.filterbank:
        model.freeze_feature_encoder()  # the CNN of waveform models; w2v-BERT's feature projection trains
    return model, frontend


def _count(model: PreTrainedModel, frontend: Frontend, training: bool, seconds: float) -> float:
    steps = frontend.input_frames(int(seconds * frontend.sampling_rate))
    # (1, samples), or (1, frames, 160) stacked filterbank frames
    shape = (1, steps, model.config.feature_projection_input_dim) if frontend.filterbank else (1, steps)
    with torch.device("meta"):
        inputs = torch.zeros(shape)
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        logits = model(**{frontend.input_name: inputs}).logits  # (1, frames, vocab)
        if training:
            logits.float().log_softmax(-1).sum().backward()
    return float(counter.get_total_flops())
