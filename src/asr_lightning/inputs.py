# python predict.py ckpt_path=<run dir>/hf_model inputs=[clip.wav,calls/,"calls/**/*.flac",metadata.csv]
"""What predict.py transcribes: files, globs, folders, manifests and dataset splits, as `AudioInput`s.

Inputs are gathered and named here, apart from batching and decoding (`transcribe.py`): a manifest's rows keep
its order, ids, references (normalised as training's) and metadata.
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asr_lightning.audio import AUDIO_EXTENSIONS
from asr_lightning.scoring import read_jsonl
from asr_lightning.text import normalize_text

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


def expand_inputs(inputs: Iterable[str | Path]) -> list[AudioInput]:
    """Files as given, globs, folders (recursively, audio extensions, sorted) and manifests.

    A manifest is a `metadata.csv`/`.jsonl` (audiofolder: `file_name` relative to the manifest, a transcript
    column) or any `.jsonl`/`.csv` with a path column (NeMo: `audio_filepath`, `text`); its rows keep the
    manifest's order and bring their references (and `id`, when there is that column).
    """
    out: list[AudioInput] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out += [AudioInput(p, str(p)) for p in sorted(p for p in path.rglob("*") if _is_audio(p))]
        elif path.is_file() and (path.name in MANIFEST_NAMES or path.suffix in (".csv", ".jsonl", ".json")):
            out += read_manifest(path)
        elif any(c in str(item) for c in "*?[") and not path.exists():
            out += [AudioInput(Path(p), p) for p in sorted(glob.glob(str(item), recursive=True)) if _is_audio(Path(p))]
        else:
            out.append(AudioInput(path, str(path)))  # a missing file gets an error entry, not a silent skip
    return out


def dataset_inputs(datamodule: Any, split: str) -> list[AudioInput]:
    """A split of an `ASRDataModule` (the `data=` configs), as training's test stage sees it: same split, same
    filters, same normalised references and metadata."""
    datamodule.setup()
    if split not in datamodule.splits:
        raise KeyError(f"split={split!r} is not one of {list(datamodule.splits)}")
    ds = datamodule.splits[split].with_format("numpy", columns=["input_values"], output_all_columns=True)
    meta = datamodule.metadata.get(split, {})
    return [
        AudioInput(
            None, row["id"], row["text"], np.asarray(row["input_values"], dtype=np.float32), meta.get(row["id"], {})
        )
        for row in ds
    ]


def read_manifest(path: str | Path) -> list[AudioInput]:
    """Rows of a CSV or JSON-lines manifest; paths relative to the manifest's folder."""
    path = Path(path)
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = read_jsonl(path)
    if not rows:
        return []
    path_col = next((c for c in PATH_COLUMNS if c in rows[0]), None)
    if path_col is None:
        raise KeyError(f"{path}: no audio path column (one of {list(PATH_COLUMNS)}); its columns: {list(rows[0])}")
    text_col = next((c for c in TEXT_COLUMNS if c in rows[0]), None)
    out = []
    for row in rows:
        audio = path.parent / str(row[path_col])
        utt_id = str(row["id"]) if row.get("id") not in (None, "") else str(row[path_col])
        # references normalised as training's (uppercase, punctuation dropped), so that WER compares like with like
        reference = None if text_col is None else normalize_text(str(row[text_col] or ""))
        out.append(AudioInput(audio, utt_id, reference))
    return out


def _is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS
