"""Small stand-ins for corpus downloads (LibriSpeech, Libri-light, Common Voice) and for Hub parquet datasets
(`openslr/librispeech_asr`, `google/fleurs`), with short synthetic clips, for offline tests."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

SR = 16_000
# Common Voice's clips are 48 kHz MP3s (the Hub's Common Voice datasets declare `Audio(sampling_rate=48000)`)
COMMON_VOICE_SR = 48_000
WORDS = ["THE", "QUICK", "BROWN", "FOX", "DON'T", "JUMPS", "OVER", "LAZY", "DOG'S", "BACK", "IT", "WAS", "NIGHT"]

LIBRISPEECH_SPLITS = ("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other")
# The Hub's `all` config names them with dots
HUB_SPLITS = {
    "train-clean-100": "train.clean.100",
    "dev-clean": "validation.clean",
    "dev-other": "validation.other",
    "test-clean": "test.clean",
    "test-other": "test.other",
}
COMMON_VOICE_HEADER = (
    "client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents variant locale segment"
).split()
# Punctuated, mixed case, typographic. Under csv quote processing a cell that starts with `"` is a quoted field:
# `"Quiet," she said.` would lose its quotes, and the lone `"` of `"Hello and left.` swallow the lines after it
COMMON_VOICE_SENTENCES = {
    "train": ["Don’t stop, “Mister” Smith!", '"Hello and left.', "¿Qué? ¡No way!", "Well… that's odd."],
    "dev": ["O'Brien – the elder – left.", '"Quiet," she said.', "Café au lait, s'il vous plaît."],
    "test": ["Where's the “quiet” room?", 'He said "no" twice.', "Yes!"],
}
FLEURS_SPLITS = {"train": 4, "validation": 2, "test": 2}
FLEURS_LANGUAGES = {"af_za": "Afrikaans", "en_us": "English", "fr_fr": "French", "hi_in": "Hindi", "sw_ke": "Swahili"}
FLEURS_GROUPS = [
    "western_european_we",
    "eastern_european_ee",
    "central_asia_middle_north_african_cmn",
    "sub_saharan_african_ssa",
    "south_asian_sa",
    "south_east_asian_sea",
    "chinese_japanase_korean_cjk",
]


def tone(seed: int, sr: int = SR) -> np.ndarray:
    """A clip of 0.6-1.5 s, distinct per seed: a tone (its pitch set by the seed) over faint noise."""
    rng = np.random.default_rng(seed)
    n = int(sr * (0.6 + 0.1 * (seed % 10)))
    t = np.arange(n) / sr
    clip = 0.3 * np.sin(2 * np.pi * (150 + 37 * seed % 3000) * t) + 0.01 * rng.standard_normal(n)
    return clip.astype(np.float32)


def words(seed: int) -> str:
    """A transcript of 3-5 words over A-Z and apostrophe."""
    return " ".join(WORDS[(seed * 7 + k * 3) % len(WORDS)] for k in range(3 + seed % 3))


def librispeech_folder(root: Path, splits: tuple[str, ...] = LIBRISPEECH_SPLITS, per_split: int = 4) -> Path:
    """`<root>/LibriSpeech/<split>/<speaker>/<chapter>/` FLACs and `.trans.txt`s, as the OpenSLR tarballs unpack."""
    folder = Path(root) / "LibriSpeech"
    for i, split in enumerate(splits):
        for speaker, chapter, utts in _chapters(i, per_split):
            chapter_dir = folder / split / str(speaker) / str(chapter)
            chapter_dir.mkdir(parents=True)
            lines = []
            for utt, seed in utts:
                sf.write(chapter_dir / f"{utt}.flac", tone(seed), SR, format="FLAC")
                lines.append(f"{utt} {words(seed)}\n")
            (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return folder


def librispeech_hub_parquet(root: Path, per_split: int = 4) -> Path:
    """A dataset directory shaped like the Hub's `openslr/librispeech_asr` (`all` config, FLAC bytes embedded)."""
    folder = Path(root) / "librispeech_asr"
    features = datasets.Features(
        {
            "file": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=SR),
            "text": datasets.Value("string"),
            "speaker_id": datasets.Value("int64"),
            "chapter_id": datasets.Value("int64"),
            "id": datasets.Value("string"),
        }
    )
    for i, (split, hub_split) in enumerate(HUB_SPLITS.items()):
        rows = {c: [] for c in features}
        for speaker, chapter, utts in _chapters(i, per_split):
            for utt, seed in utts:
                buf = io.BytesIO()
                sf.write(buf, tone(seed), SR, format="FLAC")
                # The conversion's `file` is where the tarball was extracted on the converting machine
                rows["file"].append(f"/cache/extracted/LibriSpeech/{split}/{speaker}/{chapter}/{utt}.flac")
                rows["audio"].append({"bytes": buf.getvalue(), "path": f"{utt}.flac"})
                rows["text"].append(words(seed))
                rows["speaker_id"].append(speaker)
                rows["chapter_id"].append(chapter)
                rows["id"].append(utt)
        (folder / "all" / hub_split).mkdir(parents=True)
        # from_dict, then cast: `from_dict(features=...)` would encode the audio, which needs torchcodec
        datasets.Dataset.from_dict(rows).cast(features).to_parquet(folder / "all" / hub_split / "0000.parquet")
    _card(folder, "all", HUB_SPLITS.values())
    return folder


def librilight_folder(root: Path) -> Path:
    """`<root>/librispeech_finetuning/` with `1h/{0..5}/{clean,other}` (1-2 clips each) and `9h/{clean,other}`."""
    folder = Path(root) / "librispeech_finetuning"
    subsets = [(f"1h/{k}/{kind}", 1 + (k + j) % 2) for k in range(6) for j, kind in enumerate(("clean", "other"))]
    subsets += [("9h/clean", 2), ("9h/other", 2)]
    for i, (subset, n) in enumerate(subsets):
        speaker, chapter = 200 + i, 3000 + i
        chapter_dir = folder / subset / str(speaker) / str(chapter)
        chapter_dir.mkdir(parents=True)
        lines = []
        for u in range(n):
            seed, utt = 100 + 2 * i + u, f"{speaker}-{chapter}-{u:04d}"
            sf.write(chapter_dir / f"{utt}.flac", tone(seed), SR, format="FLAC")
            lines.append(f"{utt} {words(seed)}\n")
        (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return folder


def common_voice_folder(root: Path, locale: str = "en") -> Path:
    """`<root>/cv-corpus-<v>/<locale>/`: 48 kHz MP3 clips, a recent release's TSVs, and two that are not splits."""
    folder = Path(root) / "cv-corpus-21.0-2025-03-14" / locale
    (folder / "clips").mkdir(parents=True)
    rows, durations, validated = {}, [], []
    seed = 300
    for split, sentences in COMMON_VOICE_SENTENCES.items():
        rows[split] = []
        for sentence in sentences:
            seed += 1
            path = f"common_voice_{locale}_{41_000_000 + seed}.mp3"
            clip = tone(seed, COMMON_VOICE_SR)
            sf.write(folder / "clips" / path, clip, COMMON_VOICE_SR, format="MP3")
            durations.append(f"{path}\t{round(1000 * len(clip) / COMMON_VOICE_SR)}\n")
            client = hashlib.sha256(f"client{seed % 3}".encode()).hexdigest()
            row = {
                "client_id": client,
                "path": path,
                "sentence_id": hashlib.sha256(sentence.encode()).hexdigest(),
                "sentence": sentence,
                "sentence_domain": "",
                "up_votes": str(2 + seed % 2),
                "down_votes": "0",
                "age": ["twenties", "", "fifties"][seed % 3],
                "gender": ["male_masculine", "", "female_feminine"][seed % 3],
                "accents": ["United States English", "", "England English"][seed % 3],
                "variant": "",
                "locale": locale,
                "segment": "",
            }
            rows[split].append(row)
            validated.append(row)
    rows["validated"] = validated  # as in the releases: every validated clip, the splits' among them
    for split, split_rows in rows.items():
        lines = ["\t".join(COMMON_VOICE_HEADER)] + ["\t".join(r[c] for c in COMMON_VOICE_HEADER) for r in split_rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "clip_durations.tsv").write_text("clip\tduration[ms]\n" + "".join(durations))
    (folder / "reported.tsv").write_text(f"sentence_id\tsentence\tlocale\treason\nabc\tYes!\t{locale}\tgrammar\n")
    return folder


def fleurs_parquet(root: Path, config: str = "en_us") -> Path:
    """A dataset directory shaped like the Hub's `google/fleurs` for one config; train rows 0 and 1 share an `id`."""
    folder = Path(root) / "fleurs"
    langs = sorted({config, *FLEURS_LANGUAGES})
    features = datasets.Features(
        {
            "id": datasets.Value("int32"),
            "num_samples": datasets.Value("int32"),
            "path": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=SR),
            "transcription": datasets.Value("string"),
            "raw_transcription": datasets.Value("string"),
            "gender": datasets.ClassLabel(names=["male", "female", "other"]),
            "lang_id": datasets.ClassLabel(names=langs),
            "language": datasets.Value("string"),
            "lang_group_id": datasets.ClassLabel(names=FLEURS_GROUPS),
        }
    )
    seed = 500
    for split, n in FLEURS_SPLITS.items():
        rows = {c: [] for c in features}
        for k in range(n):
            seed += 1
            sentence = 1000 + seed - (1 if split == "train" and k == 1 else 0)  # train rows 0 and 1: one sentence
            clip = tone(seed)
            buf = io.BytesIO()
            sf.write(buf, clip, SR, format="WAV", subtype="PCM_16")
            path = f"{10_000_000_000 + seed * 7919}.wav"
            text = words(sentence)
            rows["id"].append(sentence)
            rows["num_samples"].append(len(clip))
            rows["path"].append(path)
            rows["audio"].append({"bytes": buf.getvalue(), "path": f"{split}/{path}"})
            first, rest = text.split(" ", 1)
            rows["transcription"].append(text.lower())
            rows["raw_transcription"].append(f"{first.capitalize()}, {rest.lower()}.")
            rows["gender"].append(seed % 2)
            rows["lang_id"].append(langs.index(config))
            rows["language"].append(FLEURS_LANGUAGES.get(config, config))
            rows["lang_group_id"].append(0)
        (folder / config / split).mkdir(parents=True)
        datasets.Dataset.from_dict(rows).cast(features).to_parquet(folder / config / split / "0000.parquet")
    _card(folder, config, FLEURS_SPLITS)
    return folder


def _chapters(split_index: int, per_split: int) -> list[tuple[int, int, list[tuple[str, int]]]]:
    # Two speakers (one chapter each) per split, distinct across splits, so ids are unique across splits
    out = []
    for s in range(2):
        speaker, chapter = 1000 + 10 * split_index + s, 20_000 + 100 * split_index + s
        seeds = [split_index * per_split + j for j in range(s, per_split, 2)]
        out.append((speaker, chapter, [(f"{speaker}-{chapter}-{u:04d}", seed) for u, seed in enumerate(seeds)]))
    return out


def _card(folder: Path, config: str, splits) -> None:
    files = "".join(f"  - split: {s}\n    path: {config}/{s}/*\n" for s in splits)
    (folder / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config}\n  data_files:\n{files}---\n# stand-in\n"
    )
