# python predict.py ckpt_path=<run dir>/hf_model inputs=[clip.wav,some_dir/]
"""Greedy transcription of audio files with a Lightning checkpoint or an exported `hf_model` directory."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_lightning.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from asr_lightning.collate import CTCCollator
from asr_lightning.hub import from_pretrained
from asr_lightning.text import greedy_decode

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


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, and folders expanded (recursively) to the audio files inside, sorted."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            files.append(item)
    return files


@torch.inference_mode()
def transcribe(
    model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, files: list[Path], batch_size: int = 8
) -> list[dict[str, Any]]:
    """Transcribe files in length-sorted batches; unreadable files get an `error` entry instead of text.

    Returns:
        One dict per file, in input order: `path` and `text` (with `duration_s`), or `path`, `error` and
        `reason` (`missing_file`, `undecodable`, `empty_audio` or `non_finite_audio`).
    """
    fe = processor.feature_extractor
    results: dict[int, dict[str, Any]] = {}
    audio: dict[int, np.ndarray] = {}
    for i, f in enumerate(files):
        try:
            audio[i] = load_audio(f, fe.sampling_rate)
        except AudioError as err:
            log.warning("skipped %s", err)
            results[i] = {"path": str(f), "error": str(err), "reason": err.reason}
    order = sorted(audio, key=lambda i: -len(audio[i]))  # length-sorted: little padding, batch-size independent
    collate = CTCCollator(return_attention_mask=bool(fe.return_attention_mask), padding_value=fe.padding_value)
    device = next(model.parameters()).device
    for idx in tqdm(
        list(_chunks(order, batch_size)), desc="transcribe", unit="batch", disable=len(order) <= batch_size
    ):
        examples = [
            {
                "input_values": fe(audio[i], sampling_rate=fe.sampling_rate).input_values[0],
                "id": i,
                "text": "",
            }
            for i in idx
        ]
        batch = collate(examples)
        logits = model(
            batch["input_values"].to(device),
            attention_mask=batch["attention_mask"].to(device) if "attention_mask" in batch else None,
        ).logits  # (batch, frames, vocab)
        for i, text in zip(idx, greedy_decode(processor.tokenizer, logits), strict=True):
            results[i] = {
                "path": str(files[i]),
                "text": text,
                "duration_s": round(len(audio[i]) / fe.sampling_rate, 3),
            }
    return [results[i] for i in range(len(files))]


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
