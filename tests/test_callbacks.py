# pytest tests/test_callbacks.py
"""The package's callbacks: throughput and padding efficiency logged by training, and their argument checks.

The crash checkpoint is exercised in test_faults.py and test_resume.py, the W&B tables in test_tracking.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import train
from asr_lightning.callbacks import ExceptionCheckpoint, PredictionTables, ValidateFrom


def test_training_logs_throughput_and_padding_efficiency(demo_cfg, tmp_path: Path) -> None:
    cfg = demo_cfg("data.max_batch_seconds=20", "trainer.max_steps=6", "trainer.log_every_n_steps=2")
    metrics = train.train(cfg)
    assert 0.5 < metrics["train/padding_efficiency"] <= 1.0
    assert metrics["train/epoch_audio_sec_per_sec"] > 0
    rows = list(csv.DictReader(next((tmp_path / "run").rglob("metrics.csv")).open()))
    speed = [r for r in rows if r.get("train/audio_sec_per_sec")]
    assert len(speed) == 3  # every 2 of 6 batches
    for row in speed:
        assert float(row["train/audio_sec_per_sec"]) > 0 and float(row["train/tflops_per_sec"]) > 0
        assert not row.get("train/mfu")  # no peak FLOP/s known for CPUs


def test_mfu_is_logged_when_the_peak_is_given(demo_cfg, tmp_path: Path) -> None:
    cfg = demo_cfg("trainer.max_steps=2", "trainer.log_every_n_steps=1", "callbacks.throughput.peak_flops=1e12")
    train.train(cfg)
    rows = list(csv.DictReader(next((tmp_path / "run").rglob("metrics.csv")).open()))
    mfu = [float(r["train/mfu"]) for r in rows if r.get("train/mfu")]
    tflops = [float(r["train/tflops_per_sec"]) for r in rows if r.get("train/tflops_per_sec")]
    assert len(mfu) == 2 and mfu == pytest.approx(tflops)  # peak of 1 TFLOP/s: MFU = TFLOP/s


def test_bad_arguments_name_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="callbacks.on_exception.filename"):
        ExceptionCheckpoint(tmp_path, filename="")
    assert ExceptionCheckpoint(tmp_path).path == tmp_path / "on_exception.ckpt"
    with pytest.raises(ValueError, match="callbacks.prediction_tables.num_samples must be >= 0, got -1"):
        PredictionTables(num_samples=-1)
    with pytest.raises(ValueError, match="callbacks.validate_from.step must be >= 0"):
        ValidateFrom(step=-1)


def test_no_validation_runs_before_validate_from_step(demo_cfg, tmp_path: Path) -> None:
    # 48 clips in batches of 8 over ~6 steps an epoch, validating every 2 steps: from step 4 on only
    cfg = demo_cfg("trainer.max_steps=8", "trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=2",
                   "callbacks.validate_from.step=4", "validate=true")  # fmt: skip
    metrics = train.train(cfg)
    rows = list(csv.DictReader(next((tmp_path / "run").rglob("metrics.csv")).open()))
    # Lightning logs a validation at the count of batches stepped before it: the one after step 2 shows as 1
    steps = sorted({int(r["step"]) for r in rows if r.get("val/wer")})
    assert steps[:3] == [3, 5, 7], steps  # after steps 4, 6 and 8; none after step 2
    assert "val/wer" in metrics  # the scoring after fit validates whatever the step
