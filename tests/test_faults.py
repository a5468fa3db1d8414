# pytest tests/test_faults.py
"""Training faults: non-finite steps are skipped and counted; too many in a row stop the run with a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import train
from asr_lightning.module import ASRModule


def inject_inf(monkeypatch: pytest.MonkeyPatch, bad_steps: set[int] | None) -> None:
    """Make the loss infinite at these global steps (None: at every step)."""
    ctc_loss = ASRModule.ctc_loss

    def poisoned(self, logits, batch, reduction=None):
        loss = ctc_loss(self, logits, batch, reduction)
        if self.training and (bad_steps is None or self.global_step in bad_steps):
            return loss * float("inf")
        return loss

    monkeypatch.setattr(ASRModule, "ctc_loss", poisoned)


def test_nonfinite_steps_are_skipped_and_counted(demo_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    inject_inf(monkeypatch, {1, 2})
    seen: dict[int, torch.Tensor] = {}
    on_before = ASRModule.on_before_optimizer_step

    def spy(self, optimizer):
        seen[self.global_step] = self.model.lm_head.weight.detach().clone()
        on_before(self, optimizer)

    monkeypatch.setattr(ASRModule, "on_before_optimizer_step", spy)
    metrics = train.train(demo_cfg("trainer.max_steps=5", "trainer.gradient_clip_val=null"))
    assert metrics["train/nonfinite_steps"] == 2.0
    assert torch.equal(seen[1], seen[2]) and torch.equal(seen[2], seen[3])  # skipped: weights untouched
    assert not torch.equal(seen[3], seen[4])  # and training goes on
    assert all(torch.isfinite(w).all() for w in seen.values())


def test_too_many_nonfinite_steps_stop_with_a_checkpoint(demo_cfg, tmp_path: Path, monkeypatch) -> None:
    inject_inf(monkeypatch, None)
    with pytest.raises(FloatingPointError, match=r"3 consecutive steps .*model.max_nonfinite_steps=3"):
        train.train(demo_cfg("model.max_nonfinite_steps=3", "trainer.max_steps=10"))
    assert (tmp_path / "run" / "checkpoints" / "on_exception.ckpt").exists()
