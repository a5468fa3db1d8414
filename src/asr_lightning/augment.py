# pytest tests/test_augment.py
"""Training-only waveform augmentation, run in the DataLoader workers, reproducible from a per-clip generator.

A resumed run must see bit-identical audio, so every random choice comes from the `numpy.random.Generator` the
caller seeds per (seed, epoch, clip index), in a fixed order (`Augmenter.draw`), never from the global `random`
or `np.random`. audiomentations (master, 2025-09) and torch-audiomentations draw their parameters from the global
`random`/`np.random` (torch-audiomentations also from torch's global RNG) with no generator argument, so they
cannot follow a per-clip generator; these four transforms are written here on soxr and numpy instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from asr_lightning.audio import AUDIO_EXTENSIONS, load_audio

TELEPHONE_RATE = 8000  # G.711's: nothing above 4 kHz survives (the channel's 300 Hz low edge is not modelled)
MU_LAW_MU = 255
# A noise segment quieter than -120 dBFS (below 24-bit quantisation noise) is silence: scaling it up to an SNR
# would only amplify rounding.
SILENT_POWER = 1e-12


@dataclass(frozen=True)
class Perturbation:
    """What `Augmenter.draw` chose for one clip; `Augmenter.apply` does it.

    Args:
        factor: speed factor (1.0: unchanged).
        noise_path: the noise file to add, or None for no noise.
        noise_offset: where in the noise file the segment starts, as a fraction in [0, 1) of the room there is.
        snr_db: signal-to-noise ratio of the added noise, in dB.
        gain_db: gain in dB, or None for none.
        telephone: whether to band-limit to 8 kHz and mu-law code.
    """

    factor: float = 1.0
    noise_path: Path | None = None
    noise_offset: float = 0.0
    snr_db: float = 0.0
    gain_db: float | None = None
    telephone: bool = False


class Augmenter:
    """Speed perturbation, additive noise, gain and telephone band-limiting, in that order.

    Args:
        sampling_rate: rate of the audio passed in (the feature extractor's, 16 kHz for wav2vec2).
        speed_perturb: speed factors, one drawn uniformly per clip (Kaldi/ESPnet/icefall use [0.9, 1.0, 1.1]).
            A factor f resamples so the clip plays f times faster, as sox `speed`: duration divided by f, pitch
            multiplied by f. None: no speed perturbation.
        noise_dir: folder searched recursively for noise recordings (e.g. MUSAN's `noise/`). Each file is decoded
            once per worker when first drawn and kept in memory, so the folder must fit in each worker's RAM
            (~1.4 GB of float32 for MUSAN's 6 h of noise). None: no noise.
        snr_db: (low, high) signal-to-noise ratio in dB, drawn uniformly per clip.
        noise_prob: probability of adding noise to a clip.
        gain_db: (low, high) gain in dB, drawn uniformly per clip; the result is clipped to [-1, 1]. None: no gain.
        telephone: band-limit to telephone bandwidth: resample to 8 kHz, mu-law code to 8 bits and back.
        telephone_prob: probability of the telephone channel for a clip.

    Raises:
        ValueError: an invalid setting; the message names every `data.augment.<key>` at fault and the fix.
    """

    def __init__(
        self,
        sampling_rate: int = 16000,
        speed_perturb: list[float] | None = None,
        noise_dir: str | None = None,
        snr_db: tuple[float, float] = (10.0, 30.0),
        noise_prob: float = 0.5,
        gain_db: tuple[float, float] | None = None,
        telephone: bool = False,
        telephone_prob: float = 1.0,
    ) -> None:
        # Hydra hands lists over as ListConfig; plain tuples of floats pickle cheaply into workers.
        self.sampling_rate = int(sampling_rate)
        self.speed_perturb = None if speed_perturb is None else tuple(float(f) for f in speed_perturb)
        self.noise_dir = None if noise_dir is None else Path(noise_dir).expanduser()
        self.snr_db = tuple(float(x) for x in snr_db)
        self.noise_prob = float(noise_prob)
        self.gain_db = None if gain_db is None else tuple(float(x) for x in gain_db)
        self.telephone = bool(telephone)
        self.telephone_prob = float(telephone_prob)
        # Sorted, so that a drawn file index names the same file in every worker and every run.
        has_dir = self.noise_dir is not None and self.noise_dir.is_dir()
        self.noise_files = _find_audio(self.noise_dir) if has_dir else []
        if problems := self._problems():
            raise ValueError("invalid augmentation settings:\n  " + "\n  ".join(problems))
        self._noise_cache: dict[Path, np.ndarray] = {}

    @property
    def enabled(self) -> bool:
        """Whether a call can change the audio at all."""
        return (
            any(f != 1.0 for f in self.speed_perturb or ())
            or (bool(self.noise_files) and self.noise_prob > 0)
            or self.gain_db is not None
            or (self.telephone and self.telephone_prob > 0)
        )

    def describe(self) -> str:
        """One line for the log, e.g. `augment: speed x[0.9, 1.0, 1.1]; gain -6 to 6 dB`."""
        parts = []
        if self.speed_perturb is not None:
            parts.append(f"speed x{list(self.speed_perturb)}")
        if self.noise_files:
            low, high = self.snr_db
            parts.append(
                f"noise p={self.noise_prob} at {low:g}-{high:g} dB SNR from {len(self.noise_files)} files "
                f"in {self.noise_dir}"
            )
        if self.gain_db is not None:
            parts.append(f"gain {self.gain_db[0]:g} to {self.gain_db[1]:g} dB")
        if self.telephone:
            parts.append(f"telephone {TELEPHONE_RATE // 1000} kHz + mu-law p={self.telephone_prob}")
        return "augment: " + ("; ".join(parts) if self.enabled else "off")

    def speed_factor(self, rng: np.random.Generator) -> float:
        """Draw a clip's speed factor (1.0, drawing nothing, without `speed_perturb`).

        A sampler that needs the length before decoding draws it here and passes it to `__call__` as `factor`;
        `__call__` then draws the rest from the same generator, so the audio is the same either way.
        """
        if self.speed_perturb is None:
            return 1.0
        return self.speed_perturb[int(rng.integers(len(self.speed_perturb)))]

    def perturbed_length(self, num_samples: int, factor: float) -> int:
        """Exactly how many samples speed perturbation by `factor` turns `num_samples` into.

        libsoxr's flush emits `samples_in / io_ratio + .5` samples, truncated (halves round up: Python's `round`
        would be one short for 2 samples at 0.8), with `io_ratio = in / out` in doubles, computed the same way here.
        """
        if factor == 1.0:
            return num_samples
        io_ratio = self.sampling_rate / (self.sampling_rate / factor)
        return int(num_samples / io_ratio + 0.5)

    def __call__(self, audio: np.ndarray, rng: np.random.Generator, factor: float | None = None) -> np.ndarray:
        """Augment one clip: speed, then noise, gain and telephone.

        Args:
            audio: float32 samples at `sampling_rate`, shape (samples,).
            rng: the clip's generator; the only source of randomness.
            factor: the speed factor, when the caller drew it with `speed_factor(rng)`; None draws it here.

        Returns:
            float32 samples, shape (perturbed_length(len(audio), factor),).
        """
        return self.apply(audio, self.draw(rng, factor))

    def draw(self, rng: np.random.Generator, factor: float | None = None) -> Perturbation:
        """Draw one clip's perturbation, always in the same order and number of draws for a given configuration.

        The number of draws does not depend on the outcomes (a skipped noise still draws its file, offset and
        SNR), so the generator's position after a call depends only on the settings.
        """
        if factor is None:
            factor = self.speed_factor(rng)
        if not factor > 0:
            raise ValueError(f"speed factor must be > 0, got {factor}")
        noise_path, noise_offset, snr_db = None, 0.0, 0.0
        if self.noise_files:
            add_noise = rng.random() < self.noise_prob
            index = int(rng.integers(len(self.noise_files)))
            noise_offset, snr_db = float(rng.random()), float(rng.uniform(*self.snr_db))
            noise_path = self.noise_files[index] if add_noise else None
        gain_db = None if self.gain_db is None else float(rng.uniform(*self.gain_db))
        telephone = self.telephone and bool(rng.random() < self.telephone_prob)
        return Perturbation(
            factor=float(factor),
            noise_path=noise_path,
            noise_offset=noise_offset,
            snr_db=snr_db,
            gain_db=gain_db,
            telephone=telephone,
        )

    def apply(self, audio: np.ndarray, perturbation: Perturbation) -> np.ndarray:
        """Apply a drawn perturbation; only speed changes the length. The input array is left as it was."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.size == 0:
            return audio.copy()
        p = perturbation
        if p.factor != 1.0:
            audio = soxr.resample(audio, self.sampling_rate, self.sampling_rate / p.factor, quality="HQ")
        if p.noise_path is not None:
            audio = self._add_noise(audio, self._noise(p.noise_path), p.noise_offset, p.snr_db)
        if p.gain_db is not None:
            audio = np.clip(audio * np.float32(10 ** (p.gain_db / 20)), -1.0, 1.0)
        if p.telephone:
            audio = self._telephone(audio)
        return np.ascontiguousarray(audio, dtype=np.float32)

    def __getstate__(self) -> dict:
        # Spawned workers get the settings, not whatever noise the main process happened to decode.
        return {**self.__dict__, "_noise_cache": {}}

    def _problems(self) -> list[str]:
        """Every invalid setting, each naming its key and the fix (raised together, not one per run)."""
        problems = []
        if self.sampling_rate <= 0:
            problems.append(f"data.augment.sampling_rate must be > 0, got {self.sampling_rate}")
        if self.speed_perturb is not None and (not self.speed_perturb or min(self.speed_perturb) <= 0):
            problems.append(
                f"data.augment.speed_perturb must be a non-empty list of factors > 0, got {list(self.speed_perturb)};"
                " use e.g. [0.9, 1.0, 1.1], or null for none"
            )
        for key, pair in (("snr_db", self.snr_db), ("gain_db", self.gain_db)):
            if pair is not None and (len(pair) != 2 or pair[0] > pair[1]):
                problems.append(f"data.augment.{key} must be [low, high] with low <= high, got {list(pair)}")
        for key, prob in (("noise_prob", self.noise_prob), ("telephone_prob", self.telephone_prob)):
            if not 0.0 <= prob <= 1.0:
                problems.append(f"data.augment.{key} is a probability: set it in [0, 1], got {prob}")
        if self.noise_dir is not None and not self.noise_dir.is_dir():
            problems.append(
                f"data.augment.noise_dir: folder {self.noise_dir} does not exist; point it at a folder of noise "
                "recordings (e.g. MUSAN's noise/) or set it to null"
            )
        elif self.noise_dir is not None and not self.noise_files:
            problems.append(
                f"data.augment.noise_dir: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {self.noise_dir}; "
                "add noise recordings there or set it to null"
            )
        if self.telephone and self.sampling_rate < TELEPHONE_RATE:
            problems.append(
                f"data.augment.telephone needs sampling_rate >= {TELEPHONE_RATE}, got {self.sampling_rate}; "
                "set telephone=false"
            )
        return problems

    def _noise(self, path: Path) -> np.ndarray:
        """A noise file's samples at `sampling_rate`, decoded on first use in this worker."""
        if path not in self._noise_cache:
            self._noise_cache[path] = load_audio(path, self.sampling_rate)
        return self._noise_cache[path]

    @staticmethod
    def _add_noise(audio: np.ndarray, noise: np.ndarray, offset: float, snr_db: float) -> np.ndarray:
        """Mix in a segment of `noise` starting at `offset`, tiled when shorter than the clip, at `snr_db`."""
        n = len(audio)
        room = len(noise) - n + 1 if len(noise) >= n else len(noise)  # start positions a segment can take
        start = min(int(offset * room), room - 1)
        segment = noise[(start + np.arange(n)) % len(noise)].astype(np.float64)  # (samples,)
        noise_power = np.mean(segment**2)
        if noise_power < SILENT_POWER:
            return audio
        signal_power = np.mean(audio.astype(np.float64) ** 2)
        scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
        return (audio + scale * segment).astype(np.float32)

    def _telephone(self, audio: np.ndarray) -> np.ndarray:
        """Band-limit through an 8 kHz channel with 8-bit mu-law coding, back at `sampling_rate`, same length.

        The coding happens at 8 kHz, as in the codec, so its quantisation noise is band-limited on the way back.
        """
        narrow = soxr.resample(audio, self.sampling_rate, TELEPHONE_RATE, quality="HQ")
        wide = soxr.resample(_mu_law(narrow), TELEPHONE_RATE, self.sampling_rate, quality="HQ")
        # 16 kHz -> 8 kHz -> 16 kHz rounds an odd length up by one
        return np.pad(wide[: len(audio)], (0, max(0, len(audio) - len(wide))))


def _find_audio(folder: Path) -> list[Path]:
    """Audio files under `folder`, recursively, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _mu_law(audio: np.ndarray) -> np.ndarray:
    """Encode to 8-bit mu-law codes and decode.

    The continuous mu=255 curve that G.711 approximates piecewise, with G.711's 255 levels: sign and 7 bits,
    so silence stays silent (a 256-level quantiser has no zero and would add a DC offset). `audioop.lin2ulaw` did
    G.711 exactly, but Python 3.13 removed audioop.
    """
    x = np.clip(audio.astype(np.float64), -1.0, 1.0)
    compressed = np.sign(x) * np.log1p(MU_LAW_MU * np.abs(x)) / np.log1p(MU_LAW_MU)
    levels = np.round(compressed * 127) / 127  # codes -127..127
    return (np.sign(levels) * np.expm1(np.abs(levels) * np.log1p(MU_LAW_MU)) / MU_LAW_MU).astype(np.float32)
