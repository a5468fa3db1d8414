# python train.py callbacks=default   (every callback below is in it)
"""The package's Lightning callbacks: the checkpoint written on a crash, validation from a step on, training
throughput, W&B prediction tables."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.throughput import get_available_flops
from lightning.pytorch.callbacks import ModelCheckpoint

from asr_lightning.analysis import error_analysis
from asr_lightning.scoring import utterance_records
from asr_lightning.throughput import clips_flops, flops_coefficients, trains_feature_encoder
from asr_lightning.tracking import wandb_logger

log = logging.getLogger(__name__)
# the compute dtype of each Lightning precision setting, for the peak-FLOP/s table
_PRECISION_DTYPE = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16}


class ExceptionCheckpoint(L.Callback):
    """Write `<dirpath>/<filename>.ckpt` when fit dies of an exception (SIGTERM, too many non-finite steps,
    Ctrl-C, a bug); removed again when a run ends normally.

    Lightning's `OnExceptionCheckpoint` does the same, but its presence also turns `fit(ckpt_path=None)` into
    `ckpt_path="last"`: a new run in a dir that has a `last.ckpt` would silently resume it. Here `ckpt_path`
    means what it says (`last` to resume, null for a fresh start).

    Args:
        dirpath: the checkpoint folder.
        filename: the file name without `.ckpt`.
    """

    def __init__(self, dirpath: str | Path, filename: str = "on_exception") -> None:
        if not filename:
            raise ValueError("callbacks.on_exception.filename cannot be empty")
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self._start_step: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_step = trainer.global_step  # after a resume's restore

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Only a run that got further than where it started has something to save. A failed restore (a
        # checkpoint that does not load, an override that does not fit it) has not: its step-0 checkpoint would
        # be newer than the run's real ones, and the next resume would restart from zero over them.
        if trainer.state.fn != "fit" or self._start_step is None or trainer.global_step <= self._start_step:
            return
        try:
            trainer.save_checkpoint(self.path)
        except Exception as err:  # e.g. a full disk: keep the exception that stopped the run the one reported
            log.error("could not write %s (%s); the run stopped because of: %r", self.path, err, exception)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            trainer.strategy.remove_checkpoint(self.path)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint`, for a run dir that may be moved or copied before it is resumed.

    A checkpoint records its callback's folder and best/last checkpoint files as absolute paths. Resumed from
    another place, Lightning keeps the old `best_model_path`, so the test stage would score the original run's
    file (or fail where it was moved away). Here the files of the recorded folder are taken as the same files in
    this run's folder. The state key stays `ModelCheckpoint`'s, so checkpoints of either class resume.
    """

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and Path(old) != Path(self.dirpath):

            def moved(path: Any) -> Any:
                here = Path(self.dirpath) / Path(path).name
                return str(here) if path and Path(path).parent == Path(old) else path

            state_dict = dict(state_dict, dirpath=self.dirpath)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                state_dict[key] = moved(state_dict.get(key, ""))
            state_dict["best_k_models"] = {moved(k): v for k, v in state_dict.get("best_k_models", {}).items()}
        super().load_state_dict(state_dict)


class ValidateFrom(L.Callback):
    """No validation before optimiser step `step` (fairseq's `validate_after_updates`): the recipes whose first
    10,000 updates train the CTC head alone validate only once the encoder trains, as fairseq does.

    Lightning has no such setting; `trainer.limit_val_batches = 0` is how it turns validation off, so it is 0
    until the step, then what it was. It depends on the global step only: a resumed run validates as an
    uninterrupted one.

    Args:
        step: the first optimiser step after which validation may run; 0: from the start.
    """

    def __init__(self, step: int = 0) -> None:
        if step < 0:
            raise ValueError(f"callbacks.validate_from.step must be >= 0, got {step}")
        self.step = step
        self._limit: int | float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._limit = trainer.limit_val_batches
        self._apply(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._apply(trainer)  # before the loop decides whether to validate after this batch

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._limit is not None:  # the scoring after fit validates and tests in full
            trainer.limit_val_batches = self._limit

    def _apply(self, trainer: L.Trainer) -> None:
        if self._limit is not None:
            trainer.limit_val_batches = 0 if trainer.global_step < self.step else self._limit


class ThroughputLogger(L.Callback):
    """Logs training speed from host-side batch sizes, synchronising the GPU once per window only.

    Lightning's `ThroughputMonitor` calls `torch.cuda.synchronize()` after every batch (which stops the host
    from queueing the next step while the GPU works) and assumes equal FLOPs per batch; duration-bucketed
    batches differ in size, so this one counts each batch's clips (FLOPs from `throughput.flops_coefficients`).

    Every `every_n_batches` training batches (world totals for rates, per device for FLOP/s and MFU):
    `train/samples_per_sec`, `train/audio_sec_per_sec`, `train/tflops_per_sec`, `train/mfu` (when the
    device's peak is known). Per epoch: `train/padding_efficiency` (real / padded audio of the batches fed)
    and `train/epoch_audio_sec_per_sec`. Validation time is not counted.

    Args:
        every_n_batches: batches per measurement window.
        peak_flops: the device's peak FLOP/s for MFU; None: Lightning's table for the GPU and precision
            (none for CPUs, so no MFU there).
    """

    def __init__(self, every_n_batches: int = 20, peak_flops: float | None = None) -> None:
        self.every_n_batches = every_n_batches
        self.peak_flops = peak_flops
        self.coefficients: tuple[float, float] = (0.0, 0.0)
        self.sampling_rate = 16000
        self._window = _Counts()
        self._epoch = _Counts()
        self._t0: float | None = None
        self._audio_rate = 0.0  # of the latest window, for the progress bar
        self._batches = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        model = pl_module.model
        trains_cnn = trains_feature_encoder(model)
        self.coefficients = flops_coefficients(model.config, train_feature_encoder=trains_cnn)
        self.sampling_rate = pl_module.processor.feature_extractor.sampling_rate
        if self.peak_flops is None:
            dtype = _PRECISION_DTYPE.get(str(trainer.precision), torch.float32)
            self.peak_flops = get_available_flops(trainer.strategy.root_device, dtype)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = _Counts()
        self._restart(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        lengths = batch["num_samples"]  # host ints: counting needs no sync
        seconds = [n / self.sampling_rate for n in lengths]
        counts = _Counts(
            samples=len(lengths),
            audio_s=sum(seconds),
            padded_s=len(lengths) * max(seconds),
            flops=clips_flops(self.coefficients, seconds),
        )
        self._window += counts
        self._epoch += counts
        self._batches += 1  # across epochs: a window may span an epoch's end
        if self._batches % self.every_n_batches == 0:
            self._close_window(trainer)
            rates = self._rates(trainer, self._window)
            self._audio_rate = rates["train/audio_sec_per_sec"]
            self._log(trainer, rates)
            self._window = _Counts()
        if self._audio_rate:
            pl_module.log("train/audio_sec_per_sec", self._audio_rate, prog_bar=True, logger=False)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_window(trainer)  # pause the clock while validating

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restart(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_window(trainer)
        totals = self._reduce(trainer, self._epoch)
        if totals.padded_s > 0:
            pl_module.log("train/padding_efficiency", totals.audio_s / totals.padded_s)
            pl_module.log("train/epoch_audio_sec_per_sec", totals.audio_s / max(self._epoch.time, 1e-9))

    # ---------------------------------------------------------------- helpers

    def _restart(self, trainer: L.Trainer) -> None:
        _synchronize(trainer)
        self._t0 = time.perf_counter()

    def _close_window(self, trainer: L.Trainer) -> None:
        if self._t0 is None:
            return
        _synchronize(trainer)
        now = time.perf_counter()
        self._window.time += now - self._t0
        self._epoch.time += now - self._t0
        self._t0 = now

    def _rates(self, trainer: L.Trainer, window: _Counts) -> dict[str, float]:
        totals = self._reduce(trainer, window)
        seconds = max(window.time, 1e-9)
        device_flops = totals.flops / trainer.world_size / seconds
        rates = {
            "train/samples_per_sec": totals.samples / seconds,
            "train/audio_sec_per_sec": totals.audio_s / seconds,
            "train/tflops_per_sec": device_flops / 1e12,
        }
        if self.peak_flops:
            rates["train/mfu"] = device_flops / self.peak_flops
        return rates

    @staticmethod
    def _reduce(trainer: L.Trainer, counts: _Counts) -> _Counts:
        if trainer.world_size == 1:
            return counts
        values = torch.tensor([counts.samples, counts.audio_s, counts.padded_s, counts.flops], dtype=torch.float64)
        summed = trainer.strategy.reduce(values.to(trainer.strategy.root_device), reduce_op="sum").tolist()
        return _Counts(*summed, time=counts.time)

    @staticmethod
    def _log(trainer: L.Trainer, metrics: dict[str, float]) -> None:
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)


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
        # the sample is drawn from all validation sets together: a `set` column says which each clip is of
        meta = [*dm.metadata_columns, *(["set"] if len(dm.eval_sets["validation"]) > 1 else [])]
        columns = ["id", *(["audio"] if self.log_audio else []), "reference", "hypothesis", "wer", "cer", *meta]
        clips = dm.dataset("validation")
        data = []
        for r in rows:
            audio = [self._audio(clips.audio(self._sample[r["id"]]), dm)] if self.log_audio else []
            data.append([r["id"], *audio, r["reference"], r["hypothesis"], r["wer"], r["cer"], *(r[c] for c in meta)])
        logger.log_table("val/predictions", columns=columns, data=data, step=trainer.global_step)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = wandb_logger(trainer.loggers)
        if logger is None or not trainer.is_global_zero or not self.log_test or not pl_module.test_records:
            return
        dm = trainer.datamodule
        everything = utterance_records(pl_module.test_records, dm.metadata["test"])
        sets = dm.eval_sets["test"]
        for name, key in zip(sets, dm.set_keys("test"), strict=True):  # a table per set: test/<set>/predictions
            rows = [r for r in everything if r.get("set", name) == name]
            self._log_test_tables(logger, rows, dm.metadata_columns, f"test/{key}/" if key else "test/")

    @staticmethod
    def _log_test_tables(logger: Any, rows: list[dict[str, Any]], metadata_columns: list[str], prefix: str) -> None:
        columns = ["id", "reference", "hypothesis", "wer", "cer", "substitutions", "deletions", "insertions",
                   *metadata_columns]  # fmt: skip
        logger.log_table(f"{prefix}predictions", columns=columns, data=[[r[c] for c in columns] for r in rows])
        analysis = error_analysis(rows, metadata_columns)
        for col in metadata_columns:
            stats = analysis[f"by_{col}"]
            logger.log_table(
                f"{prefix}wer_by_{col}",
                columns=[col, "utterances", "ref_words", "substitutions", "deletions", "insertions", "wer"],
                data=[[v, *(s[k] for k in ("utterances", "ref_words", "substitutions", "deletions", "insertions",
                                           "wer"))] for v, s in stats.items()],
            )  # fmt: skip

    @staticmethod
    def _audio(values: Sequence[float], dm: Any) -> Any:
        import wandb

        x = np.asarray(values, dtype=np.float32)  # rescaled to a playable peak
        return wandb.Audio(0.9 * x / max(float(np.abs(x).max()), 1e-6), sample_rate=dm.feature_extractor.sampling_rate)


@dataclass
class _Counts:
    """What a window or an epoch of training batches held, and how long it took."""

    samples: float = 0
    audio_s: float = 0.0
    padded_s: float = 0.0
    flops: float = 0.0
    time: float = 0.0

    def __iadd__(self, other: _Counts) -> _Counts:
        self.samples += other.samples
        self.audio_s += other.audio_s
        self.padded_s += other.padded_s
        self.flops += other.flops
        return self


def _synchronize(trainer: L.Trainer) -> None:
    # only at window ends: the timer must see the GPU's queued work finish
    if trainer.strategy.root_device.type == "cuda":
        torch.cuda.synchronize(trainer.strategy.root_device)
