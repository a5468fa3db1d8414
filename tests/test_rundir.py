# pytest tests/test_rundir.py
"""rundir.py and the checkpoint callbacks: checkpoints written whole or not at all, a full disk reported as the
cause, run dirs that can move."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
import torch

from asr_lightning.callbacks import ExceptionCheckpoint, RunCheckpoint
from asr_lightning.rundir import AtomicCheckpointIO, checkpoint_step


def test_a_full_disk_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 3}, target)
    good = target.read_bytes()

    def full_disk(obj, f, *args, **kwargs) -> None:
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"global_step": 6}, target)
    assert target.read_bytes() == good and checkpoint_step(target) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left beside it


class _Trainer:
    """Just what ExceptionCheckpoint reads of a trainer."""

    def __init__(self, step: int, fail: bool = False) -> None:
        self.global_step, self.fail = step, fail
        self.state = type("State", (), {"fn": "fit"})()

    def save_checkpoint(self, path: Path) -> None:
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device")
        path.write_bytes(b"ckpt")


def test_no_exception_checkpoint_without_progress_and_a_failed_save_does_not_hide_the_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = ExceptionCheckpoint(tmp_path)
    callback.on_exception(_Trainer(0), None, RuntimeError("restore failed"))  # before training: nothing to save
    callback.on_train_start(_Trainer(7), None)  # resumed at step 7
    callback.on_exception(_Trainer(7), None, RuntimeError("no step taken"))
    assert not callback.path.exists()
    with caplog.at_level(logging.ERROR):
        callback.on_exception(_Trainer(9, fail=True), None, KeyboardInterrupt())  # logged, not raised
    assert "No space left" in caplog.text and "KeyboardInterrupt" in caplog.text
    callback.on_exception(_Trainer(9), None, KeyboardInterrupt())
    assert callback.path.exists()


def test_a_moved_run_dir_resumes_with_its_own_best_checkpoint(tmp_path: Path) -> None:
    old, new = tmp_path / "old" / "checkpoints", tmp_path / "new" / "checkpoints"
    saved = RunCheckpoint(dirpath=old, monitor="val/wer", save_last=True)
    saved.best_model_path, saved.last_model_path = str(old / "step000008-wer0.5.ckpt"), str(old / "last.ckpt")
    saved.best_k_models = {saved.best_model_path: torch.tensor(0.5)}
    saved.best_model_score = torch.tensor(0.5)
    moved = RunCheckpoint(dirpath=new, monitor="val/wer", save_last=True)
    assert moved.state_key == saved.state_key and moved.state_key.startswith("ModelCheckpoint")
    moved.load_state_dict(saved.state_dict())
    assert moved.best_model_path == str(new / "step000008-wer0.5.ckpt")  # not the original run's file
    assert moved.last_model_path == str(new / "last.ckpt") and list(moved.best_k_models) == [moved.best_model_path]
    assert float(moved.best_model_score) == 0.5
