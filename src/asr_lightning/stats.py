# pytest tests/test_stats.py
"""Statistics for comparing runs: mean/std/t-interval over seeds, paired bootstrap over test utterances."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from asr_lightning.scoring import utterance_records

COUNT_KEYS = ("substitutions", "deletions", "insertions", "ref_words")


def summarize(values: Iterable[float], confidence: float = 0.95) -> dict[str, float]:
    """n, mean, sample std (ddof=1) and the t-distribution confidence interval of the mean.

    With n = 1 the std and interval are NaN: one seed says nothing about seed variance.
    """
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci_half": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci_half": half, "ci_low": mean - half, "ci_high": mean + half}


def utterance_errors(rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int, str]]:
    """id -> (word errors, reference words, reference), from a predictions file's records.

    Records from training's test stage carry S/D/I counts; others are scored here. predict.py writes the
    hypothesis as `text`, which stands in for `hypothesis` when a record has none.
    """
    out = {}
    for r in rows:
        if r.get("hypothesis") is None and r.get("text") is not None:
            r = {**r, "hypothesis": r["text"]}
        if r.get("hypothesis") is None or r.get("reference") is None:
            raise ValueError(f"record {r.get('id')!r} has no reference or hypothesis (or text): cannot score it")
        if not all(k in r for k in COUNT_KEYS):
            r = utterance_records([r])[0]
        if r["id"] in out:
            raise ValueError(f"id {r['id']!r} appears twice in one predictions file")
        out[r["id"]] = (r["substitutions"] + r["deletions"] + r["insertions"], r["ref_words"], r["reference"])
    return out


def paired_bootstrap(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired bootstrap of the corpus-WER difference B - A over test utterances (Bisani & Ney, 2004).

    Both systems are scored on the same resampled utterances each time, so per-utterance difficulty cancels.

    Args:
        a: predictions records of system A (`id`, `reference`, `hypothesis` or `text`, optionally S/D/I counts).
        b: the same for system B; must cover exactly the same ids with the same references.

    Returns:
        `wer_a`, `wer_b`, `diff` (B - A), `ci_low`/`ci_high` (percentile interval of the difference),
        `p_value` (two-sided, for "no difference"), `n_utterances`, `n_resamples`.
    """
    if n_resamples < 1:
        raise ValueError(f"the number of bootstrap resamples must be at least 1, got {n_resamples}")
    ea, eb = utterance_errors(a), utterance_errors(b)
    if set(ea) != set(eb):
        only_a, only_b = sorted(set(ea) - set(eb)), sorted(set(eb) - set(ea))
        raise ValueError(
            f"the two systems were not scored on the same test set: {len(only_a)} ids only in A "
            f"(e.g. {only_a[:3]}), {len(only_b)} only in B (e.g. {only_b[:3]})"
        )
    ids = sorted(ea)
    changed = [i for i in ids if ea[i][2] != eb[i][2]]
    if changed:
        raise ValueError(f"references differ for {len(changed)} ids (e.g. {changed[:3]}): not the same test set")
    err_a = np.array([ea[i][0] for i in ids], dtype=np.float64)
    err_b = np.array([eb[i][0] for i in ids], dtype=np.float64)
    words = np.array([ea[i][1] for i in ids], dtype=np.float64)
    if words.sum() == 0:
        raise ValueError("the test set has no reference words")
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    n, chunk = len(ids), max(1, 2_000_000 // max(len(ids), 1))  # bound memory: chunk x n indices at a time
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        w = words[idx].sum(1)
        diffs[start : start + len(idx)] = (err_b[idx].sum(1) - err_a[idx].sum(1)) / np.maximum(w, 1)
    alpha = 1 - confidence
    # two-sided: how often resampling puts the difference on either side of 0 (+1 smoothing: never exactly 0)
    le, ge = (np.sum(diffs <= 0) + 1) / (n_resamples + 1), (np.sum(diffs >= 0) + 1) / (n_resamples + 1)
    wer_a, wer_b = err_a.sum() / words.sum(), err_b.sum() / words.sum()
    return {
        "wer_a": float(wer_a),
        "wer_b": float(wer_b),
        "diff": float(wer_b - wer_a),
        "ci_low": float(np.quantile(diffs, alpha / 2)),
        "ci_high": float(np.quantile(diffs, 1 - alpha / 2)),
        "p_value": float(min(1.0, 2 * min(le, ge))),
        "n_utterances": n,
        "n_resamples": n_resamples,
    }
