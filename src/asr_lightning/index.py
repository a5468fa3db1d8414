# pytest tests/test_index.py
"""The one-off pass over a split: an index of what batching and filtering need, never audio arrays.

Two cached `datasets.map` passes, so that what changes often never re-reads audio:

- the audio pass reads each clip once (decoding it, to find every broken file and measure its length, or only
  its header with `validate_audio=False`) and keeps its id, raw transcript, length in samples at the model's
  rate and peak level, or why its audio cannot be used;
- the text pass (no audio) normalises and tokenises the transcript and applies the other filters. Its cache
  key holds the vocabulary, the normalisation, the duration limits and the model's frame geometry: a new
  vocabulary re-tokenises in seconds.

The audio stays where the source keeps it (a path, or the dataset's bytes) and is decoded in the DataLoader
workers (`transform.py`). An index row is a few hundred bytes where a float32 array was 232 MB per audio hour.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

import datasets

from asr_lightning import encoders
from asr_lightning.audio import AUDIO_ERROR_REASONS, AudioError, audio_length, audio_source, load_audio
from asr_lightning.frontend import Frontend, ctc_min_frames
from asr_lightning.text import build_processor, normalize_text, vocab_characters

# Why a clip is left out, in the order they are checked: the audio, then the transcript, then the fit of the two.
SKIP_REASONS = (
    *AUDIO_ERROR_REASONS,  # missing_file, undecodable, truncated, empty_audio, non_finite_audio
    "silent",  # digital silence under a non-empty transcript: a broken recording
    "empty_text",  # no transcript, or only whitespace
    "ignored_chars_only",  # nothing left once `chars_to_ignore` is deleted
    "oov_chars",  # train only: characters the vocab cannot spell would be trained as <unk>
    "too_short",
    "too_long",
    "unalignable",  # more CTC labels than the encoder makes frames
)
# Peak |x| under which a clip is digital silence (16-bit PCM: about 3 LSB); dithered silence is above it.
SILENCE_PEAK = 1e-4
AUDIO_INDEX = datasets.Features(
    {
        "id": datasets.Value("string"),
        "row": datasets.Value("int64"),  # the clip's row in its split of the source: where the workers read it
        "transcript": datasets.Value("string"),
        "input_length": datasets.Value("int64"),  # samples at the model's rate
        "peak": datasets.Value("float32"),  # NaN: not decoded (validate_audio=False)
        "skip": datasets.Value("string"),
        "error": datasets.Value("string"),
    }
)
INDEX = datasets.Features(
    {
        "id": datasets.Value("string"),
        "row": datasets.Value("int64"),
        "text": datasets.Value("string"),
        "input_length": datasets.Value("int64"),
        "labels": datasets.List(datasets.Value("int32")),
        "skip": datasets.Value("string"),
        "error": datasets.Value("string"),
    }
)
# What decides a model's frame counts (`Frontend`): its family and feature-encoder/adapter geometry.
GEOMETRY_KEYS = ("model_type", "conv_dim", "conv_kernel", "conv_stride", "add_adapter", "num_adapter_layers",
                 "adapter_stride", "adapter_kernel_size", "feature_projection_input_dim", "hidden_size",
                 "output_hidden_size")  # fmt: skip


def index_audio(
    example: dict[str, Any],
    row: int,
    audio_column: str,
    text_column: str,
    sampling_rate: int,
    validate_audio: bool,
    split: str,
    on_bad_audio: str,
) -> dict[str, Any]:
    """The audio pass over one source row (a `datasets.map` function, `with_indices=True`)."""
    out = {"id": example["_id"], "row": row, "transcript": example[text_column] or "", "input_length": 0,
           "peak": math.nan, "skip": "", "error": ""}  # fmt: skip
    try:
        source = audio_source(example[audio_column])
        if validate_audio:
            audio = load_audio(source, sampling_rate)  # (samples,)
            out |= {"input_length": len(audio), "peak": float(abs(audio).max())}
        else:
            out["input_length"] = audio_length(source, sampling_rate)
    except AudioError as err:
        if on_bad_audio == "error":
            raise AudioError(
                f"{split} clip {example['_id']}: {err} ({err.reason}); data.on_bad_audio=skip skips such clips instead",
                reason=err.reason,
            ) from err
        out |= {"skip": err.reason, "error": str(err)}
    return out


def index_text(
    example: dict[str, Any],
    chars_to_ignore: str | None,
    vocab_json: str,
    fe_json: str,
    config_json: str,
    min_samples: int,
    max_samples: int,
    split: str,
) -> dict[str, Any]:
    """The text pass over one audio-index row: normalised text, labels and the remaining skip reasons."""
    tokenizer, frontend = _parts(vocab_json, fe_json, config_json)
    raw_text = example["transcript"]
    text = normalize_text(raw_text, chars_to_ignore)
    out = {k: example[k] for k in ("id", "row", "input_length", "skip", "error")} | {"text": text, "labels": []}
    if out["skip"]:
        return out
    n, peak = example["input_length"], example["peak"]
    if text and peak is not None and not math.isnan(peak) and peak < SILENCE_PEAK:
        return out | {"skip": "silent", "error": f"digital silence (peak |x| = {peak:.1e})"}
    if not raw_text.strip():
        return out | {"skip": "empty_text"}
    if not text:
        return out | {"skip": "ignored_chars_only"}
    if split == "train" and not set(text) <= _known_chars(vocab_json):
        # Evaluation keeps such clips: their reference stays the real text (the report counts the misses).
        return out | {"skip": "oov_chars"}
    if n < min_samples:
        return out | {"skip": "too_short"}
    if n > max_samples:
        return out | {"skip": "too_long"}
    labels = tokenizer(text).input_ids
    if ctc_min_frames(labels) > frontend.output_frames(n):
        return out | {"skip": "unalignable"}
    return out | {"labels": labels}


def geometry_json(config: Any) -> str:
    """The config fields that decide frame counts (a cache key: a run dir's path in the config must not be one)."""
    full = config.to_dict()
    return json.dumps({k: full[k] for k in GEOMETRY_KEYS if k in full}, sort_keys=True)


@lru_cache(maxsize=4)
def frontend_from_json(fe_json: str, config_json: str) -> Frontend:
    """A `Frontend` rebuilt in a worker process from its feature extractor's and config's JSON."""
    processor = build_processor({"<pad>": 0, "<unk>": 1}, json.loads(fe_json))
    return Frontend(encoders.model_config(None, json.loads(config_json)), processor.feature_extractor)


@lru_cache(maxsize=4)
def _parts(vocab_json: str, fe_json: str, config_json: str) -> tuple[Any, Frontend]:
    processor = build_processor(json.loads(vocab_json), json.loads(fe_json))
    return processor.tokenizer, frontend_from_json(fe_json, config_json)


@lru_cache(maxsize=4)
def _known_chars(vocab_json: str) -> frozenset[str]:
    return frozenset(vocab_characters(json.loads(vocab_json)))
