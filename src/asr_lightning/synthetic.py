# python -m asr_lightning.synthetic data/demo --n 600 --seed 0
"""Generate a small synthetic, MInDS-14-like phone-banking speech corpus with espeak-ng.

Each clip is a short banking request in one of the 14 MInDS-14 intents, spoken by one of a fixed set
of espeak-ng "speakers" (voice + variant + base rate + base pitch), resampled to 8 kHz with a little
background noise and written as 16-bit FLAC in the Hugging Face ``audiofolder`` layout::

    OUT_DIR/audio/<id>.flac
    OUT_DIR/metadata.csv   # file_name,id,transcription,intent_class,speaker
    OUT_DIR/README.md

Everything is deterministic given the seed, regardless of the number of worker processes.
"""

import argparse
import csv
import io
import random
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

INTENTS: list[str] = [
    "abroad",
    "address",
    "app_error",
    "atm_limit",
    "balance",
    "business_loan",
    "card_issues",
    "cash_deposit",
    "direct_debit",
    "freeze",
    "high_value_payment",
    "joint_account",
    "latest_transactions",
    "pay_bill",
]

# British English is "en": espeak-ng silently ignores the variant in "en-gb+m3".
VOICES: list[str] = [
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
]
VARIANTS: list[str] = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
]

SAMPLE_RATE = 8000
ID_PREFIX = "demo"
ESPEAK_MISSING = "espeak-ng not found: install it with `apt-get install espeak-ng`"


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: a fixed espeak-ng voice, variant, base speaking rate and base pitch.

    Attributes:
        name: Speaker id, e.g. ``"spk07"``.
        voice: espeak-ng voice, e.g. ``"en-gb-scotland"``.
        variant: espeak-ng voice variant, e.g. ``"f2"``.
        rate: Base speaking rate in words per minute.
        pitch: Base pitch, 0..99.
    """

    name: str
    voice: str
    variant: str
    rate: int
    pitch: int

    @property
    def espeak_voice(self) -> str:
        """The ``-v`` argument for espeak-ng, e.g. ``"en-us+m3"``."""
        return f"{self.voice}+{self.variant}"


@dataclass(frozen=True)
class Utterance:
    """Everything needed to synthesise one clip (no audio).

    Attributes:
        index: Position in the corpus.
        id: Clip id, e.g. ``"demo-00042"``.
        text: The exact spoken transcript (lowercase letters, spaces and apostrophes).
        intent_class: Index into :data:`INTENTS`.
        speaker: The speaker.
        rate: Speaking rate for this clip (speaker rate plus jitter).
        pitch: Pitch for this clip (speaker pitch plus jitter).
        snr_db: Signal-to-noise ratio of the added white noise.
        peak_db: Peak level of the final clip in dBFS.
        seed: Corpus seed; with ``index`` it seeds the noise.
    """

    index: int
    id: str
    text: str
    intent_class: int
    speaker: Speaker
    rate: int
    pitch: int
    snr_db: float
    peak_db: float
    seed: int

    @property
    def intent(self) -> str:
        """The intent name."""
        return INTENTS[self.intent_class]


def make_speakers(n: int, seed: int) -> list[Speaker]:
    """Create ``n`` distinct speakers deterministically from ``seed``.

    Voices are cycled so that every accent is used about equally often; variants come from a seeded
    permutation so that (voice, variant) pairs are unique for up to 120 speakers.

    Args:
        n: Number of speakers.
        seed: Random seed.

    Returns:
        Speakers named ``spk00``, ``spk01``, ...
    """
    rng = random.Random(f"{seed}:speakers")
    voices = rng.sample(VOICES, len(VOICES))
    variants = rng.sample(VARIANTS, len(VARIANTS))
    width = max(2, len(str(n - 1)))
    return [
        Speaker(
            name=f"spk{i:0{width}d}",
            voice=voices[i % len(voices)],
            variant=variants[i % len(variants)],
            rate=rng.randint(150, 190),
            pitch=rng.randint(30, 70),
        )
        for i in range(n)
    ]


def make_utterances(n: int, seed: int, num_speakers: int = 30) -> list[Utterance]:
    """Create ``n`` utterances (text, intent, speaker, prosody) deterministically from ``seed``.

    Intents and speakers are balanced: each appears ``n // k`` or ``n // k + 1`` times.

    Args:
        n: Number of utterances.
        seed: Random seed.
        num_speakers: Number of speakers to spread the utterances over.

    Returns:
        The utterances, in corpus order.
    """
    speakers = make_speakers(num_speakers, seed)
    rng = random.Random(f"{seed}:assign")
    intent_classes = [i % len(INTENTS) for i in range(n)]
    speaker_ids = [i % num_speakers for i in range(n)]
    rng.shuffle(intent_classes)
    rng.shuffle(speaker_ids)
    utterances = []
    for index, (intent_class, speaker_id) in enumerate(zip(intent_classes, speaker_ids, strict=True)):
        utt_rng = random.Random(f"{seed}:utterance:{index}")
        speaker = speakers[speaker_id]
        utterances.append(
            Utterance(
                index=index,
                id=f"{ID_PREFIX}-{index:05d}",
                text=_make_text(INTENTS[intent_class], utt_rng),
                intent_class=intent_class,
                speaker=speaker,
                rate=speaker.rate + utt_rng.randint(-10, 10),
                pitch=min(99, max(0, speaker.pitch + utt_rng.randint(-5, 5))),
                snr_db=round(utt_rng.uniform(35.0, 45.0), 2),
                peak_db=round(-3.0 - utt_rng.uniform(0.0, 8.0), 2),
                seed=seed,
            )
        )
    return utterances


def synthesize(utt: Utterance, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak one utterance with espeak-ng and post-process it.

    The audio is resampled to ``sample_rate``, trimmed to at most 0.1 s of leading/trailing silence,
    mixed with seeded white noise at ``utt.snr_db`` and peak-normalised to ``utt.peak_db`` dBFS.

    Args:
        utt: The utterance.
        sample_rate: Output sample rate in Hz.

    Returns:
        Mono float32 audio in [-1, 1].
    """
    proc = subprocess.run(
        ["espeak-ng", "-v", utt.speaker.espeak_voice, "-s", str(utt.rate), "-p", str(utt.pitch)]
        + ["--stdout", utt.text],
        capture_output=True,
        check=True,
    )
    audio, espeak_rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = soxr.resample(audio, espeak_rate, sample_rate).astype(np.float32)
    audio = _trim_silence(audio, sample_rate)
    rng = np.random.default_rng([utt.seed, utt.index])
    signal_rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1e-3
    noise = rng.standard_normal(len(audio)) * signal_rms * 10 ** (-utt.snr_db / 20)
    audio = audio + noise.astype(np.float32)
    peak = float(np.max(np.abs(audio))) or 1.0
    return (audio * (10 ** (utt.peak_db / 20) / peak)).astype(np.float32)


def generate(out_dir: str | Path, n: int, seed: int, num_workers: int = 2) -> dict[str, float]:
    """Synthesise the corpus into ``out_dir`` (audio/, metadata.csv, README.md).

    Args:
        out_dir: Output directory; created if missing. Stale ``audio/*.flac`` files are removed.
        n: Number of clips.
        seed: Random seed.
        num_workers: Worker processes for synthesis (results do not depend on it).

    Returns:
        Clip id -> duration in seconds, in corpus order.

    Raises:
        RuntimeError: If espeak-ng is not installed.
    """
    if shutil.which("espeak-ng") is None:
        raise RuntimeError(ESPEAK_MISSING)
    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    utterances = make_utterances(n, seed)
    wanted = {f"{utt.id}.flac" for utt in utterances}
    for stale in audio_dir.glob("*.flac"):
        if stale.name not in wanted:
            stale.unlink()

    jobs = [(utt, str(audio_dir / f"{utt.id}.flac")) for utt in utterances]
    if num_workers <= 1:
        durations = [_synthesize_to_file(job) for job in tqdm(jobs, desc="synthesising", unit="clip")]
    else:
        with Pool(num_workers) as pool:
            results = pool.imap(_synthesize_to_file, jobs, chunksize=4)
            durations = list(tqdm(results, total=len(jobs), desc="synthesising", unit="clip"))

    _write_metadata(out_dir / "metadata.csv", utterances)
    _write_readme(out_dir, utterances, durations, seed)
    return {utt.id: duration for utt, duration in zip(utterances, durations, strict=True)}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m asr_lightning.synthetic OUT_DIR --n 600 --seed 0``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="output directory")
    parser.add_argument("--n", type=int, default=600, help="number of clips")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--num-workers", type=int, default=2, help="synthesis worker processes")
    args = parser.parse_args(argv)
    try:
        durations = generate(args.out_dir, args.n, args.seed, args.num_workers)
    except RuntimeError as err:
        raise SystemExit(f"error: {err}") from None
    total = sum(durations.values())
    print(f"wrote {len(durations)} clips ({total / 60:.1f} min) to {args.out_dir}")


# Slot fillers. Everything is spelled out in words exactly as espeak-ng will say it.
_FIRST_NAMES = [
    "james", "mary", "john", "sarah", "david", "emma", "michael", "laura", "peter", "anna",
    "tom", "lucy", "daniel", "sophie", "mark", "helen", "paul", "kate", "ben", "grace",
]  # fmt: skip
_SURNAMES = [
    "smith", "jones", "taylor", "brown", "wilson", "evans", "thomas", "johnson", "roberts", "walker",
    "wright", "robinson", "thompson", "white", "hughes", "edwards", "green", "hall", "wood", "clarke",
]  # fmt: skip
_COUNTRIES = [
    "spain", "france", "italy", "germany", "portugal", "greece", "turkey", "america", "canada",
    "mexico", "japan", "india", "australia", "ireland", "egypt", "thailand", "brazil", "norway",
]  # fmt: skip
_PAYEES = ["tesco", "amazon", "netflix", "ikea", "boots", "the gym", "my landlord", "argos", "lidl"]
_BILLS = ["gas", "water", "phone", "internet", "council tax", "credit card", "rent", "energy"]
_STREETS = [
    "high street", "church road", "station road", "park avenue", "mill lane", "victoria road",
    "green lane", "king street", "queens road", "the crescent",
]  # fmt: skip
_ACCOUNTS = ["current", "savings", "business", "joint", "main"]
_BUSINESSES = ["bakery", "cafe", "shop", "salon", "garage", "farm"]
_PARTNERS = ["wife", "husband", "partner", "son", "daughter", "mum", "dad", "friend"]
_CURRENCIES = ["pounds", "pounds", "dollars", "euros"]
_MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]  # fmt: skip
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]  # fmt: skip
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINALS = [
    "", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
    "eighteenth", "nineteenth", "twentieth", "twenty first", "twenty second", "twenty third",
    "twenty fourth", "twenty fifth", "twenty sixth", "twenty seventh", "twenty eighth", "twenty ninth",
    "thirtieth", "thirty first",
]  # fmt: skip

# Deliberately short (3-5 spoken words, ~1.4 s): 8 kHz 16-bit FLAC of espeak-ng speech costs ~10.5 kB/s, and
# the committed 600-clip corpus (data/demo) has to stay under 10 MB.
_TEMPLATES: dict[str, list[str]] = {
    "abroad": [
        "i'm going to {country}",
        "i'm travelling abroad",
        "my card in {country}",
        "fees abroad please",
        "i'm visiting {country}",
    ],
    "address": [
        "change my address",
        "update my address please",
        "i've moved house",
        "my new address",
        "i moved to {street}",
    ],
    "app_error": [
        "the app keeps crashing",
        "the app won't load",
        "app error {code}",
        "your app isn't working",
        "the app froze",
    ],
    "atm_limit": [
        "what's my cash limit",
        "my withdrawal limit",
        "withdraw {amount}",
        "raise my cash limit",
    ],
    "balance": [
        "what's my balance",
        "my {account} balance please",
        "what's my current balance",
        "how much have i got",
    ],
    "business_loan": [
        "i'd like a business loan",
        "a loan for my {business}",
        "business loan rates",
        "can my business borrow",
    ],
    "card_issues": [
        "my card was declined",
        "my card isn't working",
        "my card hasn't arrived",
        "i forgot my pin",
        "{payee} declined my card",
    ],
    "cash_deposit": [
        "i want to deposit cash",
        "deposit {amount}",
        "where can i pay in cash",
        "can i deposit cash",
    ],
    "direct_debit": [
        "cancel my direct debit",
        "set up a direct debit",
        "direct debit to {payee}",
        "my direct debits",
    ],
    "freeze": [
        "please freeze my card",
        "i lost my card",
        "freeze card {digits}",
        "please freeze my account",
        "unfreeze my card",
    ],
    "high_value_payment": [
        "send {big_amount}",
        "pay {name} {big_amount}",
        "transfer {big_amount}",
        "a large payment please",
    ],
    "joint_account": [
        "i want a joint account",
        "add {full_name} please",
        "open a joint account",
        "a joint account for my {partner}",
    ],
    "latest_transactions": [
        "my last {small} payments",
        "my latest transactions",
        "did {payee} take money",
        "show recent payments",
        "my payments {date}",
        "has {name} paid me",
    ],
    "pay_bill": [
        "pay my {bill} bill",
        "how do i pay bills",
        "pay {payee} {amount}",
        "please pay my {bill} bill",
    ],
}
_OPENERS = ["hi", "hello", "yes", "um", "okay"]
_CLOSERS = ["please", "thanks"]
_MAX_WORDS = 4  # openers/closers are only added to utterances shorter than this


def _make_text(intent: str, rng: random.Random) -> str:
    template = rng.choice(_TEMPLATES[intent])
    text = re.sub(r"\{(\w+)\}", lambda m: _SLOTS[m.group(1)](rng), template)
    words = text.split()
    if rng.random() < 0.1 and len(words) < _MAX_WORDS:
        words = [rng.choice(_OPENERS), *words]
    if rng.random() < 0.05 and words[-1] != "please" and len(words) < _MAX_WORDS:
        words = [*words, rng.choice(_CLOSERS)]
    return " ".join(words)


def _number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + _number_words(rest))
    rest = n % 1000
    tail = "" if rest == 0 else (" and " if rest < 100 else " ") + _number_words(rest)
    return _number_words(n // 1000) + " thousand" + tail


def _amount(rng: random.Random) -> str:
    value = rng.randint(2, 9) * rng.choice([10, 10, 100])
    return f"{_number_words(value)} {rng.choice(_CURRENCIES)}"


def _big_amount(rng: random.Random) -> str:
    value = rng.randint(2, 10) * 1000
    return f"{_number_words(value)} {rng.choice(_CURRENCIES)}"


def _date(rng: random.Random) -> str:
    day, month = _ORDINALS[rng.randint(1, 28)], rng.choice(_MONTHS)
    return rng.choice([f"{month} {day}", f"on {rng.choice(_WEEKDAYS)}", "today", "yesterday"])


def _digits(rng: random.Random, k: int) -> str:
    return " ".join(_ONES[rng.randint(0, 9)] for _ in range(k))


_SLOTS = {
    "amount": _amount,
    "big_amount": _big_amount,
    "date": _date,
    "digits": lambda rng: _digits(rng, 3),
    "code": lambda rng: _digits(rng, 3),
    "small": lambda rng: _number_words(rng.randint(2, 12)),
    "house": lambda rng: _number_words(rng.randint(1, 120)),
    "name": lambda rng: rng.choice(_FIRST_NAMES),
    "full_name": lambda rng: f"{rng.choice(_FIRST_NAMES)} {rng.choice(_SURNAMES)}",
    "country": lambda rng: rng.choice(_COUNTRIES),
    "payee": lambda rng: rng.choice(_PAYEES),
    "bill": lambda rng: rng.choice(_BILLS),
    "street": lambda rng: rng.choice(_STREETS),
    "account": lambda rng: rng.choice(_ACCOUNTS),
    "business": lambda rng: rng.choice(_BUSINESSES),
    "partner": lambda rng: rng.choice(_PARTNERS),
}


# 0.1 s rather than 0.15 s of kept silence: the noisy padding costs almost as many FLAC bits as speech.
def _trim_silence(audio: np.ndarray, sample_rate: int, keep_s: float = 0.1, floor_db: float = -40.0) -> np.ndarray:
    frame = int(0.01 * sample_rate)
    n_frames = len(audio) // frame
    if n_frames == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1))
    voiced = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    keep = int(keep_s * sample_rate)
    start = max(0, voiced[0] * frame - keep)
    end = min(len(audio), (voiced[-1] + 1) * frame + keep)
    return audio[start:end]


def _synthesize_to_file(job: tuple[Utterance, str]) -> float:
    utt, path = job
    audio = synthesize(utt)
    sf.write(path, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)
    return len(audio) / SAMPLE_RATE


def _write_metadata(path: Path, utterances: list[Utterance]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file_name", "id", "transcription", "intent_class", "speaker"])
        for utt in utterances:
            writer.writerow([f"audio/{utt.id}.flac", utt.id, utt.text, utt.intent_class, utt.speaker.name])


def _write_readme(out_dir: Path, utterances: list[Utterance], durations: list[float], seed: int) -> None:
    n = len(utterances)
    total = sum(durations)
    per_intent = Counter(utt.intent_class for utt in utterances)
    per_speaker = Counter(utt.speaker.name for utt in utterances)
    speakers = sorted({utt.speaker for utt in utterances}, key=lambda s: s.name)
    lines = [
        f"# Synthetic MInDS-14-like demo corpus ({n} clips)",
        "",
        "Small synthetic phone-banking speech corpus modelled on MInDS-14 (PolyAI/minds14): short",
        "English requests in the 14 MInDS-14 intents, spoken by espeak-ng voices, 8 kHz mono 16-bit FLAC",
        "(white noise at 35-45 dB SNR, peak -3 to -11 dBFS, silence trimmed to 0.1 s). Hugging Face",
        "`audiofolder` layout: `audio/<id>.flac` and `metadata.csv`",
        "(`file_name,id,transcription,intent_class,speaker`). Transcripts are exactly what is spoken",
        "(lowercase, numbers written as words); utterances are very short (3-5 words) to keep the corpus",
        "small. Only for smoke tests and demos, not for real evaluation.",
        "",
        "Generated with:",
        "",
        "```",
        f"python -m asr_lightning.synthetic {out_dir.as_posix()} --n {n} --seed {seed}",
        "```",
        "",
        f"- clips: {len(utterances)}",
        f"- total duration: {total / 60:.1f} min ({total / 3600:.3f} h)",
        f"- clip duration: mean {np.mean(durations):.2f} s, min {min(durations):.2f} s, max {max(durations):.2f} s",
        f"- speakers: {len(speakers)}",
        "",
        "## Intents (`intent_class` is the index in this list)",
        "",
        "| intent_class | intent | clips |",
        "|---|---|---|",
        *(f"| {i} | {name} | {per_intent[i]} |" for i, name in enumerate(INTENTS)),
        "",
        "## Speakers",
        "",
        "| speaker | espeak-ng voice | rate (wpm) | pitch | clips |",
        "|---|---|---|---|---|",
        *(f"| {s.name} | {s.espeak_voice} | {s.rate} | {s.pitch} | {per_speaker[s.name]} |" for s in speakers),
        "",
        "Each clip jitters its speaker's rate by up to 10 wpm and pitch by up to 5. espeak-ng voice `en` is",
        "British English (`en-gb+VARIANT` would silently ignore the variant).",
        "",
    ]
    (out_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
