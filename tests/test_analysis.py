# pytest tests/test_analysis.py
"""Error analysis of a predictions file: S/D/I, WER per metadata value, frequent confusions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr_lightning.analysis import error_analysis, main, write_analysis

ROWS = [
    {"id": "a", "reference": "PAY MY BILL", "hypothesis": "PAY MY BELL", "intent_class": "pay_bill", "speaker": "s1"},
    {"id": "b", "reference": "OPEN ACCOUNT", "hypothesis": "OPEN", "intent_class": "open", "speaker": "s1"},
    {"id": "c", "reference": "HELLO", "hypothesis": "HELLO THERE", "intent_class": "open", "speaker": "s2"},
    {"id": "d", "reference": "MY BILL", "hypothesis": "MY BELL", "intent_class": "pay_bill", "speaker": "s2"},
]


def test_totals_and_confusions() -> None:
    a = error_analysis(ROWS)
    t = a["totals"]
    assert (t["utterances"], t["ref_words"]) == (4, 8)
    assert (t["substitutions"], t["deletions"], t["insertions"]) == (2, 1, 1)
    assert t["wer"] == pytest.approx(4 / 8)
    assert a["substitutions"] == [["BILL", "BELL", 2]]
    assert a["deletions"] == [["ACCOUNT", 1]] and a["insertions"] == [["THERE", 1]]


def test_wer_by_every_metadata_column_worst_first() -> None:
    a = error_analysis(ROWS)
    assert set(a) >= {"by_intent_class", "by_speaker"}
    by_intent = a["by_intent_class"]
    assert list(by_intent) == ["open", "pay_bill"]  # 2/3 before 2/5
    assert by_intent["open"]["wer"] == pytest.approx(2 / 3) and by_intent["pay_bill"]["wer"] == pytest.approx(2 / 5)
    assert a["by_speaker"]["s1"]["deletions"] == 1 and a["by_speaker"]["s2"]["insertions"] == 1


def test_breakdown_column_must_exist() -> None:
    with pytest.raises(KeyError, match="lang"):
        error_analysis(ROWS, by=["lang"])
    assert set(error_analysis(ROWS, by=[])) == {"totals", "substitutions", "deletions", "insertions"}


def test_written_files_and_cli(tmp_path: Path) -> None:
    md = write_analysis(error_analysis(ROWS), tmp_path, "test")[1].read_text()
    assert "## WER by intent_class" in md and "| BILL | BELL | 2 |" in md
    preds = tmp_path / "run" / "predictions" / "test.jsonl"
    preds.parent.mkdir(parents=True)
    preds.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    main([str(preds), "--by", "speaker"])
    out = json.loads((tmp_path / "run" / "analysis" / "test.json").read_text())
    assert "by_speaker" in out and "by_intent_class" not in out
