# python predict.py ckpt_path=logs/train/runs/<run>/hf_model inputs=[clip.wav,some_dir/,manifest.jsonl]
"""Transcribe files, globs, folders and manifests with a checkpoint, an exported model or a Hub id.

Writes JSONL (default), CSV or plain text; with references (manifests), also WER/CER and the per-utterance
report and error analysis of training's test stage.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
import jiwer
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from asr_lightning.analysis import error_analysis, write_analysis
from asr_lightning.decode import BeamDecoder, plot_grid
from asr_lightning.hub import HubUnavailableError
from asr_lightning.scoring import utterance_records, write_jsonl
from asr_lightning.transcribe import dataset_utterances, expand_inputs, load_model, transcribe, tune_lm

log = logging.getLogger("predict")
FORMATS = ("jsonl", "csv", "txt")


def predict(cfg: DictConfig) -> list[dict]:
    output = Path(cfg.output)
    fmt = cfg.format or output.suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} (from output={output}) must be one of {list(FORMATS)}: set format=")
    if cfg.tune_lm:  # before anything loads
        if not cfg.decoder.get("lm_path"):
            raise ValueError("tune_lm=true tunes a language model's weights: give decoder=beam decoder.lm_path=<lm>")
        if cfg.get("data") and cfg.split != "validation":
            raise ValueError(
                f"tune_lm=true with split={cfg.split}: tune the LM weights on the validation split only"
                " (split=validation), then score test with the best decoder.alpha and decoder.beta; tuning on test"
                " would overstate its WER"
            )
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    precision = resolve_precision(str(cfg.precision), device)
    model, processor = load_model(cfg.ckpt_path, device=device)
    decoder = hydra.utils.instantiate(cfg.decoder, tokenizer=processor.tokenizer, _convert_="all")
    inputs = expand_inputs(cfg.inputs)
    if cfg.get("data"):  # a split of a training data config: the utterances training's test stage scores
        inputs += dataset_utterances(hydra.utils.instantiate(cfg.data, output_dir=None), cfg.split)
    if not inputs:
        raise SystemExit(f"error: no audio found in inputs={list(cfg.inputs)} (or give data=<config> split=<name>)")
    batching = {
        "batch_size": cfg.batch_size,
        "max_batch_seconds": cfg.max_batch_seconds,
        "chunk_s": cfg.chunk_s,
        "stride_s": cfg.stride_s,
        "precision": precision,
    }
    if cfg.tune_lm:
        tune(model, processor, inputs, decoder, cfg, output, batching)

    start = time.perf_counter()
    results = transcribe(model, processor, inputs, decoder=decoder, timestamps=cfg.timestamps, **batching)
    wall = time.perf_counter() - start
    scored = [r for r in results if "text" in r and "reference" in r]
    if scored:  # the same per-utterance fields and analysis as training's test stage
        rows = utterance_records([{**r, "hypothesis": r["text"]} for r in scored])
        write_analysis(error_analysis(rows), output.parent, f"{output.stem}.analysis")  # by every metadata column
        by_id = {r["id"]: {k: v for k, v in r.items() if k != "hypothesis"} for r in rows}
        results = [by_id.get(r["id"], r) if "text" in r else r for r in results]
    for r in results:
        print(f"{r['path'] or r['id']}\t{r.get('text', 'ERROR: ' + r.get('error', ''))}")
    write_results(results, output, fmt)

    n_bad = sum("error" in r for r in results)
    audio_s = sum(r.get("duration_s", 0.0) for r in results)
    log.info("wrote %s: %d transcribed, %d failed", output, len(results) - n_bad, n_bad)
    log.info("%.1f s of audio in %.1f s: real-time factor %.4f (%s, %s, %s decoding)", audio_s, wall,
             wall / max(audio_s, 1e-9), device, precision, type(decoder).__name__)  # fmt: skip
    if scored:
        refs, hyps = [r["reference"] for r in scored], [r["text"] for r in scored]
        log.info("WER %.4f, CER %.4f over %d utterances with references", jiwer.wer(refs, hyps), jiwer.cer(refs, hyps),
                 len(scored))  # fmt: skip
    if n_bad == len(results):
        raise SystemExit("error: no input could be transcribed")
    return results


def resolve_precision(precision: str, device: str) -> str:
    """`auto`: bf16 autocast on a GPU that has it (Ampere and later), fp32 elsewhere."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "32"


def tune(model, processor, inputs: list, decoder: BeamDecoder, cfg: DictConfig, output: Path, batching: dict) -> dict:
    """Grid-search alpha and beta, leave the decoder at the best, and write `<output>.lm_grid.{json,png}`."""
    if not cfg.get("data"):
        log.warning("tuning the LM weights on %s: it must be held-out validation data, never the test set",
                    list(cfg.inputs))  # fmt: skip
    grid = tune_lm(model, processor, inputs, decoder, cfg.lm_grid.alpha, cfg.lm_grid.beta, **batching)
    path = output.with_suffix(".lm_grid.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(grid, indent=2) + "\n", encoding="utf-8")
    plot_grid(grid, output.with_suffix(".lm_grid.png"))
    best = grid["best"]
    log.info("LM weights over %d utterances: best decoder.alpha=%s decoder.beta=%s (WER %.4f, CER %.4f); grid in %s",
             grid["utterances"], best["alpha"], best["beta"], best["wer"], best["cer"], path)  # fmt: skip
    return grid


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
        # words (timestamps) as a JSON list in their cell
        writer.writerows({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()} for r in results)
    return path


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg)
    except (HubUnavailableError, InstantiationException) as err:  # offline Hub; a decoder's missing extra or LM file
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
