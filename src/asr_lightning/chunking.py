# pytest tests/test_chunking.py
"""Long audio: CTC logits from overlapping chunks, stitched at frame precision, and word timestamps.

The design is the Hugging Face ASR pipeline's (`chunk_length_s`, `stride_length_s`): each chunk carries
context on both sides whose logits are dropped, and the kept logits are concatenated. Unlike the pipeline,
chunk starts and strides are whole logit frames (multiples of `inputs_to_logits_ratio` samples), so a kept
frame of a chunk is the frame of the whole file with the same receptive field: no frame is lost or
doubled at a boundary, and the stitched logits have exactly the unchunked frame count.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import FeatureExtractionMixin, PreTrainedModel, Wav2Vec2CTCTokenizer

from asr_lightning.decode import GreedyDecoder, word_times
from asr_lightning.frontend import Frontend

# (start sample, end sample, first kept frame, end kept frame) of a chunk; frames count from the file's start
Span = tuple[int, int, int, int]


@torch.inference_mode()
def chunked_logits(
    model: PreTrainedModel,
    feature_extractor: FeatureExtractionMixin,
    audio: np.ndarray,
    chunk_s: float = 20.0,
    stride_s: float | None = None,
    batch_size: int = 4,
) -> torch.Tensor:
    """CTC logits of a whole recording, computed in overlapping chunks.

    Audio no longer than a chunk goes through the model in one piece, exactly as unchunked inference does.
    Longer audio is cut into chunks of `chunk_s` that overlap by `2 * stride_s`; each chunk is normalised on
    its own (as the feature extractor normalises any input) and the logits of its `stride_s` context on
    either side are dropped, except at the start and end of the file.

    Args:
        model: a CTC model (`AutoModelForCTC`: waveform or filterbank input), in eval mode.
        feature_extractor: the model's feature extractor, at the audio's sampling rate.
        audio: (samples,) mono audio at `feature_extractor.sampling_rate`.
        chunk_s: chunk length in seconds, rounded to whole logit frames.
        stride_s: context dropped on each side of a chunk, in seconds, rounded to whole frames and at least
            the encoder's receptive-field overhang (one frame for wav2vec2); default `chunk_s / 6`.
        batch_size: chunks per forward pass.

    Returns:
        (frames, vocab) logits on the CPU, in the model's dtype, with as many frames as the unchunked model
        output for `audio`.

    Raises:
        ValueError: if the strides leave no frame of a chunk to keep.
    """
    frontend = Frontend(model.config, feature_extractor)
    sr = feature_extractor.sampling_rate
    hop = frontend.hop_samples  # samples per logit frame: 320 for wav2vec2, 640 for w2v-BERT with its adapter
    chunk_frames = round(chunk_s * sr / hop)
    # A chunk of n * hop samples yields fewer than n frames (wav2vec2's 400-sample receptive field is wider
    # than its hop), so the right context must cover at least that overhang or a frame would go missing.
    overhang = chunk_frames - frontend.output_frames(chunk_frames * hop)
    stride_frames = max(round((chunk_s / 6 if stride_s is None else stride_s) * sr / hop), overhang, 1)
    if chunk_frames - 2 * stride_frames < 1:
        raise ValueError(f"chunk_s={chunk_s} leaves no frame to keep between strides of {stride_frames} frames")
    total = frontend.output_frames(len(audio))
    spans = _chunk_spans(len(audio), total, chunk_frames, stride_frames, hop)

    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    kept: list[torch.Tensor] = []
    for batch in _equal_length_batches(spans, batch_size):
        # each chunk normalised on its own, as the feature extractor normalises any input; equal lengths: no padding
        values = torch.stack([torch.from_numpy(frontend.features(audio[s:e])) for s, e, _, _ in batch])
        mask = torch.ones(values.shape[:2], dtype=torch.long, device=device) if frontend.uses_attention_mask else None
        logits = model(
            **{frontend.input_name: values.to(device, dtype)}, attention_mask=mask
        ).logits  # (chunks, chunk frames, vocab)
        for row, (start, _, keep_from, keep_to) in zip(logits, batch, strict=True):
            # chunk frame j is file frame start / hop + j: the chunk starts on a frame boundary
            kept.append(row[keep_from - start // hop : keep_to - start // hop].cpu())
    return torch.cat(kept)  # (frames, vocab)


def word_timestamps(
    tokenizer: Wav2Vec2CTCTokenizer, logits_or_ids: torch.Tensor, frame_s: float
) -> list[dict[str, str | float]]:
    """Words of the greedy CTC path with their start and end times.

    A word spans from its first character's first frame to its last character's last frame. CTC emits
    characters as short spikes, so these are the times the model commits to a word, which can trail the
    sound by a frame or two; the blanks between words are not counted in either word.

    Args:
        tokenizer: the model's CTC tokenizer.
        logits_or_ids: (frames, vocab) logits, or (frames,) token ids of a path already chosen.
        frame_s: seconds per logit frame (`frontend.Frontend.frame_seconds`).

    Returns:
        One dict per word, in order: `word`, `start` and `end` (seconds, rounded to milliseconds).
    """
    _, words = GreedyDecoder(tokenizer).decode_words(logits_or_ids[None])[0]
    return word_times(words, frame_s)


def _chunk_spans(num_samples: int, total_frames: int, chunk_frames: int, stride_frames: int, hop: int) -> list[Span]:
    """The chunks of a file, in order.

    Chunks start every `chunk - 2 * stride`; chunk k keeps from its left stride to the start of its right
    stride, so the next chunk's kept frames begin where its kept frames end. The last chunk is moved back to
    end at the file's end (its start still a whole frame): a full-length chunk with more left context, rather
    than a short one with little.
    """
    chunk, stride, step = chunk_frames * hop, stride_frames * hop, (chunk_frames - 2 * stride_frames) * hop
    if num_samples <= chunk:
        return [(0, num_samples, 0, total_frames)]
    spans, start, keep_from = [], 0, 0
    while start + chunk < num_samples:
        keep_to = (start + chunk - stride) // hop
        spans.append((start, start + chunk, keep_from, keep_to))
        start, keep_from = start + step, keep_to
    # ceil to a frame so the chunk is no longer than `chunk`; it is still no later than `start`, so its left
    # context is at least `stride`
    last = -(-(num_samples - chunk) // hop) * hop
    spans.append((last, num_samples, keep_from, total_frames))
    return spans


def _equal_length_batches(spans: list[Span], batch_size: int) -> list[list[Span]]:
    """Consecutive chunks in batches of one length: unpadded, so a model without attention masks sees each chunk
    as it would alone. Only the last chunk can differ in length, by less than a frame."""
    batches: list[list[Span]] = []
    for span in spans:
        first = batches[-1][0] if batches else None
        if first and len(batches[-1]) < batch_size and first[1] - first[0] == span[1] - span[0]:
            batches[-1].append(span)
        else:
            batches.append([span])
    return batches
