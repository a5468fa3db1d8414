# pytest tests/test_bad_audio.py
"""Audio edge cases, generated here: valid ones decode to 16 kHz mono; broken ones raise AudioError with a reason."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_lightning.audio import AUDIO_ERROR_REASONS, AudioError, load_audio

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
    # name: (writes the file, AudioError.reason)
    "corrupt bytes": (lambda p: p.write_bytes(b"RIFF\x00\x01garbage" * 50), "undecodable"),
    "truncated header": (lambda p: p.write_bytes(_wav_bytes(p)[:20]), "undecodable"),
    "zero-length file": (lambda p: p.write_bytes(b""), "empty_audio"),
    "header only": (lambda p: sf.write(p, np.zeros(0), SR), "empty_audio"),
    "one sample at 48 kHz": (lambda p: sf.write(p, np.ones(1), 48000), "empty_audio"),  # none left at 16 kHz
    "NaN samples": (
        lambda p: sf.write(p, np.full(SR, np.nan, dtype=np.float32), SR, subtype="FLOAT"),
        "non_finite_audio",
    ),
    "inf samples": (
        lambda p: sf.write(p, np.r_[np.zeros(SR - 1), np.inf].astype(np.float32), SR, subtype="FLOAT"),
        "non_finite_audio",
    ),
}


def _wav_bytes(path: Path) -> bytes:
    sf.write(path, tone(1.0, SR), SR)
    return path.read_bytes()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_audio_raises_naming_the_file_and_reason(tmp_path: Path, case: str) -> None:
    write, reason = BROKEN[case]
    path = tmp_path / "broken.wav"
    write(path)
    with pytest.raises(AudioError, match="broken.wav") as info:
        load_audio(path, SR)
    assert info.value.reason == reason


@pytest.mark.parametrize("case", ["corrupt bytes", "zero-length file", "NaN samples"])
def test_broken_bytes_have_the_same_reason_as_the_file(tmp_path: Path, case: str) -> None:
    write, reason = BROKEN[case]
    path = tmp_path / "broken.wav"
    write(path)
    with pytest.raises(AudioError, match="<bytes>") as info:
        load_audio(path.read_bytes(), SR)
    assert info.value.reason == reason


def test_missing_file_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nowhere.wav") as info:
        load_audio(tmp_path / "nowhere.wav", SR)
    assert info.value.reason == "missing_file"


def test_audio_error_keeps_its_reason_through_pickle() -> None:
    # datasets.map(num_proc=...) sends a worker's exception back pickled
    err = pickle.loads(pickle.dumps(AudioError("x.wav has no samples", reason="empty_audio")))
    assert isinstance(err, AudioError) and err.reason == "empty_audio" and str(err) == "x.wav has no samples"


def test_audio_error_reason_must_be_known() -> None:
    assert AUDIO_ERROR_REASONS == ("missing_file", "undecodable", "truncated", "empty_audio", "non_finite_audio")
    with pytest.raises(ValueError, match="reason"):
        AudioError("x.wav", reason="unreadable")


@pytest.mark.parametrize("fmt", ["WAV", "AIFF", "MP3"])
def test_audio_cut_short_mid_data_is_truncated_not_a_shorter_clip(tmp_path: Path, fmt: str) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    path = tmp_path / f"cut.{fmt.lower()}"
    sf.write(path, tone(1.0, SR), SR, format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 3 // 4])  # an interrupted copy: the header is whole
    promises = r"its header promises 16000 frames, the file holds \d+"
    with pytest.raises(AudioError, match=rf"cut\.{fmt.lower()} is truncated: {promises}") as info:
        load_audio(path, SR)
    assert info.value.reason == "truncated"
    with pytest.raises(AudioError, match=rf"<bytes> is truncated: {promises}") as info:
        load_audio(path.read_bytes(), SR)
    assert info.value.reason == "truncated"


def test_streamed_wav_without_a_length_decodes(tmp_path: Path) -> None:
    # a WAV written to a pipe (ffmpeg ... -f wav -) declares its data chunk as 0xFFFFFFFF bytes: not a promise
    data = bytearray(_wav_bytes(tmp_path / "s.wav"))
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    assert len(load_audio(bytes(data), SR)) == SR
