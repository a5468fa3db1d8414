# pytest tests/test_text.py
"""Text normalisation, character vocabularies and the processor: the only place characters become ids."""

from __future__ import annotations

import json
import logging
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from transformers import (
    AutoFeatureExtractor,
    FeatureExtractionMixin,
    PretrainedConfig,
    ProcessorMixin,
    SeamlessM4TFeatureExtractor,
    Wav2Vec2BertProcessor,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Processor,
)

from asr_lightning.hub import from_pretrained

log = logging.getLogger(__name__)

# Punctuation that carries no sound (and `|`, the word delimiter). The apostrophe is kept: it is in wav2vec2's
# English vocab ("DON'T").
DEFAULT_CHARS_TO_IGNORE = r"[,?.!\-;:\"“”‘’%�()\[\]{}…/\\|]"
WORD_DELIMITER = "|"
SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}
# a right single quotation mark or modifier apostrophe between two letters is an apostrophe
_APOSTROPHE = re.compile(r"(?<=\w)[’ʼ](?=\w)")


def normalize_text(text: str, chars_to_ignore: str | None = DEFAULT_CHARS_TO_IGNORE) -> str:
    """Unicode NFKC, typographic apostrophes inside words as `'`, uppercase, drop ignored characters and collapse
    whitespace.

    Args:
        text: a raw transcript.
        chars_to_ignore: a regex of characters to delete, or None to keep everything.

    Returns:
        The normalised transcript; empty if nothing speakable is left.
    """
    # NFKC: one code point sequence per character (composed accents, ASCII for full-width forms), so a corpus
    # typed two ways spells one vocabulary. Common Voice writes "don’t" as often as "don't": one word, not "DON T".
    text = _APOSTROPHE.sub("'", unicodedata.normalize("NFKC", text)).upper()
    if chars_to_ignore:
        text = re.sub(chars_to_ignore, " ", text)
    return " ".join(text.split())


def build_vocab(texts: Iterable[str]) -> dict[str, int]:
    """Build a character vocabulary from normalised transcripts, laid out like wav2vec2-base's.

    The pad token is id 0 and doubles as the CTC blank; the space becomes the word delimiter `|`.
    """
    chars = sorted({c for t in texts for c in t} - {" ", WORD_DELIMITER})
    tokens = [SPECIAL_TOKENS["pad"], SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"], SPECIAL_TOKENS["unk"]]
    tokens += [WORD_DELIMITER, *chars]
    return {tok: i for i, tok in enumerate(tokens)}


def vocab_characters(vocab: dict[str, int]) -> set[str]:
    """The characters a vocabulary can spell, with the word delimiter read as a space."""
    specials = set(SPECIAL_TOKENS.values()) | {"[PAD]", "[UNK]"}
    chars = {tok for tok in vocab if len(tok) == 1 and tok not in specials}
    if WORD_DELIMITER in chars:
        chars = (chars - {WORD_DELIMITER}) | {" "}
    return chars


def oov_stats(texts: Iterable[str], vocab: dict[str, int]) -> tuple[float, Counter[str]]:
    """Rate of characters the vocabulary cannot spell, and which ones they are (most common first)."""
    known = vocab_characters(vocab)
    total = 0
    missing: Counter[str] = Counter()
    for text in texts:
        total += len(text)
        missing.update(c for c in text if c not in known)
    return (sum(missing.values()) / total if total else 0.0), missing


def make_tokenizer(vocab: dict[str, int]) -> Wav2Vec2CTCTokenizer:
    """A CTC character tokenizer for `vocab` (written to a temporary file, which the tokenizer requires)."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        vocab_file.write_text(json.dumps(vocab, ensure_ascii=False))
        pad, unk = _pick(vocab, "pad"), _pick(vocab, "unk")
        bos = SPECIAL_TOKENS["bos"] if SPECIAL_TOKENS["bos"] in vocab else None
        eos = SPECIAL_TOKENS["eos"] if SPECIAL_TOKENS["eos"] in vocab else None
        return Wav2Vec2CTCTokenizer(
            str(vocab_file), pad_token=pad, unk_token=unk, bos_token=bos, eos_token=eos,
            word_delimiter_token=WORD_DELIMITER, do_lower_case=False,
        )  # fmt: skip


def pretrained_vocab(name_or_path: str) -> dict[str, int] | None:
    """The character vocabulary shipped with a pretrained checkpoint (Hub id or local directory), or None when
    it ships none (pretrain-only checkpoints such as `facebook/hubert-base-ls960`) or only per-language ones
    (MMS: a new head is trained per language anyway)."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir() and not (folder / "vocab.json").is_file():
        return None
    try:
        tokenizer = from_pretrained(Wav2Vec2CTCTokenizer, name_or_path, what="tokenizer")
    except (OSError, TypeError, ValueError):  # the repo has no tokenizer files
        return None
    vocab = dict(tokenizer.get_vocab())
    if getattr(tokenizer, "target_lang", None) is None and any(isinstance(v, dict) for v in tokenizer.vocab.values()):
        return None  # nested {lang: vocab}
    return vocab


def load_feature_extractor(
    name_or_path: str | None,
    config: PretrainedConfig | None = None,
    sampling_rate: int = 16000,
    return_attention_mask: bool | None = None,
) -> FeatureExtractionMixin:
    """The pretrained checkpoint's feature extractor, or the default one of `config`'s encoder family.

    Args:
        name_or_path: Hub id or directory holding `preprocessor_config.json`; None (random init), or a
            directory without one, for the default.
        config: the model's config: w2v-BERT 2.0 (`wav2vec2-bert`) takes 80-bin log-mel filterbanks
            (`SeamlessM4TFeatureExtractor`), every other family normalised waveforms; None: a waveform model.
        sampling_rate: rate of the default extractor.
        return_attention_mask: whether the default waveform extractor (and so the model) uses attention masks;
            None: as the encoder was trained, with masks for layer-norm feature encoders (large-lv60, XLS-R,
            data2vec) and without for group-norm ones (wav2vec2-base, HuBERT-base, WavLM-base).
    """
    if name_or_path is not None:
        folder = Path(name_or_path).expanduser()
        if folder.is_dir() and (folder / "preprocessor_config.json").is_file():
            return from_pretrained(AutoFeatureExtractor, name_or_path, what="feature extractor")
        if not folder.is_dir():
            try:  # a Hub id; offline and not cached is HubUnavailableError, not this
                return from_pretrained(AutoFeatureExtractor, name_or_path, what="feature extractor")
            except FileNotFoundError:  # a local path that does not exist
                raise
            except OSError:  # the repo has no preprocessor_config.json
                pass
        log.info("%s has no preprocessor_config.json: using the default feature extractor of %s",
                 name_or_path, getattr(config, "model_type", "wav2vec2"))  # fmt: skip
    if config is not None and config.model_type == "wav2vec2-bert":
        return SeamlessM4TFeatureExtractor(sampling_rate=sampling_rate)
    if return_attention_mask is None:
        return_attention_mask = config is not None and getattr(config, "feat_extract_norm", "layer") == "layer"
    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=True,
        return_attention_mask=return_attention_mask,
    )  # fmt: skip


def build_processor(vocab: dict[str, int], feature_extractor: dict) -> ProcessorMixin:
    """Processor (tokenizer + feature extractor) from primitives, as stored in checkpoints.

    The feature extractor's class is the one its dict names (`feature_extractor_type`); filterbank extractors
    pair with `Wav2Vec2BertProcessor`, waveform ones with `Wav2Vec2Processor`, as their Hub checkpoints do.
    """
    kind = feature_extractor.get("feature_extractor_type") or "Wav2Vec2FeatureExtractor"
    cls = {
        "Wav2Vec2FeatureExtractor": Wav2Vec2FeatureExtractor,
        "SeamlessM4TFeatureExtractor": SeamlessM4TFeatureExtractor,
    }
    if kind not in cls:
        raise ValueError(f"feature extractor {kind!r} is not supported (one of {sorted(cls)})")
    fe_kwargs = {k: v for k, v in feature_extractor.items() if k not in ("feature_extractor_type", "processor_class")}
    fe = cls[kind](**fe_kwargs)
    processor_cls = Wav2Vec2BertProcessor if kind == "SeamlessM4TFeatureExtractor" else Wav2Vec2Processor
    return processor_cls(feature_extractor=fe, tokenizer=make_tokenizer(vocab))


def _pick(vocab: dict[str, int], kind: str) -> str:
    # Vocabularies built by older recipes spell the specials "[PAD]"/"[UNK]".
    for candidate in (SPECIAL_TOKENS[kind], f"[{kind.upper()}]"):
        if candidate in vocab:
            return candidate
    raise ValueError(f"vocabulary has no {kind} token (expected {SPECIAL_TOKENS[kind]!r}); keys: {list(vocab)[:10]}")
