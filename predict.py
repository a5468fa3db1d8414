# python predict.py ckpt_path=logs/train/runs/<run>/hf_model inputs=[clip.wav,some_dir/,manifest.jsonl]
"""Transcribe files, globs, folders and manifests with a checkpoint, an exported model or a Hub id.

Writes JSONL (default), CSV or plain text; with references (manifests), also WER/CER and the per-utterance
report and error analysis of training's test stage.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
import jiwer
import torch
from omegaconf import DictConfig

from asr_lightning.analysis import error_analysis, write_analysis
from asr_lightning.hub import HubUnavailableError
from asr_lightning.scoring import utterance_records, write_jsonl
from asr_lightning.transcribe import dataset_utterances, expand_inputs, load_model, transcribe

log = logging.getLogger("predict")
FORMATS = ("jsonl", "csv", "txt")


def predict(cfg: DictConfig) -> list[dict]:
    output = Path(cfg.output)
    fmt = cfg.format or output.suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} (from output={output}) must be one of {list(FORMATS)}: set format=")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    model, processor = load_model(cfg.ckpt_path, device=device)
    inputs = expand_inputs(cfg.inputs)
    if cfg.get("data"):  # a split of a training data config: the utterances training's test stage scores
        inputs += dataset_utterances(hydra.utils.instantiate(cfg.data, output_dir=None), cfg.split)
    if not inputs:
        raise SystemExit(f"error: no audio found in inputs={list(cfg.inputs)} (or give data=<config> split=<name>)")

    start = time.perf_counter()
    results = transcribe(model, processor, inputs, batch_size=cfg.batch_size, max_batch_seconds=cfg.max_batch_seconds)
    wall = time.perf_counter() - start
    scored = [r for r in results if "text" in r and "reference" in r]
    if scored:  # the same per-utterance fields and analysis as training's test stage
        rows = utterance_records([{**r, "hypothesis": r["text"]} for r in scored])
        write_analysis(error_analysis(rows), output.parent, f"{output.stem}.analysis")  # by every metadata column
        by_id = {r["id"]: {k: v for k, v in r.items() if k != "hypothesis"} for r in rows}
        results = [by_id.get(r["id"], r) if "text" in r else r for r in results]
    for r in results:
        print(f"{r['path']}\t{r.get('text', 'ERROR: ' + r.get('error', ''))}")
    write_results(results, output, fmt)

    n_bad = sum("error" in r for r in results)
    audio_s = sum(r.get("duration_s", 0.0) for r in results)
    log.info("wrote %s: %d transcribed, %d failed", output, len(results) - n_bad, n_bad)
    log.info("%.1f s of audio in %.1f s: real-time factor %.4f (%s)", audio_s, wall, wall / max(audio_s, 1e-9), device)
    if scored:
        refs, hyps = [r["reference"] for r in scored], [r["text"] for r in scored]
        log.info("WER %.4f, CER %.4f over %d utterances with references", jiwer.wer(refs, hyps), jiwer.cer(refs, hyps),
                 len(scored))  # fmt: skip
    if n_bad == len(results):
        raise SystemExit("error: no input could be transcribed")
    return results


def write_results(results: list[dict], path: Path, fmt: str) -> Path:
    """JSONL (every field), CSV (one column per field) or text (one transcript per line, empty on error)."""
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
        writer.writerows(results)
    return path


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg)
    except HubUnavailableError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
