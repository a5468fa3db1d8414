# python train.py logger=wandb   (the prediction tables below are in callbacks=default)
"""Experiment tracking beyond scalars: W&B prediction tables, and finishing runs between sweep jobs."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from asr_lightning.analysis import error_analysis
from asr_lightning.scoring import utterance_records


class PredictionTables(L.Callback):
    """Log W&B tables: a fixed sample of validation clips at each validation, all test predictions at the end.

    Does nothing unless a `WandbLogger` is among the trainer's loggers (it is cheap to keep on).

    Args:
        num_samples: validation clips per table; the same clips every time, so rows can be compared over steps.
        seed: picks those clips (independent of the training seed).
        log_audio: add an audio player column to the validation table.
        log_test: log the full test predictions and WER per metadata value after testing.
    """

    def __init__(self, num_samples: int = 16, seed: int = 0, log_audio: bool = True, log_test: bool = True) -> None:
        if num_samples < 0:
            raise ValueError(f"callbacks.prediction_tables.num_samples must be >= 0, got {num_samples}")
        self.num_samples, self.seed, self.log_audio, self.log_test = num_samples, seed, log_audio, log_test
        self._sample: dict[str, int] | None = None  # clip id -> row of the preprocessed validation split

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = wandb_logger(trainer.loggers)
        if logger is None or trainer.sanity_checking or not trainer.is_global_zero or self.num_samples == 0:
            return
        dm = trainer.datamodule
        split = dm.splits["validation"]
        if self._sample is None:
            ids = split["id"]
            picked = sorted(random.Random(self.seed).sample(range(len(ids)), min(self.num_samples, len(ids))))
            self._sample = {ids[i]: i for i in picked}
        records = [r for r in pl_module.val_records if r["id"] in self._sample]
        rows = utterance_records(records, dm.metadata["validation"])
        meta = dm.metadata_columns
        columns = ["id", *(["audio"] if self.log_audio else []), "reference", "hypothesis", "wer", "cer", *meta]
        data = []
        for r in rows:
            audio = [self._audio(split[self._sample[r["id"]]]["input_values"], dm)] if self.log_audio else []
            data.append([r["id"], *audio, r["reference"], r["hypothesis"], r["wer"], r["cer"], *(r[c] for c in meta)])
        logger.log_table("val/predictions", columns=columns, data=data, step=trainer.global_step)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = wandb_logger(trainer.loggers)
        if logger is None or not trainer.is_global_zero or not self.log_test or not pl_module.test_records:
            return
        dm = trainer.datamodule
        rows = utterance_records(pl_module.test_records, dm.metadata["test"])
        columns = ["id", "reference", "hypothesis", "wer", "cer", "substitutions", "deletions", "insertions",
                   *dm.metadata_columns]  # fmt: skip
        logger.log_table("test/predictions", columns=columns, data=[[r[c] for c in columns] for r in rows])
        analysis = error_analysis(rows, dm.metadata_columns)
        for col in dm.metadata_columns:
            stats = analysis[f"by_{col}"]
            logger.log_table(
                f"test/wer_by_{col}",
                columns=[col, "utterances", "ref_words", "substitutions", "deletions", "insertions", "wer"],
                data=[[v, *(s[k] for k in ("utterances", "ref_words", "substitutions", "deletions", "insertions",
                                           "wer"))] for v, s in stats.items()],
            )  # fmt: skip

    @staticmethod
    def _audio(values: Sequence[float], dm: Any) -> Any:
        import wandb

        x = np.asarray(values, dtype=np.float32)  # normalised to unit variance: rescale to a playable peak
        return wandb.Audio(0.9 * x / max(float(np.abs(x).max()), 1e-6), sample_rate=dm.feature_extractor.sampling_rate)


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed run keeps the curve logged before it.

    Lightning's deletes `metrics.csv` when its folder exists. Here the earlier rows stay, up to the first
    step the resumed run logs (the rows after its checkpoint are logged again, identically).
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir)
        return self._experiment


class _KeepingWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        path = Path(log_dir) / self.NAME_METRICS_FILE
        self._earlier: list[dict[str, str]] = []
        if path.is_file():
            with path.open(newline="") as f:
                self._earlier = list(csv.DictReader(f))
        super().__init__(log_dir)  # deletes the file

    def save(self) -> None:
        if self._earlier and self.metrics:
            first = min(int(m["step"]) for m in self.metrics)
            kept = [r for r in self._earlier if r.get("step") and int(float(r["step"])) < first]
            self._earlier = []
            if kept:
                self.metrics_keys = sorted({k for r in kept for k in r})
                with open(self.metrics_file_path, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                    writer.writeheader()
                    writer.writerows(kept)
        super().save()


def wandb_logger(loggers: Iterable[Logger]) -> WandbLogger | None:
    return next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)


def finish_wandb(loggers: Iterable[Logger], failed: bool) -> None:
    """End this job's W&B run, so the next job of a multirun (same process) starts a run of its own."""
    logger = wandb_logger(loggers)
    if logger is not None and logger._experiment is not None:  # never create a run just to close it
        logger.experiment.finish(exit_code=1 if failed else 0)
