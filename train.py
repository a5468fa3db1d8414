# python train.py experiment=demo
"""Fine-tune, evaluate and export a CTC model; returns the metric a sweeper optimises.

The recipe: seed -> data -> model -> callbacks and loggers -> trainer -> fit -> score -> export -> metrics.
Launching (resolvers, resume, multirun isolation, the failure policy) is `asr_lightning.launch`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from asr_lightning import launch, preflight, provenance
from asr_lightning.analysis import error_analysis, write_analysis
from asr_lightning.scoring import utterance_records, write_jsonl
from asr_lightning.tracking import finish_wandb

log = logging.getLogger("train")
ROOT = Path(__file__).resolve().parent


def train(cfg: DictConfig) -> dict[str, float | str]:
    launch.check_config(cfg)  # everything that can reject the config, before any download
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    ckpt_path = launch.resume_checkpoint(cfg.ckpt_path, out_dir, cfg.trainer.max_steps if cfg.train else None)

    datamodule = hydra.utils.instantiate(cfg.data)
    if cfg.dry_run:  # the data only: what the run would train and score on, and for how long; then stop
        datamodule.setup()
        return preflight.dry_run(cfg, datamodule, out_dir)
    log.info(preflight.describe_batch(preflight.effective_batch(cfg)))
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [hydra.utils.instantiate(lg) for lg in (cfg.get("logger") or {}).values()]
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

    datamodule.setup()  # the vocab comes from the data (train split or pretrained tokenizer)
    if cfg.test and not len(datamodule.splits["test"]):  # found before training, not after it
        raise launch.ConfigError("the test split is empty (data.test_fraction=0, or too little data): set test=false")
    model = hydra.utils.instantiate(
        cfg.model, vocab=datamodule.vocab, feature_extractor=datamodule.feature_extractor.to_dict()
    )
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)  # present when composed by the tests
    prov = provenance.collect(ROOT, datamodule.identity, out_dir / "splits.json")
    if ckpt_path and (out_dir / "provenance.json").exists():  # a resumed run: keep what the first part ran on
        prov["before_resume"] = json.loads((out_dir / "provenance.json").read_text())
    if trainer.is_global_zero:
        (out_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(resolved))
        (out_dir / "provenance.json").write_text(json.dumps(prov, indent=1))
    for lg in loggers:  # the W&B run config: the resolved config plus provenance
        lg.log_hyperparams({**resolved, "provenance": prov})

    try:
        metrics = fit_test_export(cfg, trainer, model, datamodule, out_dir, ckpt_path)
    except BaseException:
        finish_wandb(loggers, failed=True)
        raise
    finish_wandb(loggers, failed=False)
    metrics["seed"] = cfg.seed
    metrics["metadata_columns"] = list(datamodule.metadata_columns)
    metrics["eval_sets"] = datamodule.eval_sets  # the first of each is val/wer, test/wer
    metrics["overrides"] = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    counts = ("rows", "kept", "hours", "skipped")
    metrics["data"] = {
        s: {**{k: r[k] for k in counts}, "sets": {n: {k: c[k] for k in counts} for n, c in r.get("sets", {}).items()}}
        for s, r in datamodule.report.items()
    }
    metrics["provenance"] = prov
    if trainer.is_global_zero:
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        log.info("metrics: %s", json.dumps({k: v for k, v in metrics.items() if "/" in k}))
    return metrics


def fit_test_export(
    cfg: DictConfig, trainer: L.Trainer, model, datamodule, out_dir: Path, ckpt_path: str | None
) -> dict:
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics: dict = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics["train_time_s"] = round(model.train_time_s, 1)  # every part of a resumed run
    best_callback = trainer.checkpoint_callback
    best = best_callback.best_model_path if best_callback else ""
    if best and "val/wer_best" not in metrics and best_callback.best_model_score is not None:
        metrics["val/wer_best"] = float(best_callback.best_model_score)  # a resume with no step left to train
    metrics["best_checkpoint"] = best
    ckpt = best or (None if cfg.train else ckpt_path)  # what is scored: the best, or the given checkpoint

    if cfg.validate:
        metrics |= score(trainer, model, datamodule, "validation", ckpt, out_dir)
    if cfg.test:
        metrics |= score(trainer, model, datamodule, "test", ckpt, out_dir)
    elif best:
        model = type(model).from_checkpoint(best)

    if trainer.is_global_zero and not trainer.fast_dev_run:
        metrics["hf_model"] = str(model.export(out_dir / "hf_model"))
    return metrics


def score(trainer: L.Trainer, model, datamodule, split: str, ckpt: str | None, out_dir: Path) -> dict[str, float]:
    """Validate or test `ckpt`; rank 0 writes `predictions/<split>.jsonl` and `analysis/<split>.{json,md}`, and
    with several sets also `predictions/<split>/<set>.jsonl` and `analysis/<split>/<set>.{json,md}`."""
    run, records = (trainer.test, "test_records") if split == "test" else (trainer.validate, "val_records")
    results = {k: float(v) for k, v in run(model, datamodule=datamodule, ckpt_path=ckpt)[0].items()}
    if trainer.is_global_zero:
        rows = utterance_records(getattr(model, records), datamodule.metadata[split])
        sets = datamodule.eval_sets[split]
        columns = [*datamodule.metadata_columns, *(["set"] if len(sets) > 1 else [])]
        write_jsonl(out_dir / "predictions" / f"{split}.jsonl", rows)
        if rows:  # S/D/I totals, WER per metadata value (and per set), frequent confusions
            write_analysis(error_analysis(rows, columns), out_dir / "analysis", split)
        for name in sets if len(sets) > 1 else []:
            mine = [r for r in rows if r.get("set") == name]
            write_jsonl(out_dir / "predictions" / split / f"{name}.jsonl", mine)
            if mine:
                write_analysis(error_analysis(mine, datamodule.metadata_columns), out_dir / "analysis" / split, name)
    return results


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return launch.run_task(train, cfg)


if __name__ == "__main__":
    launch.register_resolvers()
    sys.argv = launch.resume_argv(sys.argv, ROOT / "conf")
    main()
