# python train.py experiment=demo
"""Fine-tune, evaluate and export a wav2vec2 CTC model; returns the metric a sweeper optimises."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from asr_lightning.hub import HubUnavailableError
from asr_lightning.scoring import utterance_records, write_jsonl

log = logging.getLogger("train")


def mixed_precision() -> str:
    """bf16 where the GPU has it, fp16 on older GPUs, fp32 on CPU."""
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


OmegaConf.register_new_resolver("mixed_precision", mixed_precision, replace=True)


def train(cfg: DictConfig) -> dict[str, float | str]:
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)

    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup()  # the vocab comes from the data (train split or pretrained tokenizer)
    model = hydra.utils.instantiate(
        cfg.model, vocab=datamodule.vocab, feature_extractor=datamodule.feature_extractor.to_dict()
    )
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [hydra.utils.instantiate(lg) for lg in (cfg.get("logger") or {}).values()]
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.perf_counter()
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics: dict[str, float | str] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics["train_time_s"] = round(time.perf_counter() - start, 1)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    metrics["best_checkpoint"] = best

    if cfg.test:
        ckpt = best or (None if cfg.train else cfg.ckpt_path)
        test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt)[0]
        metrics.update({k: float(v) for k, v in test_metrics.items()})
        if trainer.is_global_zero:
            rows = utterance_records(model.test_records, datamodule.metadata["test"])
            write_jsonl(out_dir / "predictions" / "test.jsonl", rows)
    elif best:
        model = type(model).from_checkpoint(best)

    if trainer.is_global_zero and not trainer.fast_dev_run:
        metrics["hf_model"] = str(model.export(out_dir / "hf_model"))
    metrics["data"] = {s: {k: r[k] for k in ("rows", "kept", "hours", "skipped")} for s, r in datamodule.report.items()}
    if trainer.is_global_zero:
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        log.info("metrics: %s", json.dumps({k: v for k, v in metrics.items() if "/" in k}))
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except HubUnavailableError as err:
        raise SystemExit(f"error: {err}") from None
    value = metrics.get(cfg.optimized_metric)
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
