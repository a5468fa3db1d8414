# pytest tests/test_stats.py
"""Seed statistics against hand computations; the paired bootstrap on predictions with known answers."""

from __future__ import annotations

import math

import pytest

from asr_lightning.stats import paired_bootstrap, summarize

T_975_DF2 = 4.302652729911275  # t-distribution 97.5% quantile, 2 degrees of freedom (tables)


def test_summarize_matches_hand_computation() -> None:
    s = summarize([0.30, 0.32, 0.34])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.32)
    assert s["std"] == pytest.approx(0.02)  # sqrt(((-0.02)^2 + 0 + 0.02^2) / 2)
    half = T_975_DF2 * 0.02 / math.sqrt(3)  # = 0.049683
    assert s["ci_half"] == pytest.approx(half) and half == pytest.approx(0.049683, abs=1e-6)
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(0.32 - half), pytest.approx(0.32 + half))


def test_summarize_one_seed_has_no_spread() -> None:
    s = summarize([0.5])
    assert s["n"] == 1 and s["mean"] == 0.5 and math.isnan(s["std"]) and math.isnan(s["ci_half"])
    assert summarize([])["n"] == 0


def rows(errors: list[int], words: int = 1, prefix: str = "u") -> list[dict]:
    """One record per utterance of `words` words, the first `e` of them substituted."""
    out = []
    for i, e in enumerate(errors):
        ref = " ".join(f"W{j}" for j in range(words))
        hyp = " ".join("X" if j < e else f"W{j}" for j in range(words))
        out.append({"id": f"{prefix}{i:04d}", "reference": ref, "hypothesis": hyp})
    return out


def test_bootstrap_identical_systems() -> None:
    a = rows([0, 1, 0, 1, 1, 0] * 10)
    r = paired_bootstrap(a, a, n_resamples=2000)
    assert r["diff"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0 and r["p_value"] == 1.0


def test_bootstrap_strictly_better_system() -> None:
    a, b = rows([1] * 50), rows([0] * 50)
    r = paired_bootstrap(a, b, n_resamples=2000)
    assert r["wer_a"] == 1.0 and r["wer_b"] == 0.0 and r["diff"] == -1.0
    assert r["ci_low"] == r["ci_high"] == -1.0
    assert r["p_value"] == pytest.approx(2 / 2001)  # never a resample with B - A >= 0


def test_bootstrap_interval_has_the_known_width() -> None:
    """B errs on half of 400 one-word utterances, A on none: the difference is a mean of 0/1 draws,
    so its bootstrap distribution is ~ N(0.5, 0.5^2/400): 95% CI 0.5 +/- 1.96 * 0.025."""
    a, b = rows([0] * 400), rows([1, 0] * 200)
    r = paired_bootstrap(a, b, n_resamples=10_000, seed=1)
    assert r["diff"] == 0.5
    assert r["ci_low"] == pytest.approx(0.5 - 1.96 * 0.025, abs=0.006)
    assert r["ci_high"] == pytest.approx(0.5 + 1.96 * 0.025, abs=0.006)
    assert r["p_value"] < 0.001


def test_bootstrap_uses_counts_when_present_and_jiwer_otherwise() -> None:
    a = rows([0, 1, 1], words=3)
    counted = [r | {"substitutions": 9, "deletions": 0, "insertions": 0, "ref_words": 3} for r in a]
    assert paired_bootstrap(a, counted, n_resamples=10)["wer_b"] == 3.0  # 27 errors / 9 words: the counts rule
    assert paired_bootstrap(a, a, n_resamples=10)["wer_a"] == pytest.approx(2 / 9)


def test_bootstrap_refuses_different_test_sets() -> None:
    a, b = rows([0] * 5), rows([0] * 5)
    with pytest.raises(ValueError, match="same test set.*u0004"):
        paired_bootstrap(a, b[:4])
    b[2] = b[2] | {"reference": "OTHER WORDS"}
    with pytest.raises(ValueError, match="references differ.*u0002"):
        paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="twice"):
        paired_bootstrap(a + a[:1], b)


def test_bootstrap_takes_predict_records_text_as_the_hypothesis() -> None:
    a = rows([0, 1, 0, 1], words=2)
    b = [{"id": r["id"], "reference": r["reference"], "text": r["reference"]} for r in a]  # predict.py's records
    result = paired_bootstrap(a, b, n_resamples=50)
    assert (result["wer_a"], result["wer_b"]) == (0.25, 0.0)


@pytest.mark.parametrize("n", [0, -3])
def test_bootstrap_needs_at_least_one_resample(n: int) -> None:
    with pytest.raises(ValueError, match=f"at least 1, got {n}"):
        paired_bootstrap(rows([0, 1]), rows([1, 1]), n_resamples=n)
