# pytest tests/test_scoring.py
"""Per-utterance scoring and predictions files, shared by training's test stage and predict.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jiwer


def utterance_records(
    records: Iterable[Mapping[str, str]], metadata: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Add per-utterance WER/CER and error counts (jiwer alignments) and metadata columns.

    Args:
        records: dicts with `id`, `reference` and `hypothesis`.
        metadata: id -> extra columns (e.g. `intent_class`) to copy into each record.

    Returns:
        One dict per record, ordered by id.
    """
    rows = []
    for rec in sorted(records, key=lambda r: r["id"]):
        ref, hyp = rec["reference"], rec["hypothesis"]
        words = jiwer.process_words(ref, hyp)
        rows.append(
            {
                **rec,
                "wer": words.wer,
                "cer": jiwer.cer(ref, hyp),
                "substitutions": words.substitutions,
                "deletions": words.deletions,
                "insertions": words.insertions,
                "ref_words": len(ref.split()),
                **dict((metadata or {}).get(rec["id"], {})),
            }
        )
    return rows


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line (UTF-8), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
