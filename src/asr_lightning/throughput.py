# python train.py callbacks.throughput.every_n_batches=20   (in callbacks=default)
"""Training throughput: samples/s, audio-seconds/s, model FLOP/s and MFU, and padding efficiency.

FLOPs are counted, not guessed: `torch.utils.flop_counter` runs one forward + backward of the run's own
architecture on the meta device (no memory, no time) at two clip lengths and fits
`flops(s) = a * s + b * s**2` for a clip of `s` seconds (the quadratic term is self-attention). Only the
parameters that train get weight gradients, so a frozen CNN is counted as frozen. wav2vec2-base with a frozen
feature encoder comes to about 40 GFLOP per audio-second (fine-tuning it all: about 50). These are model
FLOPs of the real audio: padding, recomputation under gradient checkpointing and layerdrop's skipped layers
are not counted, so MFU measures useful work (the PaLM definition).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.throughput import get_available_flops
from lightning.pytorch.callbacks import Callback
from torch.utils.flop_counter import FlopCounterMode
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

# the compute dtype of each Lightning precision setting, for the peak-FLOP/s table
_PRECISION_DTYPE = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16}


def flops_coefficients(
    config: Wav2Vec2Config, train_feature_encoder: bool = False, training: bool = True, seconds: float = 5.0
) -> tuple[float, float]:
    """Coefficients `(a, b)` of the FLOPs of one clip of `s` seconds, `a * s + b * s**2`.

    Args:
        config: the model's architecture.
        train_feature_encoder: whether the CNN feature encoder gets gradients (False: frozen).
        training: forward + backward (True) or forward only (inference).
        seconds: the shorter of the two clip lengths measured (the other is twice as long).
    """
    counts = [_count(config, train_feature_encoder, training, s) for s in (seconds, 2 * seconds)]
    # f(s) = a s + b s^2 at s and 2s:  f(2s) - 2 f(s) = 2 b s^2
    b = (counts[1] - 2 * counts[0]) / (2 * seconds**2)
    a = (counts[0] - b * seconds**2) / seconds
    return a, b


def clips_flops(coefficients: tuple[float, float], seconds: Iterable[float]) -> float:
    """FLOPs of clips of these durations, from `flops_coefficients`."""
    a, b = coefficients
    return sum(a * s + b * s * s for s in seconds)


def _count(config: Wav2Vec2Config, train_feature_encoder: bool, training: bool, seconds: float) -> float:
    cfg = Wav2Vec2Config(**{**config.to_dict(), "layerdrop": 0.0, "apply_spec_augment": False})
    cfg._attn_implementation = "sdpa"  # the same FLOPs as eager or flash-attention; it runs on meta tensors
    with torch.device("meta"):
        model = Wav2Vec2ForCTC(cfg)
        audio = torch.zeros(1, int(seconds * 16000))
    model.train(training)
    if not train_feature_encoder:
        model.freeze_feature_encoder()
    with FlopCounterMode(display=False) as counter:
        logits = model(audio).logits  # (1, frames, vocab)
        if training:
            logits.float().log_softmax(-1).sum().backward()
    return float(counter.get_total_flops())


class ThroughputLogger(Callback):
    """Logs training speed from host-side batch sizes, synchronising the GPU once per window only.

    Lightning's `ThroughputMonitor` calls `torch.cuda.synchronize()` after every batch (which stops the host
    from queueing the next step while the GPU works) and assumes equal FLOPs per batch; duration-bucketed
    batches differ in size, so this one counts each batch's clips.

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
        trains_cnn = any(p.requires_grad for p in model.wav2vec2.feature_extractor.parameters())
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
