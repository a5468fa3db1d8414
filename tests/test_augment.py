# pytest tests/test_augment.py
"""Augmenter: reproducible from the clip's generator alone, and each transform does what its name says."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_lightning.augment import Augmenter, Perturbation

SR = 16000


def sine(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / SR)[np.argmax(spectrum)])


def db(power_ratio: float) -> float:
    return float(10 * np.log10(power_ratio))


def power(audio: np.ndarray) -> float:
    return float(np.mean(np.asarray(audio, dtype=np.float64) ** 2))


def write_noise(folder: Path, name: str, samples: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / name, samples, SR, subtype="FLOAT" if name.endswith(".wav") else None)  # FLAC is integer
    return folder / name


@pytest.fixture
def noise_dir(tmp_path: Path) -> Path:
    """Two white-noise files, one in a subfolder (the search is recursive), both longer than the test clips."""
    gen = np.random.default_rng(0)
    write_noise(tmp_path / "noise", "a.wav", (0.1 * gen.standard_normal(3 * SR)).astype(np.float32))
    write_noise(tmp_path / "noise" / "sub", "b.flac", (0.1 * gen.standard_normal(2 * SR)).astype(np.float32))
    return tmp_path / "noise"


@pytest.fixture
def everything(noise_dir: Path) -> Augmenter:
    return Augmenter(
        speed_perturb=[0.9, 1.0, 1.1], noise_dir=str(noise_dir), noise_prob=1.0, gain_db=(-6.0, 6.0), telephone=True
    )


def test_same_seed_gives_bit_identical_audio_and_another_seed_does_not(everything: Augmenter) -> None:
    audio = sine(440)
    first = everything(audio, np.random.default_rng([7, 0, 3]))
    again = everything(audio, np.random.default_rng([7, 0, 3]))
    other = everything(audio, np.random.default_rng([7, 1, 3]))  # next epoch
    assert first.dtype == np.float32
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, other)


def test_a_pickled_augmenter_drops_its_noise_cache_and_gives_the_same_audio(everything: Augmenter) -> None:
    audio = sine(440)
    everything(audio, np.random.default_rng(1))  # fills the noise cache
    worker = pickle.loads(pickle.dumps(everything))
    assert worker._noise_cache == {}  # a spawned worker decodes its own noise
    assert np.array_equal(worker(audio, np.random.default_rng(5)), everything(audio, np.random.default_rng(5)))


def test_predrawn_speed_factor_gives_the_same_audio_as_drawing_it_in_the_call(everything: Augmenter) -> None:
    audio = sine(440)
    rng = np.random.default_rng(11)
    factor = everything.speed_factor(rng)
    assert np.array_equal(everything(audio, rng, factor=factor), everything(audio, np.random.default_rng(11)))


def test_a_call_leaves_the_global_random_states_untouched(everything: Augmenter) -> None:
    np.random.seed(123)
    random.seed(123)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    for seed in range(3):  # the first call also decodes the noise files
        everything(sine(440), np.random.default_rng(seed))
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    assert random.getstate() == python_state


def test_draws_cover_every_setting_within_its_range(everything: Augmenter) -> None:
    draws = {everything.draw(np.random.default_rng(seed)) for seed in range(40)}
    assert len(draws) == 40
    assert {d.factor for d in draws} == {0.9, 1.0, 1.1}
    assert {d.noise_path.name for d in draws} == {"a.wav", "b.flac"}
    assert all(10.0 <= d.snr_db <= 30.0 and -6.0 <= d.gain_db <= 6.0 and d.telephone for d in draws)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_divides_the_duration_and_multiplies_the_pitch_by_the_factor(factor: float) -> None:
    augmenter = Augmenter(speed_perturb=[factor])
    audio = sine(440)
    out = augmenter(audio, np.random.default_rng(0))
    assert len(out) == augmenter.perturbed_length(len(audio), factor)
    assert abs(len(out) - len(audio) / factor) <= 1
    bin_hz = SR / len(out)
    assert abs(dominant_frequency(out) - 440 * factor) <= bin_hz


def test_perturbed_length_is_exactly_the_length_soxr_produces() -> None:
    augmenter = Augmenter(speed_perturb=[0.9, 1.1])
    lengths = [*range(1, 3000, 53), SR, SR + 1, 3 * SR + 7, 12345]
    for factor in (0.9, 0.95, 1.05, 1.1, 1.2, 0.8, 1.0):
        for n in lengths:
            out = augmenter(np.zeros(n, np.float32), np.random.default_rng(0), factor=factor)
            assert len(out) == augmenter.perturbed_length(n, factor), (factor, n)


def test_speed_factor_one_leaves_the_audio_unchanged() -> None:
    audio = sine(440)
    assert np.array_equal(Augmenter(speed_perturb=[1.0])(audio, np.random.default_rng(0)), audio)
    assert np.array_equal(Augmenter(speed_perturb=[0.9, 1.1])(audio, np.random.default_rng(0), factor=1.0), audio)
    assert Augmenter().speed_factor(np.random.default_rng(0)) == 1.0


def test_noise_is_added_at_the_drawn_snr(noise_dir: Path) -> None:
    augmenter = Augmenter(noise_dir=str(noise_dir), snr_db=(0.0, 30.0), noise_prob=1.0)
    audio = sine(440, seconds=1.5, amplitude=0.3)
    snrs = []
    for seed in range(6):
        target = augmenter.draw(np.random.default_rng(seed)).snr_db
        out = augmenter(audio, np.random.default_rng(seed))
        measured = db(power(audio) / power(out.astype(np.float64) - audio))
        assert abs(measured - target) < 0.5, (seed, measured, target)
        snrs.append(target)
    assert max(snrs) - min(snrs) > 5  # the SNR is drawn, not fixed


def test_noise_shorter_than_the_clip_is_tiled(tmp_path: Path) -> None:
    period = 800
    write_noise(tmp_path / "noise", "short.wav", np.random.default_rng(1).uniform(-0.5, 0.5, period).astype("f4"))
    augmenter = Augmenter(noise_dir=str(tmp_path / "noise"), snr_db=(10.0, 10.0), noise_prob=1.0)
    audio = sine(440, seconds=0.5)
    added = augmenter(audio, np.random.default_rng(0)).astype(np.float64) - audio  # (samples,)
    assert len(added) > 5 * period
    assert np.allclose(added[:-period], added[period:], atol=1e-6)
    assert np.abs(added[-period:]).max() > 0.01  # noise to the very end, not padding


def test_an_all_silent_noise_file_adds_nothing_and_does_not_divide_by_zero(tmp_path: Path) -> None:
    write_noise(tmp_path / "noise", "silence.wav", np.zeros(SR, np.float32))
    augmenter = Augmenter(noise_dir=str(tmp_path / "noise"), noise_prob=1.0)
    audio = sine(440)
    with np.errstate(all="raise"):
        out = augmenter(audio, np.random.default_rng(0))
    assert np.array_equal(out, audio)


def test_noise_prob_zero_never_adds_noise(noise_dir: Path) -> None:
    augmenter = Augmenter(noise_dir=str(noise_dir), noise_prob=0.0)
    audio = sine(440)
    assert all(np.array_equal(augmenter(audio, np.random.default_rng(s)), audio) for s in range(5))
    assert not augmenter.enabled


def test_gain_stays_in_its_range_and_the_output_is_clipped() -> None:
    quiet = sine(440, amplitude=0.01)
    augmenter = Augmenter(gain_db=(-6.0, 6.0))
    gains = [db(power(augmenter(quiet, np.random.default_rng(s))) / power(quiet)) for s in range(20)]
    assert all(-6.0 - 1e-3 <= g <= 6.0 + 1e-3 for g in gains)
    assert max(gains) - min(gains) > 3
    loud = Augmenter(gain_db=(20.0, 20.0))(sine(440, amplitude=0.9), np.random.default_rng(0))
    assert np.abs(loud).max() == 1.0


def test_telephone_removes_energy_above_4_khz_and_keeps_1_khz() -> None:
    augmenter = Augmenter(telephone=True)
    high, low = sine(6000), sine(1000)
    high_out, low_out = augmenter(high, np.random.default_rng(0)), augmenter(low, np.random.default_rng(0))
    assert len(high_out) == len(high) and len(low_out) == len(low)
    assert db(power(high_out) / power(high)) < -30
    assert abs(db(power(low_out) / power(low))) < 0.5
    assert dominant_frequency(low_out) == pytest.approx(1000, abs=2)
    edge = SR // 100  # the resampler's transients
    assert np.corrcoef(low[edge:-edge], low_out[edge:-edge])[0, 1] > 0.99


def test_telephone_keeps_an_odd_length_and_silence() -> None:
    augmenter = Augmenter(telephone=True)
    out = augmenter(np.zeros(SR + 1, np.float32), np.random.default_rng(0))
    assert len(out) == SR + 1 and not out.any()


def test_apply_does_not_change_its_input(everything: Augmenter) -> None:
    audio = sine(440)
    kept = audio.copy()
    everything.apply(audio, Perturbation(factor=1.0, gain_db=3.0, telephone=True))
    everything(audio, np.random.default_rng(0))
    assert np.array_equal(audio, kept)


def test_describe_and_enabled(everything: Augmenter) -> None:
    assert Augmenter().describe() == "augment: off" and not Augmenter().enabled
    assert not Augmenter(speed_perturb=[1.0]).enabled
    line = everything.describe()
    assert everything.enabled and "\n" not in line
    assert all(word in line for word in ("speed", "0.9", "2 files", "gain", "telephone"))


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"speed_perturb": [0.0, 1.1]}, "data.augment.speed_perturb"),
        ({"speed_perturb": []}, "data.augment.speed_perturb"),
        ({"snr_db": (30.0, 10.0)}, "data.augment.snr_db"),
        ({"gain_db": (6.0, -6.0)}, "data.augment.gain_db"),
        ({"noise_prob": 1.5}, "data.augment.noise_prob"),
        ({"telephone_prob": -0.1}, "data.augment.telephone_prob"),
        ({"sampling_rate": 0}, "data.augment.sampling_rate"),
        ({"telephone": True, "sampling_rate": 4000}, "data.augment.telephone"),
    ],
)
def test_invalid_settings_raise_naming_the_key(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Augmenter(**settings)


def test_noise_dir_must_exist_and_hold_audio(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data.augment.noise_dir.*missing.*does not exist"):
        Augmenter(noise_dir=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not audio")
    with pytest.raises(ValueError, match="data.augment.noise_dir: no audio files.*empty"):
        Augmenter(noise_dir=str(tmp_path / "empty"))


def test_every_invalid_setting_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as err:
        Augmenter(noise_prob=2.0, snr_db=(30.0, 10.0), speed_perturb=[-1.0])
    assert all(key in str(err.value) for key in ("noise_prob", "snr_db", "speed_perturb"))


def test_a_non_positive_speed_factor_in_the_call_is_refused() -> None:
    with pytest.raises(ValueError, match="speed factor must be > 0"):
        Augmenter(speed_perturb=[0.9])(sine(440), np.random.default_rng(0), factor=0.0)
