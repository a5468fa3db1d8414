# pytest tests/test_scoring.py
"""Per-utterance scoring and predictions files (written and read), shared by training's test stage, predict.py and
the analysis and report tools."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
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


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a `write_jsonl` file (UTF-8), one a line; blank lines are skipped.

    Raises:
        ValueError: a line that is not a JSON object, naming the file and its 1-based line number.
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {line.strip()[:60]}")
        rows.append(row)
    return rows


# predict.py's output formats: every field (JSONL), one column per field (CSV), one transcript a line (text)
OUTPUT_FORMATS = ("jsonl", "csv", "txt")


def check_output(path: str | Path, fmt: str | None = None) -> str:
    """The output format (`fmt`, else the file's suffix), once the output is known to be writable, before any
    work is done.

    Raises:
        ValueError: an unknown format, an output that is a folder, or one that cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output={path} is a folder: give a file, e.g. output={path / 'predictions.jsonl'}")
    fmt = fmt or path.suffix.lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format={fmt!r} (from output={path}) must be one of {list(OUTPUT_FORMATS)}: set format=")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"output={path} cannot be written ({err}): choose another output=") from err
    return fmt


def write_transcripts(results: Sequence[Mapping[str, Any]], path: str | Path, fmt: str) -> Path:
    """Write transcription results as JSONL (every field), CSV (one column per field; lists such as `words`
    as JSON cells) or text (one transcript per line, empty for a failed input)."""
    path = Path(path)
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format={fmt!r} must be one of {list(OUTPUT_FORMATS)}")
    if fmt == "jsonl":
        return write_jsonl(path, results)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "txt":
        path.write_text("".join(f"{r.get('text', '')}\n" for r in results), encoding="utf-8")
        return path
    columns = list(dict.fromkeys(k for r in results for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()} for r in results)
    return path


def summarize_transcripts(results: Sequence[Mapping[str, Any]], wall_s: float) -> dict[str, Any]:
    """Counts, audio seconds and real-time factor of transcription results; corpus WER/CER over those with a
    reference (`scored`: how many; the rates are None when there are none)."""
    failed = sum("error" in r for r in results)
    audio_s = sum(r.get("duration_s", 0.0) for r in results)
    scored = [r for r in results if "text" in r and "reference" in r]
    refs, hyps = [r["reference"] for r in scored], [r["text"] for r in scored]
    return {
        "transcribed": len(results) - failed,
        "failed": failed,
        "audio_s": audio_s,
        "rtf": wall_s / max(audio_s, 1e-9),
        "scored": len(scored),
        "wer": jiwer.wer(refs, hyps) if scored else None,
        "cer": jiwer.cer(refs, hyps) if scored else None,
    }
