# pytest tests/test_corpora.py
"""Corpora read as their downloads lay them out: LibriSpeech (the OpenSLR tarballs), Libri-light's
limited-resource fine-tuning sets and a Common Voice locale, each a `DatasetDict` of its splits, the audio
undecoded (`Audio(decode=False)`: a path per cell; no audio is read here).

Each loader scans the folder once, writes each split's rows to a JSONL manifest in the datasets cache and loads
that with the `json` builder. The result is backed by Arrow files with a stable fingerprint, so the data module's
cached index `map`s are reused from run to run; an in-memory `Dataset.from_dict` is never cached, and a 960 h
corpus would be indexed again every run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

import datasets
from datasets import Audio, Dataset, DatasetDict, Features, Value
from filelock import FileLock

log = logging.getLogger(__name__)

# Manifests live in this folder of the datasets cache (or of `cache_dir`), one subfolder per corpus folder
MANIFEST_FOLDER = "asr_lightning_manifests"

# The columns and dtypes of the Hub's parquet conversion of `openslr/librispeech_asr`
LIBRISPEECH_FEATURES = Features(
    {
        "file": Value("string"),
        "audio": Audio(decode=False),
        "text": Value("string"),
        "speaker_id": Value("int64"),
        "chapter_id": Value("int64"),
        "id": Value("string"),
    }
)

# Libri-light's splits and the folders of `librispeech_finetuning/` that make each one
LIBRILIGHT_SPLITS = {
    **{f"10m-{k}": (f"1h/{k}/clean", f"1h/{k}/other") for k in range(6)},
    "9h": ("9h/clean", "9h/other"),
}

# Common Voice's TSV columns kept (all strings, as written), in the order of the Hub's Common Voice datasets;
# `accent` (older releases) is read as `accents`
COMMON_VOICE_COLUMNS = (
    "client_id",
    "path",
    "sentence",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "locale",
)


def load_librispeech_folder(
    root: str | Path, splits: Collection[str] | None = None, cache_dir: str | None = None
) -> DatasetDict:
    """LibriSpeech as the OpenSLR tarballs unpack it, with the columns of the Hub's `openslr/librispeech_asr`.

    `LibriSpeech/<split>/<speaker>/<chapter>/` holds `<speaker>-<chapter>-<utt>.flac` files and one
    `<speaker>-<chapter>.trans.txt` (lines `<speaker>-<chapter>-<utt> TRANSCRIPT`). Every folder that holds
    `*/*/*.trans.txt` is a split, named as the folder (`train-clean-100`, `dev-clean`, `test-other`, ...).

    A transcript line whose flac is missing is kept (the indexer skips and counts it as `missing_file`); a flac
    without a transcript line is left out, and counted in a warning. Rows are sorted by id.

    Args:
        root: the `LibriSpeech` folder, or the folder that holds it.
        splits: the splits to load; None (or none named) for all of them.
        cache_dir: the datasets cache (the manifests go in its `asr_lightning_manifests/`); None for the default.

    Returns:
        One dataset per split: `file` (the flac's absolute path), `audio` (`{"bytes": None, "path": file}`),
        `text`, `speaker_id` (int64), `chapter_id` (int64) and `id` (`<speaker>-<chapter>-<utt>`).

    Raises:
        FileNotFoundError: a folder without any split.
        KeyError: a split in `splits` that the folder does not have, naming those it has.
    """
    folder = _librispeech_root(root)
    wanted = _wanted(_librispeech_splits(folder), splits, folder, "LibriSpeech <split>/<speaker>/<chapter>/*.trans.txt")
    rows = {split: _chapter_rows([folder / split], split) for split in wanted}
    return _from_manifests(
        "librispeech", folder, rows, dict.fromkeys(rows, LIBRISPEECH_FEATURES), "file", folder, cache_dir
    )


def load_librilight(
    root: str | Path, splits: Collection[str] | None = None, cache_dir: str | None = None
) -> DatasetDict:
    """Libri-light's limited-resource fine-tuning sets (`librispeech_finetuning/`), with LibriSpeech's columns.

    The download holds `1h/{0..5}/{clean,other}/<speaker>/<chapter>/` and `9h/{clean,other}/<speaker>/<chapter>/`,
    laid out as LibriSpeech's chapters. Its splits:

    - `10m-0` ... `10m-5`: `1h/<k>/clean` and `1h/<k>/other` together, the six 10-minute sets; fairseq's
      "10 min" set is `10m-0`, the 1 h set is all six.
    - `9h`: `9h/clean` and `9h/other`; the 10 h set is the six 10-minute sets and `9h`.

    Args:
        root: the `librispeech_finetuning` folder, or the folder that holds it.
        splits: the splits to load; None (or none named) for all of them.
        cache_dir: the datasets cache (the manifests go in its `asr_lightning_manifests/`); None for the default.

    Returns:
        One dataset per split, with the columns and dtypes of `load_librispeech_folder`.

    Raises:
        FileNotFoundError: a folder without any split.
        KeyError: a split in `splits` that the folder does not have, naming those it has.
    """
    folder = _librilight_root(root)
    wanted = _wanted(_librilight_splits(folder), splits, folder, "librispeech_finetuning 1h/<k>/{clean,other}, 9h/")
    rows = {split: _chapter_rows([folder / sub for sub in LIBRILIGHT_SPLITS[split]], split) for split in wanted}
    return _from_manifests(
        "librilight", folder, rows, dict.fromkeys(rows, LIBRISPEECH_FEATURES), "file", folder, cache_dir
    )


def load_common_voice(
    root: str | Path, splits: Collection[str] | None = None, cache_dir: str | None = None
) -> DatasetDict:
    """One locale of a Common Voice download (`cv-corpus-<version>/<locale>/`), its clips undecoded.

    Every `*.tsv` with `path` and `sentence` columns is a split named by its stem (`train`, `dev`, `test`, and
    `validated`, `other`, `invalidated` where present); `clip_durations.tsv`, `reported.tsv` and the like are not.
    The TSVs are read without quote processing (sentences hold `"` characters) and every cell as written
    (a sentence `NA` or `null` stays a string).

    Args:
        root: the locale folder, or a `cv-corpus-*` folder that holds exactly one locale.
        splits: the splits to load; None (or none named) for all of them.
        cache_dir: the datasets cache (the manifests go in its `asr_lightning_manifests/`); None for the default.

    Returns:
        One dataset per split: `client_id`, `path` (the clip's file name, unique: the id), `audio`
        (`{"bytes": None, "path": <locale folder>/clips/<path>}`, absolute), `sentence`, and, where the TSV has
        them, `up_votes`, `down_votes`, `age`, `gender`, `accents` (`accent` in older releases) and `locale`, all
        strings.

    Raises:
        FileNotFoundError: a folder that is neither a locale folder nor holds one.
        ValueError: a `cv-corpus-*` folder with more than one locale, naming them.
        KeyError: a split in `splits` that the folder does not have, naming those it has.
    """
    folder = _common_voice_root(root)
    wanted = _wanted(_common_voice_splits(folder), splits, folder, "Common Voice *.tsv with path and sentence")
    rows, features = {}, {}
    for split in wanted:
        rows[split], features[split] = _tsv_rows(folder / f"{split}.tsv")
    return _from_manifests("common_voice", folder, rows, features, "path", folder / "clips", cache_dir)


def corpus_splits(layout: str, root: str | Path) -> list[str]:
    """The split names a corpus folder offers, without loading any.

    Args:
        layout: one of `LAYOUTS`.
        root: the folder, as the layout's loader takes it.

    Raises:
        ValueError: an unknown layout, or (Common Voice) a folder with more than one locale.
        FileNotFoundError: (Common Voice) a folder that is neither a locale folder nor holds one.
    """
    listers = {
        "librispeech": lambda: _librispeech_splits(_librispeech_root(root)),
        "librilight": lambda: _librilight_splits(_librilight_root(root)),
        "common_voice": lambda: _common_voice_splits(_common_voice_root(root)),
    }
    if layout not in listers:
        raise ValueError(f"unknown corpus layout {layout!r}: the layouts are {sorted(LAYOUTS)}")
    return listers[layout]()


# Each corpus layout and its loader: `loader(root, splits=None, cache_dir=None) -> DatasetDict`
LAYOUTS: dict[str, Callable[..., DatasetDict]] = {
    "librispeech": load_librispeech_folder,
    "librilight": load_librilight,
    "common_voice": load_common_voice,
}


def _librispeech_root(root: str | Path) -> Path:
    root = Path(root).resolve()
    return root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root


def _librispeech_splits(folder: Path) -> list[str]:
    return sorted(d.name for d in _subdirs(folder) if _holds_chapters(d))


def _holds_chapters(folder: Path) -> bool:
    # The first match is enough: a glob is lazy, so this does not walk a 28k-file split
    return next(folder.glob("*/*/*.trans.txt"), None) is not None


def _subdirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    # DirEntry.is_dir uses the type the directory listing returns: no stat per entry
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir())


def _wanted(found: list[str], splits: Collection[str] | None, folder: Path, expected: str) -> list[str]:
    if not found:
        raise FileNotFoundError(f"{folder} holds no splits of the expected layout ({expected})")
    if not splits:  # as for a Hub dataset: no split names, every split
        return found
    splits = [splits] if isinstance(splits, str) else list(dict.fromkeys(splits))
    missing = [s for s in splits if s not in found]
    if missing:
        raise KeyError(f"{folder} has no split(s) {missing}; its splits are {found}")
    return splits


def _chapter_rows(subsets: list[Path], split: str) -> list[dict]:
    # `<subset>/<speaker>/<chapter>/`: one listing and one transcript read per chapter
    rows, unlisted = [], []
    for subset in subsets:
        for speaker in _subdirs(subset):
            for chapter in _subdirs(speaker):
                with os.scandir(chapter) as entries:
                    names = [e.name for e in entries]
                flacs = {n.removesuffix(".flac") for n in names if n.endswith(".flac")}
                listed = set()
                for trans in sorted(n for n in names if n.endswith(".trans.txt")):
                    for row in _transcript_rows(chapter / trans):
                        listed.add(row["id"])
                        rows.append(row)
                unlisted += [str(chapter / f"{u}.flac") for u in sorted(flacs - listed)]
    if unlisted:
        log.warning(
            "%s: %d flac file(s) have no transcript line and are left out (e.g. %s)",
            split,
            len(unlisted),
            unlisted[:3],
        )
    return sorted(rows, key=lambda r: r["id"])


def _transcript_rows(trans: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
        utt, _, text = line.strip().partition(" ")
        if not utt:
            continue
        parts = utt.split("-")
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            raise ValueError(f"{trans}:{number}: {line!r} is not `<speaker>-<chapter>-<utt> TRANSCRIPT`")
        # As the Hub's librispeech_asr: the speaker and chapter come from the id
        rows.append(
            {
                "file": str(trans.parent / f"{utt}.flac"),
                "text": text.strip(),
                "speaker_id": int(parts[0]),
                "chapter_id": int(parts[1]),
                "id": utt,
            }
        )
    return rows


def _librilight_root(root: str | Path) -> Path:
    root = Path(root).resolve()
    return root / "librispeech_finetuning" if (root / "librispeech_finetuning").is_dir() else root


def _librilight_splits(folder: Path) -> list[str]:
    return [s for s, subs in LIBRILIGHT_SPLITS.items() if any(_holds_chapters(folder / sub) for sub in subs)]


def _common_voice_root(root: str | Path) -> Path:
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory (a Common Voice locale folder)")
    if _common_voice_splits(root):
        return root
    locales = [d.name for d in _subdirs(root) if _common_voice_splits(d)]
    if len(locales) == 1:
        return root / locales[0]
    if not locales:
        raise FileNotFoundError(
            f"{root} is not a Common Voice locale folder (clips/ and TSVs with `path` and `sentence` columns: "
            "train.tsv, dev.tsv, test.tsv) and holds none"
        )
    raise ValueError(
        f"{root} holds {len(locales)} Common Voice locales {locales}: point data.data_dir at one of them "
        f"(e.g. {root / locales[0]})"
    )


def _common_voice_splits(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        tsvs = sorted(Path(e.path) for e in entries if e.name.endswith(".tsv") and e.is_file())
    return [t.stem for t in tsvs if {"path", "sentence"} <= set(_tsv_header(t))]


def _tsv_header(tsv: Path) -> list[str]:
    with open(tsv, encoding="utf-8", newline="") as f:
        return f.readline().rstrip("\r\n").split("\t")


def _tsv_rows(tsv: Path) -> tuple[list[dict], Features]:
    with open(tsv, encoding="utf-8", newline="") as f:
        # QUOTE_NONE: a sentence such as `He said "no"` is a cell as written, not a quoted field
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        named = {("accents" if c == "accent" and "accents" not in header else c): i for i, c in enumerate(header)}
        columns = [c for c in COMMON_VOICE_COLUMNS if c in named]
        rows = [
            {c: cells[named[c]] if named[c] < len(cells) else "" for c in columns}
            for cells in reader
            if cells  # a blank line
        ]
    at = columns.index("path") + 1  # the audio column follows `path`
    features = Features(
        {
            **{c: Value("string") for c in columns[:at]},
            "audio": Audio(decode=False),
            **{c: Value("string") for c in columns[at:]},
        }
    )
    return rows, features


def _from_manifests(
    layout: str,
    root: Path,
    rows: dict[str, list[dict]],
    features: dict[str, Features],
    audio_from: str,
    audio_folder: Path,
    cache_dir: str | None,
) -> DatasetDict:
    # `features` per split: Common Voice's TSVs may differ in their columns
    folder = _manifest_folder(layout, root, cache_dir)
    out = {}
    for split, split_rows in rows.items():
        split_features = features[split]
        if not split_rows:  # the json builder refuses an empty file; nothing to cache for no rows
            out[split] = Dataset.from_dict({c: [] for c in split_features}, features=split_features)
            continue
        manifest = folder / f"{split}.jsonl"
        _write_if_changed(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows))
        # The builder's split names must be `\w+(\.\w+)*`: `train-clean-100` is not
        name = re.sub(r"\W", "_", split)
        ds = datasets.load_dataset(
            "json",
            data_files={name: str(manifest)},
            split=name,
            cache_dir=cache_dir,
            features=Features({c: f for c, f in split_features.items() if c != "audio"}),
        )
        ds = ds.map(_audio_cells, input_columns=audio_from, batched=True, fn_kwargs={"folder": str(audio_folder)})
        # A cast, not map(features=...): encoding an Audio feature needs torchcodec; the cast also orders the columns
        out[split] = ds.cast(split_features)
    return DatasetDict(out)


def _manifest_folder(layout: str, root: Path, cache_dir: str | None) -> Path:
    cache = Path(cache_dir) if cache_dir else Path(datasets.config.HF_DATASETS_CACHE)
    key = hashlib.sha256(f"{layout}\n{root}".encode()).hexdigest()[:16]
    folder = cache / MANIFEST_FOLDER / f"{layout}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_if_changed(path: Path, text: str) -> None:
    # The json builder keys its cache on the file's modification time: rewriting an unchanged manifest would
    # give a new fingerprint, and every cached index `map` would run again
    data = text.encode("utf-8")
    # DDP ranks scan the same folder at once: under the lock only the first writes, the others find its bytes and
    # keep its modification time, so every rank gets one fingerprint and reuses one cached index
    with FileLock(str(path) + ".lock"):
        if path.is_file() and path.read_bytes() == data:
            return
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)  # atomic: a reader sees the old manifest or the new one


def _audio_cells(names: list[str], folder: str) -> dict:
    # `file` (LibriSpeech) is already absolute, and joining leaves it as it is
    return {"audio": [{"bytes": None, "path": os.path.join(folder, n)} for n in names]}
