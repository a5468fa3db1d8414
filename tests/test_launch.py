# pytest tests/test_launch.py
"""launch.py: resuming picks the right run and checkpoint; resolvers and precision for the entry points."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.config import ROOT

from asr_lightning import launch
from asr_lightning.precision import resolve_precision

CONF = ROOT / "conf"


def test_resume_argv_picks_the_newest_run_and_its_overrides(tmp_path: Path) -> None:
    runs = tmp_path / "logs" / "train" / "runs"
    for name, overrides in [("old", ["experiment=demo"]), ("new", ["experiment=demo", "trainer.max_steps=7"])]:
        (runs / name / ".hydra").mkdir(parents=True)
        (runs / name / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        (runs / name / "checkpoints").mkdir()
        (runs / name / "checkpoints" / "last.ckpt").write_bytes(b"")
    (runs / "newer-but-no-checkpoint").mkdir()
    os.utime(runs / "old" / "checkpoints" / "last.ckpt", (1, 1))

    logs = f"paths.log_dir={tmp_path / 'logs'}"
    argv = launch.resume_argv(["train.py", "ckpt_path=last", logs, "trainer.max_steps=9"], CONF)
    new = f"hydra.run.dir={runs / 'new'}"
    assert argv[1:] == ["experiment=demo", "ckpt_path=last", logs, "trainer.max_steps=9", new]

    # a run's own checkpoint: that run; evaluation (train=false) and multiruns get dirs of their own
    ckpt = runs / "old" / "checkpoints" / "last.ckpt"
    assert launch.resume_argv(["train.py", f"ckpt_path={ckpt}"], CONF)[-1] == f"hydra.run.dir={runs / 'old'}"
    for args in ([f"ckpt_path={ckpt}", "train=false"], ["-m", f"ckpt_path={ckpt}"], ["experiment=demo"]):
        assert launch.resume_argv(["train.py", *args], CONF) == ["train.py", *args]


def test_last_with_nothing_to_resume_starts_afresh(tmp_path: Path) -> None:
    assert launch.resume_checkpoint("last", tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "on_exception.ckpt").write_bytes(b"")
    assert launch.resume_checkpoint("last", tmp_path) == str(tmp_path / "checkpoints" / "on_exception.ckpt")


def test_precision_is_one_rule_for_training_and_inference() -> None:
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("32") == resolve_precision("32-true") == "32-true"  # predict.py's old spelling
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # explicit settings are kept
    with pytest.raises(ValueError, match="must be auto or one of"):
        resolve_precision("64")
