# python predict.py ckpt_path=logs/train/runs/<run>/hf_model inputs=[clip.wav,some_dir/]
"""Transcribe audio files and folders with a checkpoint or an exported model; writes JSONL."""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
import torch
from omegaconf import DictConfig

from asr_lightning.hub import HubUnavailableError
from asr_lightning.scoring import write_jsonl
from asr_lightning.transcribe import expand_inputs, load_model, transcribe

log = logging.getLogger("predict")


def predict(cfg: DictConfig) -> list[dict]:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    model, processor = load_model(cfg.ckpt_path, device=device)
    files = expand_inputs(cfg.inputs)
    if not files:
        raise SystemExit(f"error: no audio files found in inputs={list(cfg.inputs)}")
    results = transcribe(model, processor, files, batch_size=cfg.batch_size)
    for r in results:
        print(f"{r['path']}\t{r.get('text', 'ERROR: ' + r.get('error', ''))}")
    write_jsonl(cfg.output, results)
    n_bad = sum("error" in r for r in results)
    log.info("wrote %s: %d transcribed, %d failed", cfg.output, len(results) - n_bad, n_bad)
    if n_bad == len(results):
        raise SystemExit("error: no input could be transcribed")
    return results


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg)
    except HubUnavailableError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
