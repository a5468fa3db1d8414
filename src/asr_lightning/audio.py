# pytest tests/test_audio.py
"""Decode (soundfile), downmix, resample (soxr). No torchcodec/FFmpeg needed."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au", ".sph")


# Why a clip's audio is unusable, most basic first; `AudioError.reason` is one of them.
AUDIO_ERROR_REASONS = ("missing_file", "undecodable", "truncated", "empty_audio", "non_finite_audio")
# How far short of its count a compressed file may decode: one MPEG audio frame, because libsndfile estimates
# an MP3's length from its bitrate when it has no Xing/LAME header.
CODEC_SLACK_FRAMES = 1152


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file.

    Args:
        message: what is wrong, naming the file.
        reason: one of `AUDIO_ERROR_REASONS`: `missing_file` (no such file, or a cell with neither bytes nor
            path), `undecodable` (corrupt or unsupported), `truncated` (fewer samples than its header
            promises: an interrupted copy or download), `empty_audio` (no samples) or `non_finite_audio`
            (NaN or infinite samples).
    """

    def __init__(self, message: str, reason: str = "undecodable") -> None:
        if reason not in AUDIO_ERROR_REASONS:
            raise ValueError(f"AudioError reason must be one of {AUDIO_ERROR_REASONS}, got {reason!r}")
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        # Pickled across `datasets.map(num_proc=...)` workers; the default would drop `reason`.
        return type(self), (str(self), self.reason)


def load_audio(source: bytes | str | Path, target_sr: int) -> np.ndarray:
    """Decode audio bytes or a file, downmix to mono and resample.

    Args:
        source: encoded bytes (as stored in parquet datasets) or a path.
        target_sr: output sampling rate (the feature extractor's, 16 kHz for wav2vec2).

    Returns:
        float32 samples, shape (samples,).

    Raises:
        AudioError: missing, undecodable, truncated, empty or non-finite audio (its `reason` says which).
    """
    name = _present(source)
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source) as file:
            sr, counted, container = file.samplerate, file.frames, file.format
            data = file.read(dtype="float32", always_2d=True)  # (samples, channels)
        # libsndfile counts a WAV's or AIFF's frames from the file size, so a cut file looks whole: ask the header
        header = _header_frames(source) if container in ("WAV", "WAVEX", "AIFF") else None
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as err:
        raise AudioError(f"cannot decode {name}: {err}", reason="undecodable") from err
    promised, slack = (counted, CODEC_SLACK_FRAMES) if header is None else (header, 0)
    if data.shape[0] < promised - slack:
        raise AudioError(
            f"{name} is truncated: its header promises {promised} frames, the file holds {data.shape[0]}",
            reason="truncated",
        )
    if data.shape[0] == 0:
        raise AudioError(f"{name} has no samples", reason="empty_audio")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (samples,)
    if not np.isfinite(audio).all():
        raise AudioError(f"{name} contains NaN or infinite samples", reason="non_finite_audio")
    if sr != target_sr:
        audio = soxr.resample(audio, sr, target_sr, quality="HQ")
        if len(audio) == 0:  # e.g. one sample at 48 kHz
            raise AudioError(f"{name} has no samples at {target_sr} Hz", reason="empty_audio")
    return np.ascontiguousarray(audio, dtype=np.float32)


def audio_length(source: bytes | str | Path, target_sr: int) -> int:
    """A clip's samples at `target_sr`, from its header alone (`soundfile.info`): no decoding.

    For corpora too large to decode twice (`data.validate_audio=false`). Missing, empty and unreadable files
    are found here; cut-short, NaN or silent audio only when a worker decodes it.

    Raises:
        AudioError: missing, empty or undecodable (its `reason` says which).
    """
    name = _present(source)
    try:
        info = sf.info(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as err:
        raise AudioError(f"cannot decode {name}: {err}", reason="undecodable") from err
    if info.frames <= 0:
        raise AudioError(f"{name} has no samples", reason="empty_audio")
    return int(round(info.frames * target_sr / info.samplerate))


def _present(source: bytes | str | Path) -> str:
    """The source's name for messages, once it is known to exist and not to be empty.

    Raises:
        AudioError: a missing file, or 0 bytes (an interrupted copy or download; libsndfile would call it an
            unrecognised format).
    """
    if isinstance(source, bytes):
        name, size = "<bytes>", len(source)
    else:
        name, path = str(source), Path(source)
        if not path.exists():
            raise AudioError(f"{name} does not exist", reason="missing_file")
        size = path.stat().st_size if path.is_file() else None
    if size == 0:
        raise AudioError(f"{name} is an empty file (0 bytes)", reason="empty_audio")
    return name


def _header_frames(source: bytes | str | Path) -> int | None:
    """The frame count a WAV's `data` chunk or an AIFF's `COMM` chunk declares (None: not declared, or streamed)."""
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as f:
        head = f.read(12)
        order = {b"RIFF": "<", b"FORM": ">"}.get(head[:4])  # RF64 and RIFX are left to libsndfile
        block_align = None
        while order and len(chunk := f.read(8)) == 8:
            kind, size = chunk[:4], struct.unpack(f"{order}I", chunk[4:])[0]
            body = f.read(min(size, 18)) if kind in (b"fmt ", b"COMM") else b""
            if kind == b"COMM" and len(body) >= 6:
                return struct.unpack(">I", body[2:6])[0]
            if kind == b"fmt " and len(body) >= 14:
                block_align = struct.unpack("<H", body[12:14])[0]
            if kind == b"data":
                # 0 and 0xFFFFFFFF: a stream written before its length was known (ffmpeg to a pipe)
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            f.seek(size + (size & 1) - len(body), io.SEEK_CUR)  # chunks are padded to an even size
    return None


def audio_source(example_audio: dict) -> bytes | str:
    """The bytes of an `Audio(decode=False)` cell, or its path when the bytes are not embedded."""
    if example_audio.get("bytes"):
        return example_audio["bytes"]
    if example_audio.get("path"):
        return example_audio["path"]
    raise AudioError("audio cell has neither bytes nor path", reason="missing_file")
