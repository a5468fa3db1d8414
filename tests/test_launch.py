# pytest tests/test_launch.py
"""launch.py: resuming picks the right run and checkpoint; resolvers and precision for the entry points."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from helpers.config import ROOT, compose_cfg

from asr_lightning import launch, rundir
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
    torch.save({"global_step": 5}, tmp_path / "checkpoints" / "on_exception.ckpt")
    assert launch.resume_checkpoint("last", tmp_path) == str(tmp_path / "checkpoints" / "on_exception.ckpt")


def test_last_resumes_the_furthest_checkpoint_that_loads_by_step_not_time(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.save({"global_step": 9}, ckpts / "last.ckpt")
    torch.save({"global_step": 6}, ckpts / "step000006-wer0.5000.ckpt")
    torch.save({"global_step": 0}, ckpts / "on_exception.ckpt")  # newer by mtime, but behind: a failed restore
    assert rundir.latest_checkpoint(tmp_path) == ckpts / "last.ckpt"
    # last.ckpt cut short (a full disk, a kill mid-write), a 0-byte file beside it: the furthest that loads
    (ckpts / "last.ckpt").write_bytes((ckpts / "last.ckpt").read_bytes()[:40])
    (ckpts / "on_exception.ckpt").write_bytes(b"")
    assert rundir.latest_checkpoint(tmp_path) == ckpts / "step000006-wer0.5000.ckpt"
    # nothing loads: refused, naming the files, rather than a fresh start over them
    (ckpts / "step000006-wer0.5000.ckpt").write_bytes(b"garbage")
    with pytest.raises(rundir.RunDirError, match=r"no checkpoint of .* loads: .*last\.ckpt"):
        launch.resume_checkpoint("last", tmp_path)


def test_a_missing_or_broken_checkpoint_fails_before_any_data(tmp_path: Path) -> None:
    with pytest.raises(launch.ConfigError, match="no such file"):
        launch.resume_checkpoint(str(tmp_path / "missing.ckpt"), tmp_path)
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(launch.ConfigError, match="does not load"):
        launch.resume_checkpoint(str(tmp_path / "bad.ckpt"), tmp_path)


def test_a_finished_run_is_not_rewritten_by_a_resume_with_nothing_to_train(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    torch.save({"global_step": 12}, tmp_path / "checkpoints" / "last.ckpt")
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(rundir.RunDirError, match="finished at step 12 .* Raise trainer.max_steps"):
        launch.resume_checkpoint("last", tmp_path, max_steps=12)
    assert launch.resume_checkpoint("last", tmp_path, max_steps=20).endswith("last.ckpt")  # to train further


def test_one_run_at_a_time_per_run_dir(tmp_path: Path) -> None:
    with rundir.claim(tmp_path, resuming=False):
        lock = json.loads((tmp_path / rundir.LOCK).read_text())
        assert lock["pid"] == os.getpid()
        with pytest.raises(rundir.RunDirError, match=f"in use by another run \\(pid {os.getpid()}"):
            with rundir.claim(tmp_path, resuming=True):
                pass
    assert not (tmp_path / rundir.LOCK).exists()
    (tmp_path / rundir.LOCK).write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    with rundir.claim(tmp_path, resuming=False):  # a lock left by a process that is gone is taken over
        pass
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(rundir.RunDirError, match="holds a finished run"):
        with rundir.claim(tmp_path, resuming=False):
            pass


def test_precision_is_one_rule_for_training_and_inference() -> None:
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("32") == resolve_precision("32-true") == "32-true"  # predict.py's old spelling
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # explicit settings are kept
    with pytest.raises(ValueError, match="must be auto or one of"):
        resolve_precision("64")


def test_evaluating_without_a_model_is_refused(tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["experiment=demo", "train=false"], tmp_path)  # random init, no checkpoint
    with pytest.raises(launch.ConfigError, match="train=false evaluates a model, and there is none"):
        launch.check_config(cfg)
