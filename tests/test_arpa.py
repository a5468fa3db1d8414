# pytest tests/test_arpa.py
"""arpa.py: the small n-gram writer users call is a normalised backoff model that KenLM reads."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers.config import DEMO_DIR

from asr_lightning.arpa import read_unigrams, write_arpa
from asr_lightning.text import normalize_text


@pytest.fixture(scope="module")
def arpa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with (DEMO_DIR / "metadata.csv").open(newline="") as f:
        transcripts = [normalize_text(row["transcription"]) for row in csv.DictReader(f)]
    return write_arpa(transcripts, tmp_path_factory.mktemp("lm") / "demo.arpa", order=3)


def test_arpa_is_a_normalised_backoff_model(arpa: Path) -> None:
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    text = arpa.read_text()
    assert "ngram 3=" in text and "ngram 4=" not in text
    unigrams = text.split("\\1-grams:\n")[1].split("\n\n")[0].splitlines()
    words = [line.split("\t")[1] for line in unigrams]
    assert read_unigrams(arpa) == words
    assert {"<s>", "</s>", "<unk>", "CASH", "DECLINED"} <= set(words)
    assert all(w == w.upper() for w in words if w not in ("<s>", "</s>", "<unk>"))
    ids = {w: i for i, w in enumerate([*words, "ZEBRA"])}  # ZEBRA: a word the model has not seen (<unk>)
    model = KenLM(str(arpa), Dictionary(list(ids)))
    # every context's next-word distribution sums to one: seen, partly seen and unseen histories
    for history in ([], ["MY"], ["MY", "CARD"], ["RAISE", "MY"], ["CARD", "MY"], ["ZEBRA"]):
        state = model.start(False)  # after <s>
        for w in history:
            state, _ = model.score(state, ids[w])
        total = sum(10 ** model.score(state, ids[w])[1] for w in words if w != "<s>")  # log10 scores
        assert total == pytest.approx(1.0, abs=1e-4), history
