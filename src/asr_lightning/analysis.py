# python -m asr_lightning.analysis logs/train/runs/<run>/predictions/test.jsonl --by intent_class
"""Error analysis of a predictions file: S/D/I totals, WER per metadata value, frequent confusions."""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jiwer

from asr_lightning.scoring import read_jsonl, utterance_records

log = logging.getLogger(__name__)
# columns every predictions record has; anything else is metadata to break WER down by
RECORD_COLUMNS = frozenset(
    {"id", "path", "reference", "hypothesis", "wer", "cer", "substitutions", "deletions", "insertions", "ref_words",
     "duration_s", "error"}
)  # fmt: skip
# fields of predict.py's results that are no metadata to break WER down by
TRANSCRIPT_FIELDS = frozenset({"text", "confidence", "words", "reason"})
# where a record stood in predict.py's results, while it is scored
POSITION = "_position"


def error_analysis(
    rows: Sequence[Mapping[str, Any]], by: Sequence[str] | None = None, top_k: int = 20
) -> dict[str, Any]:
    """Corpus and per-group error counts from per-utterance records.

    Args:
        rows: records with `reference` and `hypothesis` (as in `predictions/test.jsonl`).
        by: metadata columns to break WER down by; None takes every non-standard column of the records.
        top_k: how many of the most frequent substitution pairs, deleted and inserted words to keep.

    Returns:
        `totals` (utterances, reference words, S/D/I/hits, WER, CER), `by_<column>` (value -> the same counts,
        sorted by WER, worst first), `substitutions` ([ref, hyp, count]), `deletions` and `insertions`
        ([word, count]).
    """
    rows = [r for r in rows if r.get("reference") is not None and r.get("hypothesis") is not None]
    if not rows:
        raise ValueError("no records with both a reference and a hypothesis to analyse")
    columns = list(by) if by is not None else sorted({k for r in rows for k in r} - RECORD_COLUMNS)
    refs, hyps = [r["reference"] for r in rows], [r["hypothesis"] for r in rows]
    out = jiwer.process_words(refs, hyps)
    subs, dels, ins = Counter(), Counter(), Counter()
    per_utt = []  # (hits, S, D, I) of each utterance, from the one corpus alignment
    for ref_words, hyp_words, chunks in zip(out.references, out.hypotheses, out.alignments, strict=True):
        n = Counter()
        for c in chunks:
            n[c.type] += max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
            if c.type == "substitute":
                pairs = zip(
                    ref_words[c.ref_start_idx : c.ref_end_idx], hyp_words[c.hyp_start_idx : c.hyp_end_idx], strict=True
                )
                subs.update(f"{r}\t{h}" for r, h in pairs)
            elif c.type == "delete":
                dels.update(ref_words[c.ref_start_idx : c.ref_end_idx])
            elif c.type == "insert":
                ins.update(hyp_words[c.hyp_start_idx : c.hyp_end_idx])
        per_utt.append((n["equal"], n["substitute"], n["delete"], n["insert"]))
    result: dict[str, Any] = {
        "totals": {**_counts(per_utt), "cer": jiwer.cer(refs, hyps)},
        "substitutions": [[*k.split("\t"), n] for k, n in subs.most_common(top_k)],
        "deletions": [list(x) for x in dels.most_common(top_k)],
        "insertions": [list(x) for x in ins.most_common(top_k)],
    }
    for col in columns:
        groups: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
        for r, counts in zip(rows, per_utt, strict=True):
            if col not in r:
                raise KeyError(f"records have no column {col!r} to break WER down by; they have {sorted(r)}")
            groups[str(r[col])].append(counts)
        stats = {v: _counts(utts) for v, utts in groups.items()}
        result[f"by_{col}"] = dict(sorted(stats.items(), key=lambda kv: (-kv[1]["wer"], kv[0])))
    return result


def write_analysis(analysis: Mapping[str, Any], out_dir: str | Path, stem: str = "errors") -> list[Path]:
    """Write `<stem>.json` and a readable `<stem>.md`; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(analysis, indent=1, ensure_ascii=False))
    md_path.write_text(analysis_markdown(analysis))
    return [json_path, md_path]


def score_transcripts(results: Sequence[Mapping[str, Any]], out_dir: str | Path, stem: str) -> list[dict[str, Any]]:
    """Score transcription results as training's test stage does, each in its own place.

    Results with a `text` and a `reference` get the per-utterance fields of `scoring.utterance_records`, and
    their error analysis (by every metadata column of the inputs) is written to `<out_dir>/<stem>.{json,md}`;
    the others are returned as they are. Records are matched by position, never by id, so inputs that share
    an id (two manifests naming the same relative file) keep their own scores; shared ids are logged.
    """
    scored = [i for i, r in enumerate(results) if "text" in r and "reference" in r]
    if not scored:
        return [dict(r) for r in results]
    ids = Counter(results[i]["id"] for i in scored)
    if len(ids) < len(scored):
        repeated = [k for k, n in ids.items() if n > 1]
        log.warning("%d ids name more than one input (e.g. %s): each keeps its own record", len(repeated),
                    repeated[:3])  # fmt: skip
    rows = utterance_records([{**results[i], "hypothesis": results[i]["text"], POSITION: i} for i in scored])
    columns = sorted({k for r in rows for k in r} - RECORD_COLUMNS - TRANSCRIPT_FIELDS - {POSITION})
    write_analysis(error_analysis(rows, by=columns), out_dir, stem)
    by_position = {r[POSITION]: {k: v for k, v in r.items() if k not in ("hypothesis", POSITION)} for r in rows}
    return [by_position.get(i, dict(r)) for i, r in enumerate(results)]


def analysis_markdown(analysis: Mapping[str, Any]) -> str:
    """An `error_analysis` in Markdown: totals, WER per metadata value, the most frequent confusions."""
    t = analysis["totals"]
    lines = [
        "# Error analysis",
        "",
        f"{t['utterances']} utterances, {t['ref_words']} reference words: WER {t['wer']:.4f}, CER {t['cer']:.4f}.",
        f"Substitutions {t['substitutions']}, deletions {t['deletions']}, insertions {t['insertions']}.",
    ]
    for key, stats in analysis.items():
        if not key.startswith("by_"):
            continue
        col = key[3:]
        lines += [
            "",
            f"## WER by {col}",
            "",
            f"| {col} | n | words | S | D | I | WER |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {v} | {s['utterances']} | {s['ref_words']} | {s['substitutions']} | {s['deletions']} "
            f"| {s['insertions']} | {s['wer']:.4f} |"
            for v, s in stats.items()
        ]
    lines += ["", "## Most frequent substitutions", "", "| reference | hypothesis | count |", "|---|---|---:|"]
    lines += [f"| {r} | {h} | {n} |" for r, h, n in analysis["substitutions"]]
    for kind in ("deletions", "insertions"):
        lines += ["", f"## Most frequent {kind}", "", "| word | count |", "|---|---:|"]
        lines += [f"| {w} | {n} |" for w, n in analysis[kind]]
    return "\n".join(lines) + "\n"


def _counts(utterances: Sequence[tuple[int, int, int, int]]) -> dict[str, Any]:
    """Totals of per-utterance (hits, S, D, I); WER = (S + D + I) / reference words, as jiwer computes it."""
    hits, s, d, i = (sum(col) for col in zip(*utterances, strict=True))
    ref_words = hits + s + d
    return {
        "utterances": len(utterances),
        "ref_words": ref_words,
        "hits": hits,
        "substitutions": s,
        "deletions": d,
        "insertions": i,
        "wer": (s + d + i) / ref_words if ref_words else (math.inf if s + d + i else 0.0),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("predictions", type=Path, help="a predictions JSONL (e.g. <run dir>/predictions/test.jsonl)")
    parser.add_argument("--by", nargs="*", default=None, help="metadata columns (default: all non-standard ones)")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run dir>/analysis)")
    args = parser.parse_args(argv)
    if not args.predictions.is_file():
        raise SystemExit(f"error: {args.predictions} is not a predictions file")
    rows = read_jsonl(args.predictions)
    analysis = error_analysis(rows, args.by, args.top_k)
    out = args.out or args.predictions.parent.parent / "analysis"
    for path in write_analysis(analysis, out, stem=args.predictions.stem):
        print(path)


if __name__ == "__main__":
    main()
