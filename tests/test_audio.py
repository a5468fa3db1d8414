# pytest tests/test_audio.py
"""Decoding, downmixing and resampling with soundfile + soxr, on audio written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_lightning.audio import AudioError, audio_source, load_audio


def sine(freq: float, sr: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sr)[np.argmax(spectrum)])


@pytest.fixture
def wav_8k(tmp_path: Path) -> Path:
    path = tmp_path / "sine_8k.wav"
    sf.write(path, sine(440, 8000), 8000, subtype="PCM_16")
    return path


def check_resampled_sine(audio: np.ndarray) -> None:
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert abs(len(audio) - 16000) <= 2
    assert dominant_frequency(audio, 16000) == pytest.approx(440, abs=2)
    assert 0.4 < np.abs(audio).max() < 0.6  # amplitude survives decoding and resampling


def test_load_audio_resamples_path(wav_8k: Path) -> None:
    check_resampled_sine(load_audio(wav_8k, 16000))
    check_resampled_sine(load_audio(str(wav_8k), 16000))


def test_load_audio_resamples_bytes(wav_8k: Path) -> None:
    check_resampled_sine(load_audio(wav_8k.read_bytes(), 16000))


def test_load_audio_same_rate_is_unchanged(tmp_path: Path) -> None:
    audio = sine(1000, 16000, seconds=0.25)
    path = tmp_path / "same.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    out = load_audio(path, 16000)
    np.testing.assert_array_equal(out, audio)


def test_load_audio_downmixes_stereo(tmp_path: Path) -> None:
    left = np.full(1600, 0.2, dtype=np.float32)
    right = np.full(1600, 0.6, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    out = load_audio(path, 16000)
    assert out.shape == (1600,)
    np.testing.assert_allclose(out, 0.4, atol=1e-6)


def test_load_audio_flac(tmp_path: Path) -> None:
    path = tmp_path / "sine.flac"
    sf.write(path, sine(440, 16000), 16000, format="FLAC", subtype="PCM_16")
    out = load_audio(path, 16000)
    assert out.shape == (16000,)
    assert dominant_frequency(out, 16000) == pytest.approx(440, abs=2)


def test_load_audio_nan_raises_naming_file(tmp_path: Path) -> None:
    audio = sine(440, 16000, seconds=0.1)
    audio[10] = np.nan
    path = tmp_path / "has_nan.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN") as info:
        load_audio(path, 16000)
    assert str(path) in str(info.value)


def test_load_audio_garbage_raises_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError) as info:
        load_audio(path, 16000)
    assert str(path) in str(info.value)


def test_load_audio_garbage_bytes_raises() -> None:
    with pytest.raises(AudioError, match="<bytes>"):
        load_audio(b"definitely not audio" * 10, 16000)


def test_load_audio_missing_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError) as info:
        load_audio(path, 16000)
    assert str(path) in str(info.value)


def test_load_audio_empty_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path, 16000)


def test_audio_error_is_value_error() -> None:
    assert issubclass(AudioError, ValueError)


def test_audio_source_prefers_bytes() -> None:
    assert audio_source({"bytes": b"RIFF", "path": "/x.wav"}) == b"RIFF"


def test_audio_source_falls_back_to_path() -> None:
    assert audio_source({"bytes": None, "path": "/x.wav"}) == "/x.wav"
    assert audio_source({"path": "/y.wav"}) == "/y.wav"


def test_audio_source_neither_raises() -> None:
    with pytest.raises(AudioError):
        audio_source({"bytes": None, "path": None})
