# python predict.py ckpt_path=<run dir>/hf_model inputs=[clip.wav,some_dir/]
"""Transcription of `inputs.AudioInput`s: loading the model, batching, long audio, decoding, timestamps, LM tuning."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForCTC, AutoProcessor, PreTrainedModel, ProcessorMixin

from asr_lightning.audio import AudioError, load_audio
from asr_lightning.chunking import chunked_logits
from asr_lightning.collate import CTCCollator
from asr_lightning.decode import BeamDecoder, GreedyDecoder, confidences, grid_search, word_times
from asr_lightning.encoders import check_loading, load_adapter_file
from asr_lightning.errors import ConfigError
from asr_lightning.frontend import Frontend
from asr_lightning.hub import from_pretrained
from asr_lightning.inputs import AudioInput
from asr_lightning.precision import autocast, resolve_precision
from asr_lightning.sampling import DurationBatchSampler

Decoder = GreedyDecoder | BeamDecoder

log = logging.getLogger(__name__)


def load_model(
    path: str | Path, device: str | torch.device = "cpu", adapter: str | Path | None = None
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Model and processor from a `.ckpt` file, a `save_pretrained` directory or a Hub id, in eval mode.

    Any `AutoModelForCTC` family loads; every weight must load (a checkpoint without its fine-tuned CTC head
    would transcribe noise). `adapter`: an `adapter.<lang>.safetensors` written by MMS adapter training, loaded
    into the base model `path`; the tokenizer then comes from the adapter's folder (the training export).

    Raises:
        ConfigError: a missing, cut-short or foreign checkpoint; a directory without an exported model; a local
            path that does not exist. Each names `ckpt_path` and what to give instead.
        hub.HubUnavailableError: a Hub id that is not cached while the Hub cannot be reached.
    """
    path = str(path)
    if path.endswith(".ckpt"):
        from asr_lightning.module import ASRModule

        if not Path(path).is_file():
            raise ConfigError(f"ckpt_path={path}: no such file (give a .ckpt, a run's hf_model dir or a Hub id)")
        try:
            module = ASRModule.from_checkpoint(path, map_location=device)
        except Exception as err:  # torch's messages (IndexError, zip errors, weights_only advice) mislead here
            raise ConfigError(
                f"ckpt_path={path} does not load ({type(err).__name__}): the file is cut short (an interrupted copy"
                " or save) or not a checkpoint of this project; use another checkpoint or the run's hf_model dir"
            ) from None
        model, processor = module.model, module.processor
    else:
        folder = Path(path).expanduser()
        if folder.is_dir() and not (folder / "config.json").is_file():
            run = (folder / "hf_model").is_dir() or (folder / "checkpoints").is_dir()
            fix = f"use {folder / 'hf_model'}" if run else "give a run's exported model (<run>/hf_model)"
            raise ConfigError(f"ckpt_path={path} is a directory without a model (config.json, weights): {fix}")
        try:
            model, info = from_pretrained(AutoModelForCTC, path, what="model", output_loading_info=True)
            # with an adapter the base model's head is replaced by the adapter's own output layer
            check_loading(model, path, info, head_may_be_new=adapter is not None)
            if adapter is None:
                processor = from_pretrained(AutoProcessor, path, what="processor")
        except FileNotFoundError as err:
            raise ConfigError(f"ckpt_path={err}") from None
    if adapter is not None:
        try:
            load_adapter_file(model, adapter)
        except (FileNotFoundError, ValueError) as err:
            raise ConfigError(str(err)) from None
        processor = from_pretrained(AutoProcessor, str(Path(adapter).parent), what="processor")
    return model.to(device).eval(), processor


def transcribe(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    inputs: Sequence[AudioInput | str | Path],
    batch_size: int = 8,
    max_batch_seconds: float | None = None,
    decoder: Decoder | None = None,
    chunk_s: float | None = None,
    stride_s: float | None = None,
    timestamps: bool = False,
    precision: str = "32-true",
) -> list[dict[str, Any]]:
    """Transcribe in length-sorted batches; unreadable files get an `error` entry instead of text.

    Args:
        model: in eval mode, on its device.
        processor: its feature extractor and tokenizer.
        inputs: utterances (from `expand_inputs`) or plain paths.
        batch_size: clips per batch, when `max_batch_seconds` is None; chunks per batch of a long file.
        max_batch_seconds: cap each batch at this much padded audio instead (long files get batches of their own).
        decoder: a `decode.GreedyDecoder` (the default) or `decode.BeamDecoder`.
        chunk_s, stride_s: audio longer than `chunk_s` seconds is transcribed in overlapping chunks
            (`chunking.chunked_logits`); None: every file in one piece.
        timestamps: add each word's `start` and `end` (seconds) and `confidence`.
        precision: a `precision.PRECISIONS` setting; the mixed ones run as autocast.

    Returns:
        One dict per input, in input order: `id`, `path`, `text`, `duration_s` and `confidence` (and
        `reference` and metadata when the input has them; `words` with `timestamps`), or `id`, `path`,
        `error` and `reason` (`missing_file`, `undecodable`, `truncated`, `empty_audio` or `non_finite_audio`).
    """
    utts = [u if isinstance(u, AudioInput) else AudioInput(Path(u), str(u)) for u in inputs]
    frontend = Frontend(model.config, processor.feature_extractor)
    audio, results = read_inputs(utts, frontend)
    decoder = decoder or GreedyDecoder(processor.tokenizer)
    sr, blank = frontend.sampling_rate, processor.tokenizer.pad_token_id
    frame_s = frontend.frame_seconds
    for idx, logits in logits_batches(
        model, processor, utts, audio, batch_size, max_batch_seconds, chunk_s, stride_s, precision
    ):
        decoded = decoder.decode_words(logits) if timestamps else [(t, []) for t in decoder.decode(logits)]
        for i, clip, (text, words) in zip(idx, logits, decoded, strict=True):
            conf = confidences(clip, words, blank)
            duration = round(_samples(utts[i], audio[i]) / sr, 3)
            results[i] |= {"text": text, "duration_s": duration, "confidence": conf["confidence"]}
            if timestamps:
                timed = word_times(words, frame_s)
                results[i]["words"] = [w | {"confidence": c} for w, c in zip(timed, conf["words"], strict=True)]
    return [results[i] for i in range(len(utts))]


def tune_lm(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    inputs: Sequence[AudioInput],
    decoder: BeamDecoder,
    alphas: Sequence[float],
    betas: Sequence[float],
    **batching: Any,
) -> dict[str, Any]:
    """Grid-search the language model's alpha and beta on utterances with references (a validation split).

    The model runs once; each setting only re-decodes. The decoder is left at the best setting.

    Args:
        model, processor: as for `transcribe`.
        inputs: the tuning utterances; those without a reference or readable audio are left out.
        decoder: a beam decoder with a language model.
        alphas, betas: the grid.
        batching: `transcribe`'s batch_size, max_batch_seconds, chunk_s, stride_s and precision.

    Returns:
        `decode.grid_search`'s `results` and `best`, and `utterances`: how many were scored.
    """
    utts = [u for u in inputs if u.reference is not None]
    if not utts:
        raise ValueError("tuning the language model needs references: a manifest with transcripts, or data=...")
    audio, _ = read_inputs(utts, Frontend(model.config, processor.feature_extractor))
    logits, refs = [], []
    for idx, batch in logits_batches(model, processor, utts, audio, **batching):
        logits += batch
        refs += [utts[i].reference for i in idx]
    return grid_search(decoder, logits, refs, alphas, betas) | {"utterances": len(refs)}


def read_inputs(utts: Sequence[AudioInput], frontend: Frontend) -> tuple[dict[int, np.ndarray], dict[int, dict]]:
    """Each usable input's audio, and every input's result head (id, path, reference, metadata; the error and
    reason of an unusable one), by position.

    Unusable: unreadable audio (`audio.AUDIO_ERROR_REASONS`), or `too_short`: audio shorter than the model's
    receptive field, which gives no logit frame (one such clip would otherwise stop the whole run).
    """
    results: dict[int, dict[str, Any]] = {}
    audio: dict[int, np.ndarray] = {}
    for i, u in enumerate(utts):
        results[i] = {"id": u.id, "path": None if u.path is None else str(u.path)}
        results[i] |= ({} if u.reference is None else {"reference": u.reference}) | u.metadata
        if u.audio is not None:
            audio[i] = u.audio
        elif u.path is None:  # a data split's clip whose audio failed to decode (data.validate_audio=false)
            results[i] |= {"error": f"{u.id}: its audio failed to decode", "reason": "undecodable"}
            continue
        else:
            try:
                audio[i] = load_audio(u.path, frontend.sampling_rate)
            except AudioError as err:
                log.warning("skipped %s", err)
                results[i] |= {"error": str(err), "reason": err.reason}
                continue
        samples = _samples(u, audio[i])
        if frontend.output_frames(samples) < 1:
            err = f"{u.path or u.id}: {samples} samples, shorter than the model's receptive field (no frame)"
            log.warning("skipped %s", err)
            results[i] |= {"error": err, "reason": "too_short"}
            del audio[i]
    return audio, results


@torch.inference_mode()
def logits_batches(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    utts: Sequence[AudioInput],
    audio: dict[int, np.ndarray],
    batch_size: int = 8,
    max_batch_seconds: float | None = None,
    chunk_s: float | None = None,
    stride_s: float | None = None,
    precision: str = "32-true",
) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
    """The CTC logits of the readable inputs, a batch at a time, with a progress bar.

    Yields:
        The batch's input positions, and each one's (frames, vocab) float32 logits on the CPU, its real
        frames only (batch padding cut off), so that its transcript does not depend on its batch.
    """
    precision = resolve_precision(precision)  # names the accepted settings when it is not one
    fe = processor.feature_extractor
    frontend = Frontend(model.config, fe)
    sr = fe.sampling_rate
    samples = {i: _samples(utts[i], a) for i, a in audio.items()}
    # chunking cuts waveforms; a data split's filterbank features (w2v-BERT) go whole
    cuttable = {i for i in audio if not (utts[i].normalized and frontend.filterbank)}
    long = {i for i in cuttable if chunk_s is not None and samples[i] > chunk_s * sr}
    short = [i for i in sorted(audio) if i not in long]
    if max_batch_seconds is None:
        order = sorted(short, key=lambda i: -samples[i])  # length-sorted: little padding
        batches = list(_chunks(order, batch_size))
    else:  # longest first, each batch filled up to the padded budget (a clip over it gets its own batch)
        budget = max(max_batch_seconds, max((samples[i] for i in short), default=0) / sr)
        sampler = DurationBatchSampler([samples[i] for i in short], budget, sr, shuffle=False)
        batches = [[short[j] for j in b] for b in sampler]
    batches += [[i] for i in sorted(long)]  # a long file is cut into chunks, batched on their own
    collate = CTCCollator(frontend.uses_attention_mask, padding_value=fe.padding_value, input_name=frontend.input_name)
    device = next(model.parameters()).device
    seconds = sum(samples.values()) / sr
    with (
        tqdm(total=round(seconds), desc="transcribe", unit="audio s", disable=len(batches) <= 1) as bar,
        autocast(precision, device),
    ):
        for idx in batches:
            if idx[0] in long:
                clip = audio[idx[0]]
                yield idx, [chunked_logits(model, fe, clip, chunk_s, stride_s, batch_size).float()]
            else:
                values = {i: audio[i] if utts[i].normalized else frontend.features(audio[i]) for i in idx}
                name = frontend.input_name
                examples = [{name: values[i], "input_length": samples[i], "id": i, "text": ""} for i in idx]
                batch = collate(examples)
                logits = model(
                    **{name: batch[name].to(device)},
                    attention_mask=batch["attention_mask"].to(device) if "attention_mask" in batch else None,
                ).logits  # (batch, frames, vocab)
                frames = [frontend.output_frames(n) for n in batch["num_samples"]]
                yield idx, [row[:n].float().cpu() for row, n in zip(logits, frames, strict=True)]
            bar.update(round(sum(samples[i] for i in idx) / sr))


def _samples(utt: AudioInput, audio: np.ndarray) -> int:
    """The clip's audio samples (a data split's filterbank features carry theirs: `AudioInput.num_samples`)."""
    return utt.num_samples if utt.num_samples is not None else len(audio)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
