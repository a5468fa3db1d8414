# PYTHONPATH=tests KILL_AT_STEP=7 python train.py +callbacks.kill._target_=helpers.kill_switch.KillSwitch
"""A callback that signals its own process after a given optimiser step: a crash or preemption for tests."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillSwitch(L.Callback):
    """Send `$KILL_SIGNAL` (SIGKILL, SIGTERM) to this process once `global_step` reaches `$KILL_AT_STEP`.

    Lightning runs checkpoint callbacks after the others, so a checkpoint due at the same step is not
    written; the run's latest checkpoint is the one before.
    """

    def on_train_batch_end(self, trainer: L.Trainer, *_: object) -> None:
        step = int(os.environ.get("KILL_AT_STEP", "-1"))
        if trainer.global_step == step:
            os.environ["KILL_AT_STEP"] = "-1"  # once
            os.kill(os.getpid(), getattr(signal, os.environ.get("KILL_SIGNAL", "SIGKILL")))

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object, batch: object,
                          batch_idx: int, dataloader_idx: int = 0) -> None:  # fmt: skip
        """`$KILL_AT_TEST_BATCH`: the same signal during the test stage, after that test batch."""
        if batch_idx == int(os.environ.get("KILL_AT_TEST_BATCH", "-1")):
            os.environ["KILL_AT_TEST_BATCH"] = "-1"
            os.kill(os.getpid(), getattr(signal, os.environ.get("KILL_SIGNAL", "SIGKILL")))
