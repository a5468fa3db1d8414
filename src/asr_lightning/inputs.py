# python predict.py ckpt_path=<run dir>/hf_model inputs=[clip.wav,calls/,"calls/**/*.flac",metadata.csv]
"""What predict.py transcribes: files, globs, folders, manifests and dataset splits, as `AudioInput`s.

Inputs are gathered and named here, apart from batching and decoding (`transcribe.py`): a manifest's rows keep
its order, ids, references (normalised as training's) and metadata.
"""

from __future__ import annotations

import csv
import glob
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asr_lightning.audio import AUDIO_EXTENSIONS
from asr_lightning.scoring import read_jsonl
from asr_lightning.text import normalize_text

log = logging.getLogger(__name__)
MANIFEST_NAMES = ("metadata.csv", "metadata.jsonl")
# manifest columns, in order of preference: audiofolder (`file_name`), NeMo (`audio_filepath`), generic
PATH_COLUMNS = ("file_name", "audio_filepath", "path", "audio")
TEXT_COLUMNS = ("transcription", "text", "sentence", "reference")


@dataclass(frozen=True)
class AudioInput:
    """One input: an audio file (or decoded audio), its id, and its reference and metadata when known."""

    path: Path | None
    id: str
    reference: str | None = None
    audio: np.ndarray | None = field(default=None, repr=False)  # (samples,) at the model's rate, when decoded
    metadata: dict[str, Any] = field(default_factory=dict)
    normalized: bool = False  # `audio` is already the feature extractor's output (a data module's split)
    num_samples: int | None = None  # the audio's samples, when `audio` is filterbank features (frames, dim)


class InputError(ValueError):
    """An input predict.py cannot use as given (a malformed manifest, an unknown split): says where and why."""


def expand_inputs(inputs: str | Path | Iterable[str | Path]) -> list[AudioInput]:
    """Files as given, globs, folders (recursively, audio extensions, sorted) and manifests.

    A manifest is a `metadata.csv`/`.jsonl` (audiofolder: `file_name` relative to the manifest, a transcript
    column) or any `.jsonl`/`.csv` with a path column (NeMo: `audio_filepath`, `text`); its rows keep the
    manifest's order and bring their references (and `id`, when there is that column).

    Nothing given is dropped without a word: a missing file, a broken symbolic link and a glob that matches
    nothing each become an input whose reading fails (an error entry in the results); an empty folder is
    logged. Symbolic links to folders are followed (once each).

    Raises:
        InputError: a manifest that cannot be read as one (naming the file and line).
    """
    if isinstance(inputs, str | Path):  # `inputs=x.wav` without brackets is one input, not its characters
        inputs = [inputs]
    out: list[AudioInput] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = _audio_files(path)
            if not found:
                log.warning("no audio files (%s) in %s", ", ".join(AUDIO_EXTENSIONS), path)
            out += [AudioInput(p, str(p)) for p in found]
        elif path.is_file() and (path.name in MANIFEST_NAMES or path.suffix in (".csv", ".jsonl", ".json")):
            out += read_manifest(path)
        elif any(c in str(item) for c in "*?[") and not path.exists():
            matches = [Path(p) for p in sorted(glob.glob(str(item), recursive=True))]
            matches = [p for p in matches if _is_audio(p)]
            if not matches:
                log.warning("%s matches no audio file", item)
            out += [AudioInput(p, str(p)) for p in matches] or [AudioInput(path, str(item))]
        else:
            out.append(AudioInput(path, str(path)))  # a missing file gets an error entry, not a silent skip
    return out


def dataset_inputs(datamodule: Any, split: str) -> list[AudioInput]:
    """A split of an `ASRDataModule` (the `data=` configs), as training's test stage sees it: same split, same
    filters, same normalised references and metadata. `split` is a role (`test`: all its sets) or one set of it
    (LibriSpeech's `test-other`)."""
    datamodule.setup()
    owner = {name: r for r, sets in datamodule.sets.items() for name in sets}
    role = split if split in datamodule.splits else owner.get(split)
    if role is None:
        named = [*datamodule.splits, *owner]
        raise InputError(f"split={split!r} is not one of {list(dict.fromkeys(named))}")
    clips = datamodule.dataset(role)  # decoded and normalised as the test stage's loader does
    meta = datamodule.metadata.get(role, {})
    rows = range(len(clips))
    if role != split and "set" in datamodule.splits[role].column_names:  # one set of several
        rows = [i for i, s in enumerate(datamodule.splits[role]["set"]) if s == split]
    out = []
    for i in rows:
        clip = clips[i]
        if "failed" in clip:  # only with data.validate_audio=false: an error entry, as for an unreadable file
            out.append(AudioInput(None, clip["id"], metadata=meta.get(clip["id"], {})))
            continue
        values = clip[datamodule.frontend.input_name]  # (samples,) or filterbank (frames, dim)
        out.append(AudioInput(None, clip["id"], clip["text"], values, meta.get(clip["id"], {}), normalized=True,
                              num_samples=int(clip["input_length"])))  # fmt: skip
    return out


def read_manifest(path: str | Path) -> list[AudioInput]:
    """Rows of a CSV or JSON-lines manifest, in order; paths relative to the manifest's folder.

    A row without a reference cell (a short CSV row, a JSON row without the key) has no reference: it is
    transcribed, not scored against "". A UTF-8 byte-order mark is allowed, as in training.

    Raises:
        InputError: no path column, a row without its path, a CSV row with more cells than the header (an
            unquoted comma), or malformed JSON; the message names the file and the line.
    """
    path = Path(path)
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = []
            for row in reader:
                if None in row:  # DictReader's key for cells beyond the header
                    raise InputError(
                        f"{path}:{reader.line_num}: more cells than the header's {len(reader.fieldnames or [])}"
                        " columns (an unquoted comma in a transcript? quote the cell)"
                    )
                rows.append((reader.line_num, row))
    else:
        try:
            rows = list(enumerate(read_jsonl(path), start=1))  # (JSONL rows are lines, blank lines aside)
        except ValueError as err:
            raise InputError(str(err)) from err
    if not rows:
        return []
    columns = list(rows[0][1])
    path_col = next((c for c in PATH_COLUMNS if c in columns), None)
    if path_col is None:
        raise InputError(f"{path}: no audio path column (one of {list(PATH_COLUMNS)}); its columns: {columns}")
    text_col = next((c for c in TEXT_COLUMNS if c in columns), None)
    out = []
    for line, row in rows:
        if row.get(path_col) in (None, ""):
            raise InputError(f"{path}:{line}: no {path_col!r} (the audio file) in this row")
        audio = path.parent / str(row[path_col])
        utt_id = str(row["id"]) if row.get("id") not in (None, "") else str(row[path_col])
        # references normalised as training's (uppercase, punctuation dropped), so that WER compares like with like
        text = None if text_col is None else row.get(text_col)
        out.append(AudioInput(audio, utt_id, None if text is None else normalize_text(str(text))))
    return out


def _audio_files(folder: Path) -> list[Path]:
    """Audio files under `folder`, sorted, following symbolic links to folders (each real folder once) and
    keeping broken links to audio files (they fail to read, with an error entry, rather than vanish)."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link loop, or a folder linked twice
            dirs[:] = []
            continue
        seen.add(real)
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return sorted(found)


def _is_audio(path: Path) -> bool:
    # a broken link to an audio file is kept: reading it fails with an error entry that names it
    return path.suffix.lower() in AUDIO_EXTENSIONS and (path.is_file() or path.is_symlink())
