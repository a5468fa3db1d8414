# pytest tests/test_chunking.py
"""Chunked inference of long audio: the unchunked result for short audio, frame-exact stitching, word timestamps."""

from __future__ import annotations

import csv
from pathlib import Path

import jiwer
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from asr_lightning.audio import load_audio
from asr_lightning.chunking import chunked_logits, word_timestamps
from asr_lightning.frontend import Frontend
from asr_lightning.inputs import AudioInput
from asr_lightning.text import build_vocab, load_feature_extractor, make_tokenizer, normalize_text
from asr_lightning.transcribe import transcribe

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "data" / "demo"
SR = 16000
HOP = 320  # samples per logit frame of the tiny model (wav2vec2's feature-encoder geometry)
FRAME_S = HOP / SR
TINY = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / "wav2vec2_tiny.yaml").architecture)


def tiny_model(vocab_size: int = 32, **overrides) -> Wav2Vec2ForCTC:
    """The demo's random-init architecture (layer-norm encoder unless overridden), in eval mode."""
    torch.manual_seed(0)
    return Wav2Vec2ForCTC(Wav2Vec2Config(**{**TINY, "vocab_size": vocab_size, **overrides})).eval()


GROUP_NORM = {"feat_extract_norm": "group", "do_stable_layer_norm": False}


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 0.1).astype(np.float32)


@torch.inference_mode()
def unchunked(model: Wav2Vec2ForCTC, fe: Wav2Vec2FeatureExtractor, audio: np.ndarray) -> torch.Tensor:
    return model(**fe(audio, sampling_rate=SR, return_tensors="pt")).logits[0]  # (frames, vocab)


@pytest.mark.parametrize(("arch", "mask"), [({}, True), (GROUP_NORM, False)], ids=["layer_norm+mask", "group_norm"])
@pytest.mark.parametrize("seconds", [3.3, 5.0], ids=["shorter", "exactly_one_chunk"])
def test_short_audio_gives_exactly_the_unchunked_logits(arch: dict, mask: bool, seconds: float) -> None:
    model, fe = tiny_model(**arch), load_feature_extractor(None, return_attention_mask=mask)
    audio = noise(seconds)
    assert torch.equal(chunked_logits(model, fe, audio, chunk_s=5.0), unchunked(model, fe, audio))


@pytest.mark.parametrize(
    ("samples", "chunk_s", "stride_s"),
    [
        (37 * SR + 123, 10.0, None),
        (37 * SR + 123, 7.77, 0.5),
        (20 * SR + 1, 4.0, 1.0),  # ends one sample past a chunk
        (12 * SR, 4.0, 1.0),  # the last chunk falls on the regular grid, ending exactly at the end of the file
        (30 * SR + 399, 2.0, 0.02),  # the narrowest stride: one frame
    ],
)
def test_chunked_logits_have_the_unchunked_frame_count(samples: int, chunk_s: float, stride_s: float | None) -> None:
    model, fe = tiny_model(), load_feature_extractor(None, return_attention_mask=True)
    audio = noise(samples / SR)
    logits = chunked_logits(model, fe, audio, chunk_s=chunk_s, stride_s=stride_s)
    assert logits.shape == unchunked(model, fe, audio).shape
    assert len(logits) == Frontend(model.config, fe).output_frames(samples)


def local_model() -> tuple[Wav2Vec2ForCTC, Wav2Vec2FeatureExtractor]:
    """A model whose frames see only nearby audio, with an extractor that leaves the audio as it is.

    No transformer layers: a frame sees the 400-sample CNN window and the positional convolution's
    `num_conv_pos_embeddings // 2` frames either side (4 here), nothing further. Without per-input
    normalisation a chunk's input is the file's, so chunked logits must equal the unchunked ones to float
    precision wherever the strides cover that context: any frame lost, doubled or shifted shows.
    """
    model = tiny_model(num_hidden_layers=0, num_conv_pos_embeddings=8, hidden_dropout=0.0, final_dropout=0.0)
    fe = load_feature_extractor(None, return_attention_mask=True)
    fe.do_normalize = False
    return model, fe


@pytest.mark.parametrize(
    ("chunk_s", "stride_s", "batch_size"), [(10.0, None, 4), (5.0, 0.4, 4), (7.77, 0.5, 1), (3.0, 0.2, 3)]
)
def test_stitching_is_frame_exact_when_strides_cover_the_context(
    chunk_s: float, stride_s: float | None, batch_size: int
) -> None:
    model, fe = local_model()
    audio = noise(41.3)
    logits = chunked_logits(model, fe, audio, chunk_s=chunk_s, stride_s=stride_s, batch_size=batch_size)
    torch.testing.assert_close(logits, unchunked(model, fe, audio), rtol=0, atol=1e-4)


def test_strides_narrower_than_the_context_change_the_logits() -> None:
    """The check above can fail: with 2 frames of stride, frames by a boundary lose some of their 4 of context."""
    model, fe = local_model()
    audio = noise(41.3)
    logits = chunked_logits(model, fe, audio, chunk_s=5.0, stride_s=0.04)
    assert logits.shape == unchunked(model, fe, audio).shape
    assert not torch.allclose(logits, unchunked(model, fe, audio), rtol=0, atol=1e-2)


def test_strides_that_leave_nothing_to_keep_are_refused() -> None:
    model, fe = tiny_model(), load_feature_extractor(None)
    with pytest.raises(ValueError, match="no frame to keep"):
        chunked_logits(model, fe, noise(10.0), chunk_s=2.0, stride_s=1.0)


def test_word_timestamps_come_from_the_ctc_frames() -> None:
    tok = make_tokenizer(build_vocab(["AB C"]))
    v = tok.get_vocab()
    blank, a, b, c, space, unk = v["<pad>"], v["A"], v["B"], v["C"], v["|"], v["<unk>"]
    # frames: 0-1 blank, 2-3 A, 4 B, 5 blank, 6 |, 7 <unk> (read as blank), 8-9 C, 10 blank
    ids = torch.tensor([blank, blank, a, a, b, blank, space, unk, c, c, blank])
    assert word_timestamps(tok, ids, 0.02) == [
        {"word": "AB", "start": 0.04, "end": 0.1},
        {"word": "C", "start": 0.16, "end": 0.2},
    ]
    logits = torch.nn.functional.one_hot(ids, len(tok)).float()  # (frames, vocab)
    assert word_timestamps(tok, logits, 0.02) == word_timestamps(tok, ids, 0.02)


# --- a long file made of demo clips -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_file() -> dict:
    """~70 s of demo clips, 0.3-0.5 s apart: "pieces" of silence, clip, silence, each a whole number of frames.

    Whole frames, so that each piece starts on the file's frame grid and has the same frames alone as in the
    file: a barely trained model's transcript changes when the audio moves by part of a frame (by CER 0.75
    for the model below, moved by half a frame), which would be no fault of the chunking.
    """
    rows = list(csv.DictReader((DEMO_DIR / "metadata.csv").open()))
    rng = np.random.default_rng(0)
    pieces, spans, texts, t = [], [], [], 0
    for row in rows:
        clip = load_audio(DEMO_DIR / row["file_name"], SR)
        lead = round(rng.uniform(0.15, 0.25) * SR / HOP) * HOP
        tail = -(-(len(clip) + round(rng.uniform(0.15, 0.25) * SR)) // HOP) * HOP - len(clip)
        pieces.append(np.concatenate([np.zeros(lead, np.float32), clip, np.zeros(tail, np.float32)]))
        spans.append(((t + lead) / SR, (t + lead + len(clip)) / SR))
        texts.append(normalize_text(row["transcription"]))
        t += len(pieces[-1])
        if t >= 70 * SR:
            break
    return {"pieces": pieces, "audio": np.concatenate(pieces), "spans": spans, "texts": texts}


@pytest.fixture(scope="module")
def fitted_local_model(long_file: dict) -> tuple[Wav2Vec2ForCTC, Wav2Vec2FeatureExtractor, Wav2Vec2CTCTokenizer]:
    """`local_model` with its CTC head fitted (seconds) to the file's pieces, so that it spells something.

    The demo models cannot serve here: besides emitting only blanks after the test suite's few training
    steps, a demo model attends to its whole input, and even a fully trained one (test CER 0.29) transcribes
    a clip differently once 0.1 s of silence is added around it (CER 0.23 between the two), so its one-by-one
    and long-file transcripts differ whether the file is chunked or not. A model with a short, fixed context
    transcribes a piece the same alone as in the file, so what differs is the chunking's doing.
    """
    tok = make_tokenizer(build_vocab(long_file["texts"]))
    model, fe = local_model()
    model.lm_head = torch.nn.Linear(model.config.hidden_size, len(tok))
    with torch.inference_mode():
        hidden = model.wav2vec2(**fe(long_file["audio"], sampling_rate=SR, return_tensors="pt")).last_hidden_state[0]
    # Fitted on the file's frames, piece by piece (pieces are whole frames long): frames at the edge of an input
    # see zero padding, a cue a head fitted on the pieces alone would learn to end words on.
    bounds = np.cumsum([0] + [len(p) // HOP for p in long_file["pieces"]])
    feats = [hidden[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)  # (pieces, frames, hidden)
    # The silence around each clip spells a word break, as a pause does in real speech: the CTC targets
    # start and end with one, and frames that see only silence are taught it outright (a linear head cannot
    # spike once in a stretch of identical frames, so CTC alone leaves it to chance whether a gap gets one).
    d = tok.word_delimiter_token_id
    labels = [torch.tensor([d, *tok(t).input_ids, d]) for t in long_file["texts"]]
    targets, target_lengths = torch.cat(labels), torch.tensor([len(y) for y in labels])
    input_lengths = torch.tensor([len(f) for f in feats])
    silent = hidden[silent_frames(long_file["audio"], len(hidden), context=4)]  # (silent frames, hidden)
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.lm_head.parameters(), lr=1e-2)
    for _ in range(600):
        log_probs = model.lm_head(x).log_softmax(-1).transpose(0, 1)  # (frames, pieces, vocab)
        loss = torch.nn.functional.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=tok.pad_token_id)
        loss = loss + torch.nn.functional.cross_entropy(model.lm_head(silent), torch.full((len(silent),), d))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), fe, tok


def silent_frames(audio: np.ndarray, frames: int, context: int) -> np.ndarray:
    """Which frames see only digital silence, counting `context` frames either side of their CNN window."""
    nonzero = np.concatenate([[0], np.cumsum(audio != 0)])
    f = np.arange(frames)
    start, end = np.clip((f - context) * HOP, 0, len(audio)), np.clip((f + context) * HOP + 400, 0, len(audio))
    return nonzero[end] == nonzero[start]


def test_long_file_chunked_matches_its_pieces_one_by_one(long_file: dict, fitted_local_model: tuple) -> None:
    model, fe, tok = fitted_local_model
    processor = Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok)
    audio = long_file["audio"]
    assert 60 <= len(audio) / SR <= 90
    # 12 s chunks with 2 s strides keep 10, 8, 8, ... s: boundaries at 10, 18, 26, ... s, most of them mid-clip
    boundaries = np.arange(10.0, len(audio) / SR, 8.0)
    assert sum(any(s < b < e for s, e in long_file["spans"]) for b in boundaries) >= 4

    # what predict.py does: a file longer than chunk_s is chunked, the pieces (shorter) go in one piece each
    (chunked,) = transcribe(model, processor, [AudioInput(None, "file", audio=audio)], chunk_s=12.0)
    pieces = [AudioInput(None, str(k), audio=piece) for k, piece in enumerate(long_file["pieces"])]
    one_by_one = [r["text"] for r in transcribe(model, processor, pieces, batch_size=1, chunk_s=12.0)]
    assert all(one_by_one) and sum(map(len, one_by_one)) > 400  # words to lose or double at every boundary
    assert chunked["duration_s"] == round(len(audio) / SR, 3)
    assert jiwer.cer(" ".join(one_by_one), chunked["text"]) <= 0.05


def test_word_timestamps_of_a_long_file(long_file: dict, fitted_local_model: tuple) -> None:
    model, fe, tok = fitted_local_model
    audio, spans = long_file["audio"], long_file["spans"]
    words = word_timestamps(tok, chunked_logits(model, fe, audio, chunk_s=12.0), FRAME_S)

    assert all(0 <= w["start"] < w["end"] <= len(audio) / SR for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:], strict=False))
    # Each word lies inside one clip, give or take 0.1 s: the model's reach (4 frames of context, and the
    # 25 ms CNN window). That is under half the shortest gap (0.3 s), so no word sits in or across a gap.
    clip_of = [
        next((i for i, (s, e) in enumerate(spans) if s - 0.1 <= w["start"] and w["end"] <= e + 0.1), -1) for w in words
    ]
    assert clip_of == sorted(clip_of) and set(clip_of) == set(range(len(spans)))  # every clip has words, in order
    # The words and times of each piece transcribed alone, shifted by where the piece starts in the file
    starts = np.cumsum([0] + [len(p) for p in long_file["pieces"]]) / SR
    expected = [
        (w["word"], w["start"] + t, w["end"] + t)
        for piece, t in zip(long_file["pieces"], starts, strict=False)
        for w in word_timestamps(tok, unchunked(model, fe, piece), FRAME_S)
    ]
    assert [w["word"] for w in words] == [word for word, _, _ in expected]
    np.testing.assert_allclose([(w["start"], w["end"]) for w in words], [e[1:] for e in expected], atol=0.002)

    # predict.py timestamps=true: the same words and times, each with its confidence
    processor = Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok)
    (result,) = transcribe(model, processor, [AudioInput(None, "file", audio=audio)], chunk_s=12.0, timestamps=True)
    assert [{k: w[k] for k in ("word", "start", "end")} for w in result["words"]] == words
    assert all(0 < w["confidence"] <= 1 for w in result["words"]) and 0 < result["confidence"] <= 1
    assert result["text"] == " ".join(w["word"] for w in words)
