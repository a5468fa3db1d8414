# pytest tests/test_decode.py
"""CTC decoders: greedy, and beam search (pyctcdecode) with hotwords and an optional KenLM n-gram; tuning its weights.

Both decoders take a batch of logits with each clip's real frame count, and give transcripts, or transcripts
with each word's frames (`decode_words`), for word timestamps. They are the `decoder=` configs of predict.py.

pyctcdecode and kenlm are optional (see `INSTALL_HINT`); greedy decoding needs neither.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.text import char_error_rate, word_error_rate
from transformers import Wav2Vec2CTCTokenizer

from asr_lightning.text import DEFAULT_CHARS_TO_IGNORE, greedy_ids, make_tokenizer, normalize_text

log = logging.getLogger(__name__)

# pyctcdecode 0.5.0 declares numpy<2 but runs on numpy 2: installed without its dependencies, it leaves numpy as is
INSTALL_HINT = 'pip install -e ".[lm]" && pip install --no-deps pyctcdecode==0.5.0'

Logits = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]
# a word and its first and past-the-end logit frames
WordFrames = tuple[str, int, int]


class GreedyDecoder:
    """Greedy CTC decoding (`text.greedy_decode`): the best token of each frame, repeats collapsed, blanks dropped.

    Args:
        tokenizer: the model's CTC tokenizer.
    """

    def __init__(self, tokenizer: Wav2Vec2CTCTokenizer) -> None:
        self.tokenizer = tokenizer

    def decode(self, logits: Logits, lengths: Sequence[int] | None = None) -> list[str]:
        """One transcript per clip of (batch, frames, vocab) logits, or of one (frames, vocab) array per clip."""
        ids = [greedy_ids(self.tokenizer, torch.as_tensor(clip)[None])[0].tolist() for clip in _clips(logits, lengths)]
        return [" ".join(text.split()) for text in self.tokenizer.batch_decode(ids)]  # without word offsets

    def decode_words(self, logits: Logits, lengths: Sequence[int] | None = None) -> list[tuple[str, list[WordFrames]]]:
        """Each clip's transcript and its words' frames (first frame of the first character, past the last's)."""
        out = []
        for clip in _clips(logits, lengths):
            ids = greedy_ids(self.tokenizer, torch.as_tensor(clip)[None])[0]  # (frames,)
            decoded = self.tokenizer.decode(ids.tolist(), output_word_offsets=True)
            words = [(w["word"], int(w["start_offset"]), int(w["end_offset"])) for w in decoded.word_offsets]
            out.append((" ".join(decoded.text.split()), words))
        return out


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
    """CTC prefix beam search over a character vocabulary, optionally fused with a KenLM n-gram.

    The word delimiter `|` spells a space. The pad token is the CTC blank; the other special tokens (`<s>`,
    `</s>`, `<unk>`) spell nothing, as in `text.greedy_decode`: their probability is added to the blank's.
    So a beam of width 1 without a language model reproduces greedy decoding (up to repeated spaces, which
    the beam search collapses).

    The language model scores whole words as spelled by the vocabulary (uppercase), so build it from text
    normalised like the training transcripts (`write_arpa` does).

    Args:
        tokenizer: the model's CTC tokenizer, or its vocabulary (token -> id).
        beam_width: beams kept after each frame.
        lm_path: a KenLM model (`.arpa` or a binary from `build_binary`), or None for no language model.
        alpha: weight of the language model's log-probability.
        beta: bonus per word (offsets the language model's preference for short outputs).
        hotwords: words or phrases to boost (normalised like transcripts).
        hotword_weight: log-score bonus per hotword character.
        unigrams: the language model's words. Read from an `.arpa` file when None; give them for binary
            models, or unknown-word penalties apply to every word.

    Raises:
        ImportError: pyctcdecode (or kenlm, with `lm_path`) is not installed.
        FileNotFoundError: `lm_path` does not exist.
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
        unigrams: Iterable[str] | None = None,
    ) -> None:
        pyctcdecode = _require("pyctcdecode")
        if lm_path is not None:
            _require("kenlm")
            if not Path(lm_path).is_file():
                raise FileNotFoundError(f"decoder.lm_path={lm_path}: no such file (an ARPA or KenLM binary model)")
        if beam_width < 1:
            raise ValueError(f"beam_width must be >= 1, got {beam_width}")
        if isinstance(tokenizer, dict):
            tokenizer = make_tokenizer(tokenizer)
        self.beam_width = beam_width
        self.lm_path = None if lm_path is None else str(lm_path)
        self.alpha, self.beta = float(alpha), float(beta)
        self.hotwords = [w for w in (normalize_text(h) for h in hotwords or []) if w]
        self.hotword_weight = float(hotword_weight)
        self._labels, self._keep, self._silent, self._blank = _labels(tokenizer)
        self._decoder = pyctcdecode.build_ctcdecoder(
            self._labels,
            kenlm_model_path=self.lm_path,
            unigrams=None if unigrams is None else list(unigrams),
            alpha=self.alpha,
            beta=self.beta,
        )

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
            One uppercase transcript per clip, words separated by single spaces.
        """
        # a clip without frames spells nothing (pyctcdecode would average an empty array)
        return [self._decoder.decode(lp, **self._kwargs) if len(lp) else "" for lp in self._log_probs(logits, lengths)]

    def decode_words(self, logits: Logits, lengths: Sequence[int] | None = None) -> list[tuple[str, list[WordFrames]]]:
        """As `decode`, with the frames of each word of the best beam (first frame, past the last)."""
        out = []
        for lp in self._log_probs(logits, lengths):
            if not len(lp):
                out.append(("", []))
                continue
            text, _, frames, _, _ = self._decoder.decode_beams(lp, **self._kwargs)[0]
            out.append((text, [(word, int(a), int(b)) for word, (a, b) in frames]))
        return out

    @property
    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"beam_width": self.beam_width}
        if self.hotwords:
            kwargs |= {"hotwords": self.hotwords, "hotword_weight": self.hotword_weight}
        return kwargs

    def set_lm_weights(self, alpha: float, beta: float) -> None:
        """Change alpha and beta without reloading the language model."""
        if not self.has_lm:
            raise ValueError("alpha and beta weight a language model, and this decoder has none (lm_path=None)")
        alpha, beta = float(alpha), float(beta)  # pyctcdecode rejects ints (`alpha=1` from a command line)
        self._decoder.reset_params(alpha=alpha, beta=beta)
        self.alpha, self.beta = alpha, beta

    def __del__(self) -> None:
        # pyctcdecode keeps language models in a class-level dict (shared with worker processes); free ours
        if hasattr(self, "_decoder"):
            self._decoder.cleanup()

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
            # probabilities keeps that reading while pyctcdecode sees one blank.
            blank = torch.logsumexp(lp[:, [self._blank, *self._silent]], dim=-1)
            lp = lp[:, self._keep]  # (frames, labels)
            lp[:, self._keep.index(self._blank)] = blank
            out.append(lp.numpy())
        return out


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


def plot_grid(grid: dict[str, Any], path: str | Path) -> Path:
    """A heatmap of `grid_search`'s WER over alpha (rows) and beta (columns), the best setting in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = sorted({r["alpha"] for r in grid["results"]})
    betas = sorted({r["beta"] for r in grid["results"]})
    wer = {(r["alpha"], r["beta"]): r["wer"] for r in grid["results"]}
    best = (grid["best"]["alpha"], grid["best"]["beta"])
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(betas), 1.2 + 0.5 * len(alphas)))
    image = ax.imshow([[wer[a, b] for b in betas] for a in alphas], cmap="viridis_r", aspect="auto")
    low, high = min(wer.values()), max(wer.values())
    for y, a in enumerate(alphas):
        for x, b in enumerate(betas):
            dark = high > low and (wer[a, b] - low) / (high - low) > 0.5  # viridis_r: high WER is dark
            style = {"color": "red", "weight": "bold"} if (a, b) == best else {"color": "white" if dark else "black"}
            ax.text(x, y, f"{wer[a, b]:.3f}", ha="center", va="center", fontsize=8, **style)
    ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
    ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set(xlabel="beta (word bonus)", ylabel="alpha (LM weight)", title=f"WER on {grid.get('utterances', '?')} clips")
    fig.colorbar(image, ax=ax, label="WER")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_arpa(
    texts: Iterable[str], path: str | Path, order: int = 3, chars_to_ignore: str | None = DEFAULT_CHARS_TO_IGNORE
) -> Path:
    """Write a word n-gram language model of `texts` in ARPA format, for tests and tiny corpora.

    Interpolated absolute discounting (one discount per order, Ney's n1 / (n1 + 2 n2)), written as a
    backoff model: the backoff weight of a history is its interpolation weight, so every history's
    distribution sums to one. Real language models should come from KenLM's `lmplz` (modified Kneser-Ney,
    pruning), then `build_binary` for fast loading.

    Args:
        texts: transcripts, one sentence each; normalised with `text.normalize_text` (uppercase).
        path: the `.arpa` file to write.
        order: the longest n-gram.
        chars_to_ignore: passed to `normalize_text`.

    Returns:
        The path written.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    sentences = [s.split() for s in (normalize_text(t, chars_to_ignore) for t in texts) if s]
    if not sentences:
        raise ValueError("no words to build a language model from")
    counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order + 1)]  # by n-gram length
    for words in sentences:
        padded = ["<s>", *words, "</s>"]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                gram = tuple(padded[i : i + n])
                if gram != ("<s>",):  # <s> is a context, never predicted
                    counts[n][gram] += 1

    # probabilities (log10 later) order by order: each n-gram's interpolates its suffix's, already computed
    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}
    vocab = {w for (w,) in counts[1]} | {"<unk>"}
    total, discount = sum(counts[1].values()), _discount(counts[1])
    uniform = discount * len(counts[1]) / total / len(vocab)  # the mass taken from seen words, spread over all
    for w in vocab:
        probs[(w,)] = max(counts[1][(w,)] - discount, 0) / total + uniform
    for n in range(2, order + 1):
        discount = _discount(counts[n])
        history_total: Counter[tuple[str, ...]] = Counter()
        history_types: Counter[tuple[str, ...]] = Counter()
        for gram, c in counts[n].items():
            history_total[gram[:-1]] += c
            history_types[gram[:-1]] += 1
        gamma = {h: discount * history_types[h] / c for h, c in history_total.items()}
        for gram, c in counts[n].items():
            h = gram[:-1]
            probs[gram] = (c - discount) / history_total[h] + gamma[h] * probs[gram[1:]]
        backoffs.update(gamma)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    by_order: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for gram in [*probs, ("<s>",)]:
        by_order[len(gram)].append(gram)
    lines = ["\\data\\", *(f"ngram {n}={len(by_order[n])}" for n in range(1, order + 1)), ""]
    for n in range(1, order + 1):
        lines.append(f"\\{n}-grams:")
        for gram in sorted(by_order[n]):
            logp = -99.0 if gram == ("<s>",) else math.log10(probs[gram])  # -99: ARPA's "never predicted"
            line = f"{logp:.6f}\t{' '.join(gram)}"
            if gram in backoffs:
                line += f"\t{math.log10(backoffs[gram]):.6f}"
            lines.append(line)
        lines.append("")
    lines.append("\\end\\")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _clips(logits: Logits, lengths: Sequence[int] | None) -> list[torch.Tensor | np.ndarray]:
    """(batch, frames, vocab) -> batch x (frames, vocab), each cut to its real frame count."""
    clips = list(logits)
    if lengths is None:
        return clips
    if len(lengths) != len(clips):
        raise ValueError(f"{len(lengths)} lengths for {len(clips)} clips")
    return [c[: int(n)] for c, n in zip(clips, lengths, strict=True)]


def _require(package: str) -> Any:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ImportError(f"beam-search decoding needs the `{package}` package: {INSTALL_HINT}") from err


def _labels(tokenizer: Wav2Vec2CTCTokenizer) -> tuple[list[str], list[int], list[int], int]:
    """pyctcdecode's labels, the vocab ids they stand for, the silent special ids, and the blank id.

    pyctcdecode wants unique labels, "" for the blank and " " for the word delimiter; the other specials
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


def _discount(counts: Counter[tuple[str, ...]]) -> float:
    # Ney's estimate; tiny corpora may lack singletons or doubletons, where 0.5 is a safe middle.
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
