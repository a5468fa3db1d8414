# pytest tests/test_decode.py
"""CTC decoders: greedy, and beam search (flashlight-text) with hotwords and a KenLM n-gram; tuning its weights.

Both decoders take a batch of logits with each clip's real frame count, and give transcripts, or transcripts
with each word's frames (`decode_words`), for word timestamps. They are the `decoder=` configs of predict.py.

The beam search is flashlight-text's (C++, with KenLM built in), imported when a `BeamDecoder` is built.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Iterable, Sequence
from itertools import groupby, product
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.text import char_error_rate, word_error_rate
from transformers import Wav2Vec2CTCTokenizer

from asr_lightning.arpa import read_unigrams
from asr_lightning.text import make_tokenizer, normalize_text

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install flashlight-text"

Logits = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]
# a word and its first and past-the-end logit frames
WordFrames = tuple[str, int, int]

# KenLM's scores are log10; alpha weighs natural logs, as the acoustic scores are (and as pyctcdecode's alpha did)
LN_10 = math.log(10)
# the log-probability of every label but the word delimiter on the frame appended for the lexicon search
NEVER = -1e4


class GreedyDecoder:
    """Greedy CTC decoding, the one path of the test stage (`ASRModule`) and predict.py: the best token of each
    frame, repeats collapsed, blanks dropped, one space per word break.

    A frame whose best token is another special (`<unk>`, `<s>`, `</s>`) is read as a blank: it separates
    repeats but spells nothing. (`skip_special_tokens=True` would drop such frames before repeats are
    collapsed, and also drop the blank, turning "L <blank> L" into one L.)

    Args:
        tokenizer: the model's CTC tokenizer.
    """

    def __init__(self, tokenizer: Wav2Vec2CTCTokenizer) -> None:
        self.tokenizer = tokenizer
        keep = {tokenizer.pad_token_id, tokenizer.word_delimiter_token_id}  # `|` is special here, but spells a space
        self._silent = torch.tensor([i for i in tokenizer.all_special_ids if i not in keep])

    def decode(self, logits: Logits, lengths: Sequence[int] | None = None) -> list[str]:
        """One transcript per clip.

        Args:
            logits: (batch, frames, vocab) scores (or (batch, frames) ids of paths already chosen), or one
                (frames, vocab) array per clip.
            lengths: each clip's real frame count; the frames of batch padding after it spell nothing, so a
                clip's text does not depend on what it was batched with.
        """
        if (
            isinstance(logits, torch.Tensor)
            and logits.ndim in (2, 3)
            and logits.is_floating_point() == (logits.ndim == 3)
        ):
            rows = self.ids(logits, lengths).tolist()  # a padded batch: one argmax
        else:
            rows = [self.ids(torch.as_tensor(clip)[None])[0].tolist() for clip in _clips(logits, lengths)]
        # "A | <blank> | B" spells two spaces; one word break is one space. Batch decoding skips word offsets.
        return [" ".join(text.split()) for text in self.tokenizer.batch_decode(rows)]

    def decode_words(self, logits: Logits, lengths: Sequence[int] | None = None) -> list[tuple[str, list[WordFrames]]]:
        """Each clip's transcript and its words' frames (first frame of the first character, past the last's)."""
        out = []
        for clip in _clips(logits, lengths):
            ids = self.ids(torch.as_tensor(clip)[None])[0]  # (frames,)
            decoded = self.tokenizer.decode(ids.tolist(), output_word_offsets=True)
            words = [(w["word"], int(w["start_offset"]), int(w["end_offset"])) for w in decoded.word_offsets]
            out.append((" ".join(decoded.text.split()), words))
        return out

    def ids(self, logits: torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
        """(batch, frames) argmax ids (or the given ids) on the CPU, silent specials and padding set to the blank."""
        ids = logits.argmax(dim=-1).cpu() if logits.is_floating_point() else logits.cpu().clone()  # (batch, frames)
        ids[torch.isin(ids, self._silent.to(ids.dtype))] = self.tokenizer.pad_token_id
        if lengths is not None:
            ids[torch.arange(ids.shape[1]) >= torch.as_tensor(lengths)[:, None]] = self.tokenizer.pad_token_id
        return ids


def word_times(words: Sequence[WordFrames], frame_s: float) -> list[dict[str, Any]]:
    """Words with their `start` and `end` in seconds (rounded to milliseconds), from `decode_words`' frames."""
    return [{"word": w, "start": round(a * frame_s, 3), "end": round(b * frame_s, 3)} for w, a, b in words]


def confidences(logits: torch.Tensor | np.ndarray, words: Sequence[WordFrames], blank_id: int) -> dict[str, Any]:
    """How sure the model is of a clip's transcript and of each word, from its frame probabilities.

    A frame's confidence is the probability of its best token. The clip's confidence is their mean over the
    frames whose best token is not the blank (the characters the greedy path emits; all frames when it emits
    none), as NeMo's default (`max_prob`, blanks excluded, mean); a word's, the same mean over its frames.

    Args:
        logits: (frames, vocab) scores of one clip, its real frames only.
        words: its words' frames, from `decode_words`.
        blank_id: the blank (pad) token id.

    Returns:
        `confidence` (the clip's, None for a clip without frames) and `words` (one per word, None without frames).
    """
    probs = torch.as_tensor(logits).detach().float().cpu().softmax(-1)  # (frames, vocab)
    best, ids = probs.max(-1)
    emits = ids != blank_id

    def mean(a: int, b: int) -> float | None:
        p, e = best[a:b], emits[a:b]
        if not len(p):
            return None
        return round(float(p[e].mean() if e.any() else p.mean()), 4)

    return {"confidence": mean(0, len(best)), "words": [mean(a, b) for _, a, b in words]}


class BeamDecoder:
    """CTC beam search over a character vocabulary (flashlight-text), optionally fused with a KenLM word n-gram.

    The word delimiter `|` spells a space. The pad token is the CTC blank; the other special tokens (`<s>`,
    `</s>`, `<unk>`) spell nothing, as in `GreedyDecoder`: their probability is added to the blank's.
    So a beam of width 1 without a language model reproduces greedy decoding (up to repeated spaces, which
    the beam search collapses).

    Without a language model the search is lexicon-free: it spells any character sequence. With one it spells
    words of a lexicon, the language model's words that the vocabulary can spell (and the hotwords), so it
    never outputs a word the language model does not know. The language model scores whole words as spelled
    by the vocabulary (uppercase), so build it from text normalised like the training transcripts
    (`arpa.write_arpa` does). A hypothesis scores its acoustic log-probability, plus `alpha` times the
    language model's log-probability (natural log, as pyctcdecode's alpha), plus `beta` per word.

    A word gains `hotword_weight` when it is a hotword (each word of a hotword phrase counts on its own). While
    it is being spelled, a hotword's prefix holds part of that bonus, so that the beam keeps it until its last
    character; a word that turns out to be another gives its part back.

    Args:
        tokenizer: the model's CTC tokenizer, or its vocabulary (token -> id).
        beam_width: beams kept after each frame.
        lm_path: a KenLM model (`.arpa` or a binary from `build_binary`), or None for no language model.
        alpha: weight of the language model's log-probability.
        beta: bonus per word (offsets the language model's preference for short outputs).
        hotwords: words or phrases to boost (normalised like transcripts).
        hotword_weight: log-score bonus per hotword in a transcript.
        unigrams: the lexicon's words (the language model's words), as a list or a file of one word per line.
            Read from an `.arpa` file when None; required for binary models.
        beam_threshold: beams scoring more than this below the best one after a frame are dropped (a larger
            value searches more, slower).
        token_beam: only a frame's this many most probable labels extend the beams (None: all), as pyctcdecode
            skipped improbable tokens. Smaller is faster, above all with hotwords and no language model (their
            scorer runs in Python, once per beam and label).

    Raises:
        ImportError: flashlight-text is not installed.
        FileNotFoundError: `lm_path` or a `unigrams` file does not exist.
        ValueError: a binary `lm_path` without `unigrams`, or none of its words can be spelled.
    """

    def __init__(
        self,
        tokenizer: Wav2Vec2CTCTokenizer | dict[str, int],
        beam_width: int = 100,
        lm_path: str | Path | None = None,
        alpha: float = 0.5,
        beta: float = 1.5,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float = 10.0,
        unigrams: Iterable[str] | str | Path | None = None,
        beam_threshold: float = 25.0,
        token_beam: int | None = 8,
    ) -> None:
        fl = _require("flashlight.lib.text.decoder")
        if lm_path is not None and not Path(lm_path).is_file():
            raise FileNotFoundError(f"decoder.lm_path={lm_path}: no such file (an ARPA or KenLM binary model)")
        if beam_width < 1 or (token_beam is not None and token_beam < 1):
            raise ValueError(f"beam_width and token_beam must be >= 1, got {beam_width} and {token_beam}")
        if isinstance(tokenizer, dict):
            tokenizer = make_tokenizer(tokenizer)
        self.beam_width = beam_width
        self.beam_threshold = float(beam_threshold)
        self.token_beam = token_beam
        self.lm_path = None if lm_path is None else str(lm_path)
        self.alpha, self.beta = float(alpha), float(beta)
        self.hotwords = [w for w in (normalize_text(h) for h in hotwords or []) if w]
        self.hotword_weight = float(hotword_weight)
        self._labels, self._keep, self._silent, self._blank = _labels(tokenizer)
        # flashlight's tokens are the positions in `_labels`
        self._blank_label, self._delimiter = self._labels.index(""), self._labels.index(" ")
        boosted, unspellable = _spellings(dict.fromkeys(w for h in self.hotwords for w in h.split()), self._labels)
        if unspellable:
            log.warning("hotwords %s: characters outside the model's vocabulary, ignored", unspellable)
        if self.lm_path is None:
            spellings = list(boosted.values())
            self._lm = _hotword_scorer(fl, spellings, self.hotword_weight, self._delimiter) if boosted else fl.ZeroLM()
        else:
            lexicon = _lexicon(_lm_words(self.lm_path, unigrams), self._labels)
            for word in boosted.keys() - lexicon.keys():
                log.info("hotword %s is not in the language model: it joins the lexicon and scores as <unk>", word)
            lexicon |= boosted
            self._words = list(lexicon)
            self._spellings = [[*spelling, self._delimiter] for spelling in lexicon.values()]  # a word ends with "|"
            self._bonus = {i: self.hotword_weight for i, word in enumerate(self._words) if word in boosted}
            kenlm = _require("flashlight.lib.text.decoder.kenlm")
            dictionary = _require("flashlight.lib.text.dictionary")
            # the LM's word ids are the lexicon's; words the LM lacks (and "<unk>", the last id) score as <unk>
            self._kenlm = kenlm.KenLM(self.lm_path, dictionary.Dictionary([*self._words, "<unk>"]))
            start = self._kenlm.start(False)
            self._unigram_scores = [self._kenlm.score(start, i)[1] for i in range(len(self._words))]
            self._trie = None if self._bonus else self._make_trie(1.0)  # with hotwords, one per alpha (`_build`)
        self._decoder = self._build()

    @property
    def has_lm(self) -> bool:
        """Whether a language model is fused into the search."""
        return self.lm_path is not None

    def decode(self, logits: Logits, lengths: Sequence[int] | None = None) -> list[str]:
        """Decode a batch of clips.

        Args:
            logits: (batch, frames, vocab) scores, or one (frames, vocab) array per clip. Raw logits or
                log-probabilities: they are log-softmaxed here.
            lengths: each clip's real frame count; padded frames after it are ignored.

        Returns:
            One uppercase transcript per clip, words separated by single spaces ("" for a clip without frames).
        """
        return [text for text, _ in self.decode_words(logits, lengths)]

    def decode_words(self, logits: Logits, lengths: Sequence[int] | None = None) -> list[tuple[str, list[WordFrames]]]:
        """As `decode`, with the frames of each word of the best beam (first frame, past the last)."""
        out = []
        for lp in self._log_probs(logits, lengths):
            words = _words(self._search(lp), self._labels)
            out.append((" ".join(w for w, _, _ in words), words))
        return out

    def set_lm_weights(self, alpha: float, beta: float) -> None:
        """Change alpha and beta without reloading the language model."""
        if not self.has_lm:
            raise ValueError("alpha and beta weight a language model, and this decoder has none (lm_path=None)")
        self.alpha, self.beta = float(alpha), float(beta)
        self._decoder = self._build()

    def _make_trie(self, scale: float) -> Any:
        """The lexicon as flashlight's trie of spellings; each node holds its best word's unigram score (lookahead)."""
        fl = _require("flashlight.lib.text.decoder")
        trie = fl.Trie(len(self._labels), self._delimiter)
        for i, (spelling, score) in enumerate(zip(self._spellings, self._unigram_scores, strict=True)):
            trie.insert(spelling, i, scale * score + self._bonus.get(i, 0.0))
        trie.smear(fl.SmearingMode.MAX)
        return trie

    def _build(self) -> Any:
        """flashlight's decoder at the current weights: cheap, the language model and lexicon are reused."""
        fl = _require("flashlight.lib.text.decoder")
        options = {
            "beam_size": self.beam_width,
            "beam_size_token": min(self.token_beam or len(self._labels), len(self._labels)),
            "beam_threshold": self.beam_threshold,
            "sil_score": 0.0,
            "log_add": True,  # merged beams (paths to one prefix) add their probabilities, as in pyctcdecode
            "criterion_type": fl.CriterionType.CTC,
        }
        if not self.has_lm:
            lexicon_free = fl.LexiconFreeDecoderOptions(lm_weight=1.0, **options)
            return fl.LexiconFreeDecoder(lexicon_free, self._lm, self._delimiter, self._blank_label, [])
        if self._bonus:
            # flashlight multiplies every LM score by one weight, and a hotword's bonus must not scale with alpha
            # (nor vanish at alpha=0): weigh the LM and the lexicon's lookahead here, and give flashlight 1
            scale = self.alpha * LN_10
            self._lm, trie, lm_weight = _weighted_lm(fl, self._kenlm, scale, self._bonus), self._make_trie(scale), 1.0
        else:
            self._lm, trie, lm_weight = self._kenlm, self._trie, self.alpha * LN_10
        lexicon = fl.LexiconDecoderOptions(lm_weight=lm_weight, word_score=self.beta, unk_score=-math.inf, **options)
        unk = len(self._words)
        return fl.LexiconDecoder(lexicon, trie, self._lm, self._delimiter, self._blank_label, unk, [], False)

    def _log_probs(self, logits: Logits, lengths: Sequence[int] | None) -> list[np.ndarray]:
        """Per clip (frames, labels) log-probabilities, specials folded into the blank, padding cut off."""
        out = []
        for clip in _clips(logits, lengths):
            lp = torch.as_tensor(clip).detach().float().cpu().log_softmax(-1)  # (frames, vocab)
            if lp.ndim != 2 or lp.shape[-1] != len(self._keep) + len(self._silent):
                raise ValueError(
                    f"expected (frames, {len(self._keep) + len(self._silent)}) logits per clip, got {tuple(lp.shape)}"
                )
            # A frame whose best token is a silent special is a blank to greedy decoding; summing their
            # probabilities keeps that reading while the search sees one blank.
            blank = torch.logsumexp(lp[:, [self._blank, *self._silent]], dim=-1)
            lp = lp[:, self._keep]  # (frames, labels)
            lp[:, self._keep.index(self._blank)] = blank
            out.append(lp.numpy())
        return out

    def _search(self, lp: np.ndarray) -> list[int]:
        """The best beam's label at each of the clip's (frames, labels) log-probabilities."""
        frames = len(lp)
        if not frames:
            return []
        if self.has_lm:
            # The lexicon search emits a word on reading the delimiter after it, and CTC targets do not end with
            # one: a last frame that reads the delimiter ends every beam's last word.
            end = np.full((1, lp.shape[1]), NEVER, dtype=np.float32)
            end[0, self._delimiter] = 0.0
            lp = np.concatenate([lp, end])
        lp = np.ascontiguousarray(lp, dtype=np.float32)
        best = self._decoder.decode(lp.ctypes.data, lp.shape[0], lp.shape[1])[0]
        return list(best.tokens[1 : frames + 1])  # tokens[0] is the start state


def grid_search(
    decoder: BeamDecoder,
    logits: Logits,
    references: Sequence[str],
    alphas: Iterable[float],
    betas: Iterable[float],
    lengths: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Tune the language model's alpha and beta by WER; run it on the validation split, never on test.

    The language model is loaded once: each setting only resets the weights. The decoder is left at the
    best setting.

    Args:
        decoder: a decoder with a language model.
        logits: the validation clips' logits, as for `BeamDecoder.decode`.
        references: their transcripts, normalised like the training targets (`text.normalize_text`).
        alphas: language model weights to try.
        betas: word bonuses to try.
        lengths: each clip's real frame count, for padded batches.

    Returns:
        `results`: one dict (`alpha`, `beta`, `wer`, `cer`) per setting, in grid order; `best`: the setting
        with the lowest WER (ties: smaller alpha, then smaller beta).
    """
    if not decoder.has_lm:
        raise ValueError("grid_search tunes a language model's weights: build the BeamDecoder with lm_path")
    references = list(references)
    results = []
    for alpha, beta in product(map(float, alphas), map(float, betas)):
        decoder.set_lm_weights(alpha, beta)
        hyps = decoder.decode(logits, lengths)
        if len(hyps) != len(references):
            raise ValueError(f"{len(references)} references for {len(hyps)} clips")
        wer = float(word_error_rate(hyps, references))
        results.append({"alpha": alpha, "beta": beta, "wer": wer, "cer": float(char_error_rate(hyps, references))})
    if not results:
        raise ValueError("empty grid: give at least one alpha and one beta")
    best = min(results, key=lambda r: (r["wer"], r["alpha"], r["beta"]))
    decoder.set_lm_weights(best["alpha"], best["beta"])
    log.info("best LM weights: alpha=%s beta=%s (val WER %.4f)", best["alpha"], best["beta"], best["wer"])
    return {"results": results, "best": best}


def _clips(logits: Logits, lengths: Sequence[int] | None) -> list[torch.Tensor | np.ndarray]:
    """(batch, frames, vocab) -> batch x (frames, vocab), each cut to its real frame count."""
    clips = list(logits)
    if lengths is None:
        return clips
    if len(lengths) != len(clips):
        raise ValueError(f"{len(lengths)} lengths for {len(clips)} clips")
    return [c[: int(n)] for c, n in zip(clips, lengths, strict=True)]


def _require(module: str) -> Any:
    """Import a module of flashlight-text, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"beam-search decoding needs `{module}`, from flashlight-text: {INSTALL_HINT}") from err


def _labels(tokenizer: Wav2Vec2CTCTokenizer) -> tuple[list[str], list[int], list[int], int]:
    """The search's labels, the vocab ids they stand for, the silent special ids, and the blank id.

    The labels are the vocab's tokens, "" for the blank and " " for the word delimiter; the other specials
    are dropped (their probability goes to the blank, see `BeamDecoder._log_probs`).
    """
    vocab = tokenizer.get_vocab()
    id_to_token = {i: tok for tok, i in vocab.items()}
    if sorted(id_to_token) != list(range(len(id_to_token))):
        raise ValueError("the tokenizer's ids are not 0..N-1; cannot line them up with the logits' columns")
    blank, delimiter = tokenizer.pad_token_id, tokenizer.word_delimiter_token_id
    silent = sorted(set(tokenizer.all_special_ids) - {blank, delimiter})
    keep = [i for i in range(len(id_to_token)) if i not in silent]
    labels = ["" if i == blank else " " if i == delimiter else id_to_token[i] for i in keep]
    return labels, keep, silent, blank


def _spellings(words: Iterable[str], labels: Sequence[str]) -> tuple[dict[str, list[int]], list[str]]:
    """Each word spelled as label positions, and the words with a character that is no label."""
    index = {label: i for i, label in enumerate(labels) if label.strip()}
    spelled: dict[str, list[int]] = {}
    unspellable = []
    for word in words:
        if all(ch in index for ch in word):
            spelled[word] = [index[ch] for ch in word]
        else:
            unspellable.append(word)
    return spelled, unspellable


def _hotword_scorer(fl: Any, hotwords: Sequence[Sequence[int]], weight: float, delimiter: int) -> Any:
    """A flashlight `LM` over labels that scores hotwords only, for the lexicon-free search.

    As pyctcdecode's: a word spelled so far holds the share of `weight` it has spelled of the shortest
    hotword it begins; at the delimiter (or the end) a hotword keeps `weight` and any other word gives its
    share back. Each label is scored by the change of the share.

    flashlight tells the scorer only a beam's state and its new label, and merges beams by state, so each
    history has its own state (`LMState.child`, as flashlight's ZeroLM); the scorer maps the states at a
    word's start or inside a hotword's prefix to that prefix, and any other state is inside another word.
    """
    shortest: dict[tuple[int, ...], int] = {}  # hotword prefix -> length of the shortest hotword it begins
    for spelling in hotwords:
        for k in range(1, len(spelling) + 1):
            prefix = tuple(spelling[:k])
            shortest[prefix] = min(shortest.get(prefix, len(spelling)), len(spelling))
    complete = {tuple(spelling) for spelling in hotwords}

    def share(prefix: tuple[int, ...] | None) -> float:
        return weight * len(prefix) / shortest[prefix] if prefix else 0.0

    class HotwordScorer(fl.LM):
        def __init__(self) -> None:
            fl.LM.__init__(self)
            self.prefixes: dict[Any, tuple[int, ...]] = {}

        def start(self, start_with_nothing: bool) -> Any:
            state = fl.LMState()
            self.prefixes = {state: ()}  # one clip's states: () at a word's start
            return state

        def score(self, state: Any, label: int) -> tuple[Any, float]:
            child, prefix = state.child(label), self.prefixes.get(state)
            if label == delimiter:
                self.prefixes[child] = ()
                return child, self.finish(state)[1]
            if prefix is None:  # inside a word that begins no hotword
                return child, 0.0
            longer = (*prefix, label)
            if longer not in shortest:
                return child, -share(prefix)
            self.prefixes[child] = longer
            return child, share(longer) - share(prefix)

        def finish(self, state: Any) -> tuple[Any, float]:
            prefix = self.prefixes.get(state)
            return state, 0.0 if prefix in complete else -share(prefix)

    return HotwordScorer()


def _lm_words(lm_path: str, unigrams: Iterable[str] | str | Path | None) -> list[str]:
    """The language model's words: `unigrams` (a list, or a file of one word per line), else its ARPA 1-grams."""
    if unigrams is None:
        try:
            return read_unigrams(lm_path)
        except ValueError as err:
            raise ValueError(
                f"decoder.lm_path: {err} The lexicon needs the model's words: give decoder.unigrams=<a file of one"
                " word per line, or a list>"
            ) from err
    if isinstance(unigrams, str | Path):
        if not Path(unigrams).is_file():
            raise FileNotFoundError(f"decoder.unigrams={unigrams}: no such file (the LM's words, one per line)")
        return Path(unigrams).read_text(encoding="utf-8").split()
    return list(unigrams)


def _lexicon(words: Sequence[str], labels: Sequence[str]) -> dict[str, list[int]]:
    """The language model's words that the labels spell, with their spellings; the sentence markers left out."""
    words = [w for w in words if w not in ("<s>", "</s>", "<unk>")]
    lexicon, unspellable = _spellings(words, labels)
    if not lexicon:
        raise ValueError(
            f"none of the language model's {len(words)} words (e.g. {words[:3]}) can be spelled with the model's"
            " vocabulary: build it from transcripts normalised like the training ones (uppercase)"
        )
    log.info(
        "lexicon: %d of the language model's %d words; %d skipped, with characters outside the vocabulary%s",
        len(lexicon), len(words), len(unspellable), f" (e.g. {unspellable[:5]})" if unspellable else "",
    )  # fmt: skip
    return lexicon


def _weighted_lm(fl: Any, lm: Any, scale: float, bonus: dict[int, float]) -> Any:
    """A flashlight `LM` over words: `lm`'s scores times `scale`, plus each hotword's `bonus`."""

    class WeightedLM(fl.LM):
        def __init__(self) -> None:
            fl.LM.__init__(self)

        def start(self, start_with_nothing: bool) -> Any:
            return lm.start(start_with_nothing)

        def score(self, state: Any, word: int) -> tuple[Any, float]:
            state, score = lm.score(state, word)
            return state, scale * score + bonus.get(word, 0.0)

        def finish(self, state: Any) -> tuple[Any, float]:
            state, score = lm.finish(state)
            return state, scale * score

    return WeightedLM()


def _words(path: Sequence[int], labels: Sequence[str]) -> list[WordFrames]:
    """The words a CTC path of labels spells (repeats merged, blanks dropped), each with its frames."""
    words: list[WordFrames] = []
    word, start, end, frame = "", 0, 0, 0
    for label, run in groupby(labels[i] for i in path):
        frames = sum(1 for _ in run)
        if label == " " and word:
            words.append((word, start, end))
            word = ""
        elif label.strip():
            start = frame if not word else start
            word, end = word + label, frame + frames
        frame += frames
    if word:
        words.append((word, start, end))
    return words
