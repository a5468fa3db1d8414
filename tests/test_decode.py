# pytest tests/test_decode.py
"""Beam search against greedy decoding, hotwords, an ARPA language model written here, and alpha/beta search.

The 12-step demo model mostly predicts blanks, so behaviour is checked on logits built to spell demo
transcripts with one near-miss character each; the demo model's validation clips check the plumbing.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path

import pytest
import torch
from helpers.config import DEMO_DIR

from asr_lightning.arpa import write_arpa
from asr_lightning.audio import load_audio
from asr_lightning.decode import BeamDecoder, GreedyDecoder, confidences, grid_search
from asr_lightning.plots import plot_grid
from asr_lightning.text import build_vocab, make_tokenizer, normalize_text, vocab_characters
from asr_lightning.transcribe import load_model

# (reference, the same with one character's runner-up winning): the near-miss is an in-vocabulary word
# that the context rules out, so only the language model's n-grams can fix it.
IN_VOCAB_MISSES = [
    ("MY CARD WAS DECLINED", "MY CARD HAS DECLINED"),
    ("BUSINESS LOAN RATES", "BUSINESS LOAD RATES"),
    ("RAISE MY CASH LIMIT", "RAISE ME CASH LIMIT"),
]


@pytest.fixture(scope="module")
def transcripts() -> list[str]:
    with (DEMO_DIR / "metadata.csv").open(newline="") as f:
        return [normalize_text(row["transcription"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def vocab(transcripts: list[str]) -> dict[str, int]:
    return build_vocab(transcripts)


@pytest.fixture(scope="module")
def arpa(transcripts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_arpa(transcripts, tmp_path_factory.mktemp("lm") / "demo.arpa", order=3)


@pytest.fixture(scope="module")
def demo_validation(trained_run: Path) -> tuple[list[torch.Tensor], list[str], dict[str, int]]:
    """The demo model's logits (frames, vocab) and the references of its validation clips, and its vocab."""
    model, processor = load_model(trained_run / "hf_model")
    ids = json.loads((trained_run / "splits.json").read_text())["validation"]
    with (DEMO_DIR / "metadata.csv").open(newline="") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    fe = processor.feature_extractor
    logits = []
    with torch.inference_mode():
        for i in ids:
            audio = load_audio(DEMO_DIR / rows[i]["file_name"], fe.sampling_rate)
            inputs = fe(audio, sampling_rate=fe.sampling_rate, return_tensors="pt").input_values
            logits.append(model(inputs).logits[0])  # (frames, vocab)
    return logits, [normalize_text(rows[i]["transcription"]) for i in ids], dict(processor.tokenizer.get_vocab())


def test_width_one_beam_is_greedy_decoding(vocab: dict[str, int]) -> None:
    logits = random_logits(vocab, clips=16, frames=60)
    # (beams collapse "|<pad>|")
    greedy = [" ".join(t.split()) for t in GreedyDecoder(make_tokenizer(vocab)).decode(logits)]
    assert BeamDecoder(vocab, beam_width=1).decode(logits) == greedy
    assert BeamDecoder(vocab, beam_width=1, token_beam=1).decode(logits) == greedy
    assert any(greedy) and len(set(greedy)) == len(greedy)


def test_beam_output_is_spelled_from_the_vocab(vocab: dict[str, int]) -> None:
    texts = BeamDecoder(vocab, beam_width=16).decode(random_logits(vocab, clips=8, frames=80, seed=1))
    assert all(texts)
    for text in texts:
        assert set(text) <= vocab_characters(vocab) and text == " ".join(text.split())


@pytest.mark.parametrize("with_lm", [False, True])
def test_lengths_drop_padded_frames(vocab: dict[str, int], arpa: Path, with_lm: bool) -> None:
    clips = [spell(vocab, "OPEN A JOINT ACCOUNT"), spell(vocab, "MY NEW ADDRESS")]
    padded = torch.zeros(2, max(len(c) for c in clips) + 10, len(vocab))  # (batch, frames, vocab)
    padded[..., vocab["Z"]] = 8.0  # padding that would spell Zs if it were decoded
    for i, clip in enumerate(clips):
        padded[i, : len(clip)] = clip
    decoder = BeamDecoder(vocab, beam_width=8, lm_path=arpa if with_lm else None)
    assert decoder.decode(padded, lengths=[len(c) for c in clips]) == ["OPEN A JOINT ACCOUNT", "MY NEW ADDRESS"]
    assert decoder.decode(clips) == ["OPEN A JOINT ACCOUNT", "MY NEW ADDRESS"]
    if not with_lm:  # the lexicon has no word of Zs
        assert all("Z" in t for t in decoder.decode(padded))
    assert decoder.decode(padded, lengths=[0, 0]) == ["", ""]


def test_demo_model_validation_clips(demo_validation: tuple[list[torch.Tensor], list[str], dict[str, int]]) -> None:
    logits, _, vocab = demo_validation
    greedy = [" ".join(GreedyDecoder(make_tokenizer(vocab)).decode(lg[None])[0].split()) for lg in logits]
    assert BeamDecoder(vocab, beam_width=1).decode(logits) == greedy
    for text in BeamDecoder(vocab, beam_width=16).decode(logits):
        assert set(text) <= vocab_characters(vocab)


def test_hotwords_pull_a_near_miss_to_the_boosted_word(vocab: dict[str, int]) -> None:
    logits = [spell(vocab, "RAISE MY CASH LIMIT", near_miss="RAISE MY KASH LIMIT")]
    assert BeamDecoder(vocab, beam_width=16).decode(logits) == ["RAISE MY KASH LIMIT"]
    boosted = BeamDecoder(vocab, beam_width=16, hotwords=["cash"], hotword_weight=5.0)  # normalised like transcripts
    assert boosted.decode(logits) == ["RAISE MY CASH LIMIT"]
    # each word of a phrase is boosted
    logits = [spell(vocab, "RAISE MY CASH LIMIT", near_miss="RAISE MY KASH LIMIF")]
    assert BeamDecoder(vocab, beam_width=16, hotwords=["cash limit"], hotword_weight=5.0).decode(logits) == [
        "RAISE MY CASH LIMIT"
    ]


def test_a_word_that_only_begins_a_hotword_gives_its_bonus_back(vocab: dict[str, int]) -> None:
    # CART leads while it may become CARTOON, then loses to CARD: at a word break, and at the clip's end
    logits = [spell(vocab, t, near_miss=m) for t, m in [("MY CART WAS", "MY CARD WAS"), ("MY CART", "MY CARD")]]
    assert BeamDecoder(vocab, beam_width=16).decode(logits) == ["MY CARD WAS", "MY CARD"]
    assert BeamDecoder(vocab, beam_width=16, hotwords=["cartoon"], hotword_weight=5.0).decode(logits) == [
        "MY CARD WAS",
        "MY CARD",
    ]
    assert BeamDecoder(vocab, beam_width=16, hotwords=["cart"], hotword_weight=5.0).decode(logits) == [
        "MY CART WAS",
        "MY CART",
    ]


def test_hotwords_with_a_language_model(vocab: dict[str, int], arpa: Path) -> None:
    # HAS: a word of the LM that the context rules out; KASH: not a word of the LM, so not of the lexicon
    logits = [spell(vocab, "MY CARD HAS DECLINED", near_miss="MY CARD WAS DECLINED")]
    oov = [spell(vocab, "RAISE MY KASH LIMIT", near_miss="RAISE MY CASH LIMIT")]
    decoder = BeamDecoder(vocab, beam_width=16, lm_path=arpa, alpha=0.5)
    assert decoder.decode(logits + oov) == ["MY CARD WAS DECLINED", "RAISE MY CASH LIMIT"]
    boosted = BeamDecoder(vocab, beam_width=16, lm_path=arpa, alpha=0.5, hotwords=["has", "kash"])
    assert boosted.decode(logits + oov) == ["MY CARD HAS DECLINED", "RAISE MY KASH LIMIT"]
    boosted.set_lm_weights(0.0, 0.0)  # the bonus does not scale with alpha
    assert boosted.decode(logits) == ["MY CARD HAS DECLINED"]


def test_the_lexicon_is_the_language_model_words_the_vocab_spells(
    vocab: dict[str, int], arpa: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logits = [spell(vocab, "MY CARD WAS DECLINED")]
    assert BeamDecoder(vocab, beam_width=16, lm_path=arpa).decode(logits) == ["MY CARD WAS DECLINED"]
    words = tmp_path / "words.txt"
    words.write_text("MY\nCARD\nWAS\nmy\nÉTÉ\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="asr_lightning.decode"):
        from_file = BeamDecoder(vocab, beam_width=16, lm_path=arpa, unigrams=words)
    assert "lexicon: 3 of the language model's 5 words; 2 skipped" in caplog.text
    from_list = BeamDecoder(vocab, beam_width=16, lm_path=arpa, unigrams=["MY", "CARD", "WAS"])
    text = from_list.decode(logits)[0]
    assert from_file.decode(logits) == [text] and set(text.split()) <= {"MY", "CARD", "WAS"}


def test_greedy_decoder_words_are_the_spelled_frames(vocab: dict[str, int]) -> None:
    logits = spell(vocab, "MY CARD")  # one frame per character, each followed by a blank frame
    text, words = GreedyDecoder(make_tokenizer(vocab)).decode_words([logits])[0]
    assert text == "MY CARD"
    # M at frame 0, Y at 2, "|" at 4, C A R D at 6 8 10 12: a word ends past its last character's frame
    assert words == [("MY", 0, 3), ("CARD", 6, 13)]


def test_greedy_decoding_ignores_padding_frames_and_repeated_spaces(vocab: dict[str, int]) -> None:
    tok = make_tokenizer(vocab)
    clip = spell(vocab, "A  B")  # "A | <blank> | B": two delimiters for one word break
    padded = torch.zeros(1, len(clip) + 6, len(vocab))  # (batch, frames, vocab)
    padded[..., vocab["Z"]] = 8.0  # padding that would spell a Z
    padded[0, : len(clip)] = clip
    assert GreedyDecoder(tok).decode(clip[None]) == ["A B"]
    assert GreedyDecoder(tok).decode(padded) == ["A BZ"]
    assert GreedyDecoder(tok).decode(padded, lengths=[len(clip)]) == ["A B"]
    decoder = GreedyDecoder(tok)
    assert decoder.decode(padded, lengths=[len(clip)]) == decoder.decode([clip]) == ["A B"]


def test_confidences_average_the_emitted_characters(vocab: dict[str, int]) -> None:
    blank = vocab["<pad>"]
    probs = torch.full((6, len(vocab)), 1e-6)
    # frames: A (0.9), blank (0.99), B (0.6), blank (0.99), C (0.4, a close call), blank; the rest shared by two
    best = [("A", 0.9), ("<pad>", 0.99), ("B", 0.6), ("<pad>", 0.99), ("C", 0.4), ("<pad>", 0.99)]
    for frame, (token, p) in enumerate(best):
        probs[frame, vocab[token]] = p
        for other in [t for t in ("<pad>", "Y", "Z") if t != token][:2]:
            probs[frame, vocab[other]] += (1 - p) / 2
    logits = probs.log()
    words = [("AB", 0, 3), ("C", 4, 5)]
    got = confidences(logits, words, blank)
    assert got["confidence"] == pytest.approx((0.9 + 0.6 + 0.4) / 3, abs=1e-3)  # blank frames left out
    assert got["words"] == [pytest.approx(0.75, abs=1e-3), pytest.approx(0.4, abs=1e-3)]
    assert confidences(logits[:0], [], blank) == {"confidence": None, "words": []}
    only_blanks = confidences(logits[[1, 3]], [], blank)["confidence"]
    assert only_blanks == pytest.approx(0.99, abs=1e-3)  # nothing emitted: every frame counts


def test_beam_words_have_the_frames_of_greedy_words_on_clean_logits(vocab: dict[str, int], arpa: Path) -> None:
    clips = [spell(vocab, "OPEN A JOINT ACCOUNT"), spell(vocab, "MY NEW ADDRESS")]
    greedy = GreedyDecoder(make_tokenizer(vocab)).decode_words(clips)
    assert BeamDecoder(vocab, beam_width=8).decode_words(clips) == greedy
    assert BeamDecoder(vocab, beam_width=8, lm_path=arpa).decode_words(clips) == greedy  # the lexicon search too
    assert [t for t, _ in greedy] == ["OPEN A JOINT ACCOUNT", "MY NEW ADDRESS"]


def test_language_model_restores_out_of_vocabulary_near_misses(vocab: dict[str, int], arpa: Path) -> None:
    pairs = [
        ("RAISE MY CASH LIMIT", "RAISE MY KASH LIMIT"),
        ("MY CARD WAS DECLINED", "MY CARD WAS DECLINEB"),
        ("OPEN A JOINT ACCOUNT", "OPEN A JOINT ACCOUNF"),
    ]
    logits = [spell(vocab, text, near_miss) for text, near_miss in pairs]
    greedy = [GreedyDecoder(make_tokenizer(vocab)).decode(lg[None])[0] for lg in logits]
    assert greedy == [near_miss for _, near_miss in pairs]
    assert BeamDecoder(vocab, beam_width=16, lm_path=arpa, alpha=2.0).decode(logits) == [t for t, _ in pairs]


def test_the_language_model_scores_a_clips_last_word(vocab: dict[str, int], arpa: Path) -> None:
    # clips do not end with a word delimiter, which is where the lexicon search scores a word
    logits = [spell(vocab, "MY CARD WAS", near_miss="MY CARD HAS"), spell(vocab, "RAISE MY", near_miss="RAISE ME")]
    assert BeamDecoder(vocab, beam_width=16, lm_path=arpa, alpha=0.0).decode(logits) == ["MY CARD HAS", "RAISE ME"]
    assert BeamDecoder(vocab, beam_width=16, lm_path=arpa, alpha=2.0).decode(logits) == ["MY CARD WAS", "RAISE MY"]


def test_grid_search_picks_weights_that_use_the_context(vocab: dict[str, int], arpa: Path, tmp_path: Path) -> None:
    logits = [spell(vocab, text, near_miss) for text, near_miss in IN_VOCAB_MISSES]
    references = [text for text, _ in IN_VOCAB_MISSES]
    decoder = BeamDecoder(vocab, beam_width=16, lm_path=arpa)
    out = grid_search(decoder, logits, references, alphas=[0.0, 0.5, 2.0], betas=[0.0, 1.0])
    assert [(r["alpha"], r["beta"]) for r in out["results"]] == [(a, b) for a in (0.0, 0.5, 2.0) for b in (0.0, 1.0)]
    words = sum(len(t.split()) for t in references)
    assert [r["wer"] for r in out["results"] if r["alpha"] == 0.0] == pytest.approx([3 / words] * 2)
    best = out["best"]
    assert best["wer"] == 0.0 and best == min(out["results"], key=lambda r: (r["wer"], r["alpha"], r["beta"]))
    assert (decoder.alpha, decoder.beta) == (best["alpha"], best["beta"])
    assert decoder.decode(logits) == references
    assert plot_grid(out, tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid_search_on_demo_validation(
    demo_validation: tuple[list[torch.Tensor], list[str], dict[str, int]], arpa: Path
) -> None:
    logits, references, vocab = demo_validation
    out = grid_search(BeamDecoder(vocab, beam_width=8, lm_path=arpa), logits, references, [0.5, 1.0], [0.0, 2.0])
    assert len(out["results"]) == 4 and out["best"] in out["results"]
    assert all(0.0 <= r["wer"] and 0.0 <= r["cer"] for r in out["results"])


def test_lm_weights_and_files_are_checked(vocab: dict[str, int], arpa: Path, tmp_path: Path) -> None:
    decoder = BeamDecoder(vocab, beam_width=4)
    with pytest.raises(ValueError, match="lm_path"):
        grid_search(decoder, [spell(vocab, "MY CARD")], ["MY CARD"], [0.5], [1.0])
    with pytest.raises(ValueError, match="lm_path=None"):
        decoder.set_lm_weights(1.0, 1.0)
    with pytest.raises(ValueError, match="token_beam"):
        BeamDecoder(vocab, token_beam=0)
    with pytest.raises(FileNotFoundError, match="missing.arpa"):
        BeamDecoder(vocab, lm_path=tmp_path / "missing.arpa")
    binary = tmp_path / "lm.binary"
    binary.write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\x00\x01")  # a KenLM binary's start
    with pytest.raises(ValueError, match=r"not an ARPA file.*decoder\.unigrams="):
        BeamDecoder(vocab, lm_path=binary)
    with pytest.raises(FileNotFoundError, match=r"decoder\.unigrams=.*missing\.txt"):
        BeamDecoder(vocab, lm_path=arpa, unigrams=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="uppercase"):
        BeamDecoder(vocab, lm_path=arpa, unigrams=["my", "card"])  # nothing the vocab can spell


@pytest.mark.parametrize("module", ["flashlight.lib.text.decoder", "flashlight.lib.text.decoder.kenlm"])
def test_missing_flashlight_says_how_to_install(
    module: str, vocab: dict[str, int], arpa: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=rf"`{module}`.*pip install flashlight-text"):
        BeamDecoder(vocab, lm_path=arpa)


def spell(vocab: dict[str, int], text: str, near_miss: str | None = None) -> torch.Tensor:
    """(frames, vocab) logits spelling `text`: each character one peaked frame, then a blank frame.

    Where `near_miss` (as long as `text`) differs, its character narrowly wins the frame: greedy decoding
    reads `near_miss`, but `text` keeps a close second score.
    """
    rows = []
    for ch, alt in zip(text, near_miss or text, strict=True):
        row = torch.zeros(len(vocab))
        row[vocab["|" if ch == " " else ch]] = 8.0
        if alt != ch:
            row[vocab["|" if alt == " " else alt]] = 8.5
        blank = torch.zeros(len(vocab))
        blank[vocab["<pad>"]] = 8.0
        rows += [row, blank]
    return torch.stack(rows)


def random_logits(vocab: dict[str, int], clips: int, frames: int, seed: int = 0) -> torch.Tensor:
    """(clips, frames, vocab) random logits, blank-heavy like a CTC model's.

    Specials other than the blank are far below the rest (a trained model never targets them), except on
    a few frames where one clearly wins, which greedy decoding reads as a blank.
    """
    g = torch.Generator().manual_seed(seed)
    logits = 4 * torch.randn(clips, frames, len(vocab), generator=g)  # (clips, frames, vocab)
    logits[..., vocab["<pad>"]] += 3
    specials = [vocab[t] for t in ("<s>", "</s>", "<unk>")]
    logits[..., specials] = -30.0
    winner = torch.randint(0, 10 * len(specials), (clips, frames), generator=g)  # a special wins 10% of frames
    for k, tok in enumerate(specials):
        logits[..., tok][winner == k] = 30.0
    return logits
