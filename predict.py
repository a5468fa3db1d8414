# python predict.py ckpt_path=logs/train/runs/<run>/hf_model inputs=[clip.wav,some_dir/,manifest.jsonl]
"""Transcribe files, globs, folders and manifests with a checkpoint, an exported model or a Hub id.

The recipe: check -> model and decoder -> inputs -> (tune the LM) -> transcribe -> score -> write. Writes JSONL
(default), CSV or plain text; with references (manifests, data splits), also WER/CER and the per-utterance
report and error analysis of training's test stage.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from asr_lightning.analysis import score_transcripts
from asr_lightning.errors import ConfigError, EncoderLoadError
from asr_lightning.hub import HubUnavailableError
from asr_lightning.inputs import InputError, dataset_inputs, expand_inputs
from asr_lightning.plots import plot_grid
from asr_lightning.precision import resolve_precision
from asr_lightning.scoring import check_output, summarize_transcripts, write_transcripts
from asr_lightning.transcribe import load_model, transcribe, tune_lm

log = logging.getLogger("predict")


def predict(cfg: DictConfig) -> list[dict]:
    output = Path(cfg.output)
    fmt = check_args(cfg, output)  # before anything loads
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    precision = resolve_precision(str(cfg.precision), device)
    model, processor = load_model(cfg.ckpt_path, device=device, adapter=cfg.adapter)
    decoder = hydra.utils.instantiate(cfg.decoder, tokenizer=processor.tokenizer, _convert_="all")

    inputs = expand_inputs(cfg.inputs)
    if cfg.get("data"):  # a split of a training data config: the utterances training's test stage scores
        inputs += dataset_inputs(hydra.utils.instantiate(cfg.data, output_dir=None), cfg.split)
    if not inputs:
        raise SystemExit(f"error: no audio found in inputs={list(cfg.inputs)} (or give data=<config> split=<name>)")
    batching = {"batch_size": cfg.batch_size, "max_batch_seconds": cfg.max_batch_seconds, "chunk_s": cfg.chunk_s,
                "stride_s": cfg.stride_s, "precision": precision}  # fmt: skip

    if cfg.tune_lm:  # leaves the decoder at the best alpha and beta
        if not cfg.get("data"):
            log.warning("tuning the LM weights on %s: it must be held-out validation data, never the test set",
                        list(cfg.inputs))  # fmt: skip
        grid = tune_lm(model, processor, inputs, decoder, cfg.lm_grid.alpha, cfg.lm_grid.beta, **batching)
        path = output.with_suffix(".lm_grid.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(grid, indent=2) + "\n", encoding="utf-8")
        plot_grid(grid, output.with_suffix(".lm_grid.png"))
        best = grid["best"]
        log.info("LM weights over %d utterances: best decoder.alpha=%s decoder.beta=%s (WER %.4f, CER %.4f) in %s",
                 grid["utterances"], best["alpha"], best["beta"], best["wer"], best["cer"], path)  # fmt: skip

    start = time.perf_counter()
    results = transcribe(model, processor, inputs, decoder=decoder, timestamps=cfg.timestamps, **batching)
    wall = time.perf_counter() - start
    # per-utterance WER fields, and `<output>.analysis.{json,md}` by every metadata column
    results = score_transcripts(results, output.parent, f"{output.stem}.analysis")
    for r in results:
        print(f"{r['path'] or r['id']}\t{r.get('text', 'ERROR: ' + r.get('error', ''))}")
    write_transcripts(results, output, fmt)

    summary = summarize_transcripts(results, wall)
    log.info("wrote %s: %d transcribed, %d failed", output, summary["transcribed"], summary["failed"])
    log.info("%.1f s of audio in %.1f s: real-time factor %.4f (%s, %s, %s decoding)", summary["audio_s"], wall,
             summary["rtf"], device, precision, type(decoder).__name__)  # fmt: skip
    if summary["scored"]:
        log.info("WER %.4f, CER %.4f over %d utterances with references", summary["wer"], summary["cer"],
                 summary["scored"])  # fmt: skip
    if not summary["transcribed"]:
        raise SystemExit("error: no input could be transcribed")
    return results


def check_args(cfg: DictConfig, output: Path) -> str:
    """The output format; rejects impossible settings, and an output that cannot be written, before any work."""
    try:
        fmt = check_output(output, cfg.format)
        resolve_precision(str(cfg.precision))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for key, low in [("batch_size", 1), ("max_batch_seconds", 1e-9), ("chunk_s", 1e-9), ("stride_s", 0)]:
        if cfg[key] is not None and not (isinstance(cfg[key], int | float) and cfg[key] >= low):
            raise ConfigError(f"{key}={cfg[key]!r}: must be a number >= {low:g}")
    if cfg.tune_lm and not cfg.decoder.get("lm_path"):
        raise ConfigError("tune_lm=true tunes a language model's weights: give decoder=beam decoder.lm_path=<lm>")
    if cfg.tune_lm and cfg.get("data") and cfg.split != "validation":
        raise ConfigError(
            f"tune_lm=true with split={cfg.split}: tune the LM weights on the validation split only"
            " (split=validation), then score test with the best decoder.alpha and decoder.beta; tuning on test"
            " would overstate its WER"
        )
    return fmt


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg)
    # a bad setting or input; the offline Hub; a decoder's missing package or LM file
    except (ConfigError, InputError, HubUnavailableError, EncoderLoadError, InstantiationException) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
