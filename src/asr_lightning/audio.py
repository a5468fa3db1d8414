# pytest tests/test_audio.py
"""Decode (soundfile), downmix, resample (soxr). No torchcodec/FFmpeg needed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au", ".sph")


class AudioError(ValueError):
    """Audio that cannot be decoded; the message names the file."""


def load_audio(source: bytes | str | Path, target_sr: int) -> np.ndarray:
    """Decode audio bytes or a file, downmix to mono and resample.

    Args:
        source: encoded bytes (as stored in parquet datasets) or a path.
        target_sr: output sampling rate (the feature extractor's, 16 kHz for wav2vec2).

    Returns:
        float32 samples, shape (samples,).

    Raises:
        AudioError: unreadable, empty or non-finite audio.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        data, sr = sf.read(io.BytesIO(source) if isinstance(source, bytes) else source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as err:
        raise AudioError(f"cannot decode {name}: {err}") from err
    if data.shape[0] == 0:
        raise AudioError(f"{name} has no samples")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (samples,)
    if not np.isfinite(audio).all():
        raise AudioError(f"{name} contains NaN or infinite samples")
    if sr != target_sr:
        audio = soxr.resample(audio, sr, target_sr, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def audio_source(example_audio: dict) -> bytes | str:
    """The bytes of an `Audio(decode=False)` cell, or its path when the bytes are not embedded."""
    if example_audio.get("bytes"):
        return example_audio["bytes"]
    if example_audio.get("path"):
        return example_audio["path"]
    raise AudioError("audio cell has neither bytes nor path")
