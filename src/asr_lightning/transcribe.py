# python predict.py ckpt_path=<run dir>/hf_model inputs=[clip.wav,some_dir/]
"""Greedy transcription of audio files with a Lightning checkpoint or an exported `hf_model` directory."""

from __future__ import annotations

import csv
import glob
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_lightning.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from asr_lightning.collate import CTCCollator
from asr_lightning.hub import from_pretrained
from asr_lightning.sampling import DurationBatchSampler
from asr_lightning.text import greedy_decode, normalize_text

log = logging.getLogger(__name__)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[Wav2Vec2ForCTC, Wav2Vec2Processor]:
    """Model and processor from a `.ckpt` file, a `save_pretrained` directory or a Hub id, in eval mode."""
    path = str(path)
    if path.endswith(".ckpt"):
        from asr_lightning.module import ASRModule

        module = ASRModule.from_checkpoint(path, map_location=device)
        model, processor = module.model, module.processor
    else:
        model = from_pretrained(Wav2Vec2ForCTC, path, what="model")
        processor = from_pretrained(Wav2Vec2Processor, path, what="processor")
    return model.to(device).eval(), processor


MANIFEST_NAMES = ("metadata.csv", "metadata.jsonl")
# manifest columns, in order of preference: audiofolder (`file_name`), NeMo (`audio_filepath`), generic
PATH_COLUMNS = ("file_name", "audio_filepath", "path", "audio")
TEXT_COLUMNS = ("transcription", "text", "sentence", "reference")


@dataclass(frozen=True)
class Utterance:
    """One input: an audio file (or decoded audio), its id, and its reference and metadata when known."""

    path: Path | None
    id: str
    reference: str | None = None
    audio: np.ndarray | None = field(default=None, repr=False)  # (samples,) at the model's rate, when decoded
    metadata: dict[str, Any] = field(default_factory=dict)
    normalized: bool = False  # `audio` is already the feature extractor's output (a data module's split)


def expand_inputs(inputs: Iterable[str | Path]) -> list[Utterance]:
    """Files as given, globs, folders (recursively, audio extensions, sorted) and manifests.

    A manifest is a `metadata.csv`/`.jsonl` (audiofolder: `file_name` relative to the manifest, a transcript
    column) or any `.jsonl`/`.csv` with a path column (NeMo: `audio_filepath`, `text`); its rows keep the
    manifest's order and bring their references (and `id`, when there is that column).
    """
    out: list[Utterance] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out += [Utterance(p, str(p)) for p in sorted(p for p in path.rglob("*") if _is_audio(p))]
        elif path.is_file() and (path.name in MANIFEST_NAMES or path.suffix in (".csv", ".jsonl", ".json")):
            out += read_manifest(path)
        elif any(c in str(item) for c in "*?[") and not path.exists():
            out += [Utterance(Path(p), p) for p in sorted(glob.glob(str(item), recursive=True)) if _is_audio(Path(p))]
        else:
            out.append(Utterance(path, str(path)))  # a missing file gets an error entry, not a silent skip
    return out


def dataset_utterances(datamodule: Any, split: str) -> list[Utterance]:
    """A split of an `ASRDataModule` (the `data=` configs), as training's test stage sees it: same split, same
    filters, same normalised references and metadata."""
    datamodule.setup()
    if split not in datamodule.splits:
        raise KeyError(f"split={split!r} is not one of {list(datamodule.splits)}")
    ds = datamodule.splits[split].with_format("numpy", columns=["input_values"], output_all_columns=True)
    meta = datamodule.metadata.get(split, {})
    return [
        Utterance(
            None, row["id"], row["text"], np.asarray(row["input_values"], dtype=np.float32), meta.get(row["id"], {})
        )
        for row in ds
    ]


def read_manifest(path: str | Path) -> list[Utterance]:
    """Rows of a CSV or JSON-lines manifest; paths relative to the manifest's folder."""
    path = Path(path)
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
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
        out.append(Utterance(audio, utt_id, reference))
    return out


@torch.inference_mode()
def transcribe(
    model: Wav2Vec2ForCTC,
    processor: Wav2Vec2Processor,
    inputs: Sequence[Utterance | str | Path],
    batch_size: int = 8,
    max_batch_seconds: float | None = None,
) -> list[dict[str, Any]]:
    """Transcribe in length-sorted batches; unreadable files get an `error` entry instead of text.

    Args:
        model: in eval mode, on its device.
        processor: its feature extractor and tokenizer.
        inputs: utterances (from `expand_inputs`) or plain paths.
        batch_size: clips per batch, when `max_batch_seconds` is None.
        max_batch_seconds: cap each batch at this much padded audio instead (long files get batches of their own).

    Returns:
        One dict per input, in input order: `id`, `path`, `text` and `duration_s` (and `reference` when the
        input has one), or `id`, `path`, `error` and `reason` (`missing_file`, `undecodable`, `empty_audio`
        or `non_finite_audio`).
    """
    utts = [u if isinstance(u, Utterance) else Utterance(Path(u), str(u)) for u in inputs]
    fe = processor.feature_extractor
    results: dict[int, dict[str, Any]] = {}
    audio: dict[int, np.ndarray] = {}
    for i, u in enumerate(utts):
        head = {"id": u.id, "path": None if u.path is None else str(u.path)}
        head |= ({} if u.reference is None else {"reference": u.reference}) | u.metadata
        if u.audio is not None:
            audio[i], results[i] = u.audio, head
            continue
        try:
            audio[i] = load_audio(u.path, fe.sampling_rate)
        except AudioError as err:
            log.warning("skipped %s", err)
            results[i] = head | {"error": str(err), "reason": err.reason}
            continue
        results[i] = head
    readable = sorted(audio)
    if max_batch_seconds is None:
        order = sorted(readable, key=lambda i: -len(audio[i]))  # length-sorted: little padding
        batches = list(_chunks(order, batch_size))
    else:  # longest first, each batch filled up to the padded budget (a clip over it gets its own batch)
        budget = max(max_batch_seconds, max((len(a) for a in audio.values()), default=0) / fe.sampling_rate)
        sampler = DurationBatchSampler([len(audio[i]) for i in readable], budget, fe.sampling_rate, shuffle=False)
        batches = [[readable[j] for j in b] for b in sampler]
    collate = CTCCollator(return_attention_mask=bool(fe.return_attention_mask), padding_value=fe.padding_value)
    device = next(model.parameters()).device
    for idx in tqdm(batches, desc="transcribe", unit="batch", disable=len(batches) <= 1):
        examples = [
            {"input_values": audio[i] if utts[i].normalized else _features(fe, audio[i]), "id": i, "text": ""}
            for i in idx
        ]
        batch = collate(examples)
        logits = model(
            batch["input_values"].to(device),
            attention_mask=batch["attention_mask"].to(device) if "attention_mask" in batch else None,
        ).logits  # (batch, frames, vocab)
        for i, text in zip(idx, greedy_decode(processor.tokenizer, logits), strict=True):
            results[i] |= {"text": text, "duration_s": round(len(audio[i]) / fe.sampling_rate, 3)}
    return [results[i] for i in range(len(utts))]


def _features(fe: Any, audio: np.ndarray) -> np.ndarray:
    return fe(audio, sampling_rate=fe.sampling_rate).input_values[0]  # normalised as the model expects


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS
