# python train.py logger=wandb   (or logger=csv; the W&B prediction tables are callbacks.PredictionTables)
"""Loggers: a CSV logger that keeps a resumed run's earlier rows, finding the W&B logger, and finishing W&B runs
between sweep jobs."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


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
