# python -c "from asr_lightning.arpa import write_arpa; write_arpa(open('corpus.txt'), 'lm.arpa')"
"""Word n-gram language models in ARPA format: write a small one, read the words of any.

`write_arpa` builds the n-gram that `decoder=beam decoder.lm_path=...` fuses into the beam search (for tests
and tiny corpora; real ones come from KenLM's `lmplz`); `read_unigrams` lists an ARPA model's words, from
which the beam decoder builds its lexicon.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from asr_lightning.text import DEFAULT_CHARS_TO_IGNORE, normalize_text


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


def read_unigrams(path: str | Path) -> list[str]:
    """The words of an ARPA language model (its `\\1-grams:` section), `<s>`, `</s>` and `<unk>` included.

    Reads up to the end of the 1-grams only, so large models cost little.

    Args:
        path: an `.arpa` file.

    Returns:
        The words, in file order.

    Raises:
        ValueError: `path` is not an ARPA file (a KenLM binary, for instance), or has no 1-grams.
    """
    with open(path, "rb") as f:
        first = next((line for line in f if line.strip()), b"")
        if first.strip() != b"\\data\\":
            raise ValueError(f"{path} is not an ARPA file (its first line is not \\data\\): a KenLM binary model?")
        if not any(line.strip() == b"\\1-grams:" for line in f):
            raise ValueError(f"{path}: no \\1-grams: section")
        words = []
        for line in f:  # "log10 p<TAB>word[<TAB>log10 backoff]" up to a blank line or the next section
            fields = line.split()
            if not fields or fields[0].startswith(b"\\"):
                break
            words.append(fields[1].decode("utf-8"))
    if not words:
        raise ValueError(f"{path}: no 1-grams")
    return words


def _discount(counts: Counter[tuple[str, ...]]) -> float:
    # Ney's estimate; tiny corpora may lack singletons or doubletons, where 0.5 is a safe middle.
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
