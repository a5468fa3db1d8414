# pytest tests/test_scoring.py
"""Per-utterance WER/CER records and the JSON-lines predictions file, written and read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr_lightning.scoring import read_jsonl, utterance_records, write_jsonl


def test_utterance_records_counts_errors() -> None:
    [row] = utterance_records([{"id": "u1", "reference": "A B C D", "hypothesis": "A X C"}])
    assert row["substitutions"] == 1
    assert row["deletions"] == 1
    assert row["insertions"] == 0
    assert row["ref_words"] == 4
    assert row["wer"] == pytest.approx(0.5)
    # characters: B->X and the deleted " D" are 3 edits over 7 reference characters
    assert row["cer"] == pytest.approx(3 / 7)
    assert (row["id"], row["reference"], row["hypothesis"]) == ("u1", "A B C D", "A X C")


def test_utterance_records_insertions_and_perfect() -> None:
    rows = utterance_records(
        [
            {"id": "ins", "reference": "HELLO", "hypothesis": "HELLO THERE FRIEND"},
            {"id": "ok", "reference": "HELLO WORLD", "hypothesis": "HELLO WORLD"},
        ]
    )
    by_id = {r["id"]: r for r in rows}
    assert by_id["ins"]["insertions"] == 2
    assert by_id["ins"]["wer"] == pytest.approx(2.0)
    assert by_id["ok"]["wer"] == 0.0
    assert by_id["ok"]["cer"] == 0.0
    assert by_id["ok"]["substitutions"] + by_id["ok"]["deletions"] + by_id["ok"]["insertions"] == 0


def test_utterance_records_empty_hypothesis() -> None:
    [row] = utterance_records([{"id": "e", "reference": "ONE TWO THREE", "hypothesis": ""}])
    assert row["wer"] == 1.0
    assert row["deletions"] == 3
    assert row["substitutions"] == row["insertions"] == 0
    assert row["cer"] == 1.0


def test_utterance_records_sorted_by_id_with_metadata() -> None:
    records = [
        {"id": "c", "reference": "X", "hypothesis": "X"},
        {"id": "a", "reference": "Y", "hypothesis": "Z"},
        {"id": "b", "reference": "W", "hypothesis": "W"},
    ]
    metadata = {"a": {"intent_class": 3, "speaker": "s1"}, "c": {"intent_class": 7}}
    rows = utterance_records(records, metadata)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["intent_class"] == 3 and rows[0]["speaker"] == "s1"
    assert "intent_class" not in rows[1]
    assert rows[2]["intent_class"] == 7
    assert rows[0]["wer"] == 1.0
    # inputs are not modified
    assert "wer" not in records[0]


def test_utterance_records_empty_input() -> None:
    assert utterance_records([]) == []


def test_write_jsonl(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "ÇA VA ÉTÉ", "wer": 0.5}, {"id": "b", "text": "日本", "n": [1, 2]}]
    path = write_jsonl(tmp_path / "deep" / "er" / "predictions.jsonl", rows)
    assert path == tmp_path / "deep" / "er" / "predictions.jsonl"
    raw = path.read_bytes().decode("utf-8")
    assert "ÇA VA ÉTÉ" in raw and "日本" in raw  # not \u-escaped
    lines = raw.splitlines()
    assert len(lines) == 2
    assert raw.endswith("\n")
    assert [json.loads(line) for line in lines] == rows


def test_write_jsonl_overwrites_and_accepts_str(tmp_path: Path) -> None:
    target = tmp_path / "p.jsonl"
    write_jsonl(str(target), [{"a": 1}, {"a": 2}])
    write_jsonl(str(target), [{"a": 3}])
    assert target.read_text(encoding="utf-8") == '{"a": 3}\n'


def test_read_jsonl_reads_back_what_write_jsonl_wrote(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "ÇA VA ÉTÉ", "wer": 0.5}, {"id": "b", "text": "日本", "n": [1, 2]}]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    assert read_jsonl(path) == rows
    path.write_text('\n{"a": 1}\n   \n{"a": 2}\n\n', encoding="utf-8")  # blank lines are skipped
    assert read_jsonl(str(path)) == [{"a": 1}, {"a": 2}]
    path.write_text("", encoding="utf-8")
    assert read_jsonl(path) == []


@pytest.mark.parametrize("bad", ['{"a": 2', "[1, 2]"])
def test_read_jsonl_names_the_file_and_line_of_a_bad_record(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(f'{{"a": 1}}\n\n{bad}\n{{"a": 3}}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"p\.jsonl:3: "):
        read_jsonl(path)
