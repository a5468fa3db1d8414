# pytest tests/test_text.py
"""Text normalisation, character vocabularies, the CTC tokenizer and the processor."""

from __future__ import annotations

import pytest
from transformers import Wav2Vec2FeatureExtractor

from asr_lightning.text import (
    WORD_DELIMITER,
    build_processor,
    build_vocab,
    load_feature_extractor,
    make_tokenizer,
    normalize_text,
    oov_stats,
    vocab_characters,
)

# ---------------------------------------------------------------- normalize_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello world", "HELLO WORLD"),
        ("Hello, world?!", "HELLO WORLD"),
        ("well-known. fact", "WELL KNOWN FACT"),
        ("don't stop", "DON'T STOP"),  # the apostrophe is speakable and kept
        ("  lots   of\tspace\n here ", "LOTS OF SPACE HERE"),
        ("“quoted” (text)", "QUOTED TEXT"),
        ("", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_text_only_punctuation_is_empty() -> None:
    assert normalize_text(",?.!- ...") == ""


def test_normalize_text_without_chars_to_ignore_keeps_punctuation() -> None:
    assert normalize_text("hi,  there?", chars_to_ignore=None) == "HI, THERE?"


# ---------------------------------------------------------------- build_vocab


def test_build_vocab_layout() -> None:
    vocab = build_vocab(["HELLO WORLD", "DON'T"])
    assert vocab["<pad>"] == 0
    assert WORD_DELIMITER in vocab
    assert " " not in vocab
    assert {"<s>", "</s>", "<unk>"} <= set(vocab)
    # ids are contiguous 0..N-1 (the model's vocab_size is len(vocab))
    assert sorted(vocab.values()) == list(range(len(vocab)))
    chars = [tok for tok in vocab if len(tok) == 1 and tok != WORD_DELIMITER]
    assert chars == sorted(chars) == sorted(set("HELLOWORLDDON'T"))


def test_build_vocab_is_deterministic() -> None:
    a = build_vocab(["ZEBRA", "APPLE PIE"])
    b = build_vocab(["APPLE PIE", "ZEBRA"])
    assert a == b
    assert list(a.items()) == list(b.items())


def test_build_vocab_with_delimiter_in_text_keeps_ids_contiguous() -> None:
    vocab = build_vocab(["A|B"])
    assert sorted(vocab.values()) == list(range(len(vocab)))


# ---------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def vocab() -> dict[str, int]:
    return build_vocab(["HELLO WORLD", "THERE"])


def test_tokenizer_round_trip(vocab: dict[str, int]) -> None:
    tokenizer = make_tokenizer(vocab)
    ids = tokenizer("HELLO WORLD").input_ids
    assert ids == [vocab[c] if c != " " else vocab[WORD_DELIMITER] for c in "HELLO WORLD"]
    assert tokenizer.decode(ids, group_tokens=False) == "HELLO WORLD"


def test_tokenizer_unknown_character_maps_to_unk(vocab: dict[str, int]) -> None:
    tokenizer = make_tokenizer(vocab)
    assert tokenizer("HÉ").input_ids == [vocab["H"], vocab["<unk>"]]


def test_tokenizer_ctc_collapse(vocab: dict[str, int]) -> None:
    tokenizer = make_tokenizer(vocab)
    pad = vocab["<pad>"]
    h, e, l, o = (vocab[c] for c in "HELO")  # noqa: E741
    frames = [h, h, pad, e, l, pad, l, o]
    assert tokenizer.batch_decode([frames]) == ["HELLO"]
    # without a blank between them, repeats collapse to one letter
    assert tokenizer.batch_decode([[h, e, l, l, l, o]]) == ["HELO"]


def test_tokenizer_ctc_collapse_word_delimiter(vocab: dict[str, int]) -> None:
    tokenizer = make_tokenizer(vocab)
    pad, sep = vocab["<pad>"], vocab[WORD_DELIMITER]
    frames = [pad, vocab["H"], vocab["E"], sep, sep, pad, *(vocab[c] for c in "THERE"), pad]
    assert tokenizer.batch_decode([frames]) == ["HE THERE"]


# ---------------------------------------------------------------- vocab_characters / oov_stats


def test_vocab_characters_reads_delimiter_as_space(vocab: dict[str, int]) -> None:
    chars = vocab_characters(vocab)
    assert " " in chars
    assert WORD_DELIMITER not in chars
    assert not chars & {"<pad>", "<s>", "</s>", "<unk>"}
    assert chars == set("HELOWRDT ")


def test_vocab_characters_old_style_specials() -> None:
    assert vocab_characters({"[PAD]": 0, "[UNK]": 1, "|": 2, "A": 3}) == {" ", "A"}


def test_oov_stats_counts_missing_characters() -> None:
    vocab = build_vocab(["CAFE AU LAIT"])
    rate, missing = oov_stats(["CAFÉ AU LAIT", "CAFÉÉ"], vocab)
    total = len("CAFÉ AU LAIT") + len("CAFÉÉ")
    assert missing == {"É": 3}
    assert rate == pytest.approx(3 / total)


def test_oov_stats_all_known_and_empty() -> None:
    vocab = build_vocab(["AB"])
    assert oov_stats(["AB BA"], vocab) == (0.0, {})
    assert oov_stats([], vocab) == (0.0, {})


# ---------------------------------------------------------------- processor / feature extractor


def test_build_processor_from_primitives(vocab: dict[str, int]) -> None:
    fe_dict = Wav2Vec2FeatureExtractor(return_attention_mask=True).to_dict()
    processor = build_processor(vocab, fe_dict)
    assert len(processor.tokenizer) == len(vocab)
    assert processor.tokenizer.pad_token_id == 0
    assert processor.tokenizer.get_vocab() == vocab
    assert processor.feature_extractor.sampling_rate == 16000
    assert processor.feature_extractor.return_attention_mask is True


def test_load_feature_extractor_default() -> None:
    fe = load_feature_extractor(None, return_attention_mask=True)
    assert fe.return_attention_mask is True
    assert fe.sampling_rate == 16000
    assert fe.do_normalize is True
    assert load_feature_extractor(None, sampling_rate=8000).sampling_rate == 8000
    assert load_feature_extractor(None).return_attention_mask is False


def test_normalize_text_spells_one_word_one_way() -> None:
    # NFKC: full-width letters and composed accents; a typographic apostrophe inside a word is the apostrophe
    assert normalize_text("Don’t ｓｔｏｐ, “café”!") == "DON'T STOP CAFÉ"
    assert normalize_text("cafe\u0301") == normalize_text("café")
    assert normalize_text("‘quoted’ rock ’n’ roll") == "QUOTED ROCK N ROLL"  # quotes, not apostrophes: deleted
