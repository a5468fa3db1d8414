# pytest tests/test_bad_audio.py
"""Audio edge cases, generated here: valid variants decode to 16 kHz mono; broken ones raise AudioError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_lightning.audio import AudioError, load_audio

SR = 16000


def tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


VALID = {
    # name: (file name, samplerate, channels, format kwargs)
    "pcm16_16k": ("a.wav", 16000, 1, {"subtype": "PCM_16"}),
    "pcm16_8k": ("b.wav", 8000, 1, {"subtype": "PCM_16"}),
    "stereo": ("c.wav", 16000, 2, {"subtype": "PCM_16"}),
    "44k1": ("d.wav", 44100, 1, {"subtype": "PCM_16"}),
    "48k": ("e.wav", 48000, 1, {"subtype": "PCM_16"}),
    "pcm24": ("f.wav", 16000, 1, {"subtype": "PCM_24"}),
    "float32": ("g.wav", 16000, 1, {"subtype": "FLOAT"}),
    "flac": ("h.flac", 16000, 1, {"format": "FLAC"}),
    "ogg_vorbis": ("i.ogg", 16000, 1, {"format": "OGG", "subtype": "VORBIS"}),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_formats_decode_to_16k_mono(tmp_path: Path, name: str) -> None:
    file_name, sr, channels, kwargs = VALID[name]
    path = tmp_path / file_name
    sf.write(path, tone(2.0, sr, channels), sr, **kwargs)
    audio = load_audio(path, SR)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 2 * SR) <= SR // 100  # 2 s, give or take a codec's padding
    assert 0.1 < np.abs(audio).max() < 0.5  # the tone survived (no 24-bit/float scaling slip)


def test_silence_decodes(tmp_path: Path) -> None:
    sf.write(tmp_path / "s.wav", np.zeros(SR), SR)
    assert not load_audio(tmp_path / "s.wav", SR).any()


BROKEN = {
    "corrupt bytes": lambda p: p.write_bytes(b"RIFF\x00\x01garbage" * 50),
    "truncated header": lambda p: p.write_bytes(_wav_bytes(p)[:20]),
    "zero-length file": lambda p: p.write_bytes(b""),
    "header only": lambda p: sf.write(p, np.zeros(0), SR),
    "NaN samples": lambda p: sf.write(p, np.full(SR, np.nan, dtype=np.float32), SR, subtype="FLOAT"),
    "inf samples": lambda p: sf.write(p, np.r_[np.zeros(SR - 1), np.inf].astype(np.float32), SR, subtype="FLOAT"),
}


def _wav_bytes(path: Path) -> bytes:
    sf.write(path, tone(1.0, SR), SR)
    return path.read_bytes()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_audio_raises_naming_the_file(tmp_path: Path, case: str) -> None:
    path = tmp_path / "broken.wav"
    BROKEN[case](path)
    with pytest.raises(AudioError, match="broken.wav"):
        load_audio(path, SR)


def test_missing_file_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nowhere.wav"):
        load_audio(tmp_path / "nowhere.wav", SR)
