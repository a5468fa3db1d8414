# pytest tests/test_resume.py
"""Resume: a run stopped by SIGTERM, then killed with SIGKILL, then resumed ends exactly as an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.config import FAST, ROOT, compose_cfg
from safetensors.torch import load_file

import train
from asr_lightning import rundir
from asr_lightning.scoring import read_jsonl

# 48 clips: 4 training batches an epoch, so steps 5 and 10 are mid-epoch; a periodic checkpoint every 3 steps
RUN = [*FAST, "trainer.max_steps=12", "callbacks.periodic_checkpoint.every_n_train_steps=3"]
KILL = ["+callbacks.kill._target_=helpers.kill_switch.KillSwitch"]


def run_train(args: list[str], kill_at: int | None = None, signal: str = "SIGKILL") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "KILL_SIGNAL": signal}
    env["KILL_AT_STEP"] = str(kill_at if kill_at is not None else -1)
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def global_step(ckpt: Path) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.slow
def test_sigterm_then_sigkill_then_resume_ends_as_an_uninterrupted_run(tmp_path: Path, cache_dir: Path) -> None:
    uninterrupted = tmp_path / "uninterrupted"
    expected = train.train(compose_cfg("train", [*RUN, f"data.cache_dir={cache_dir}"], uninterrupted))

    logs = tmp_path / "logs"
    run = logs / "train" / "runs" / "interrupted"
    common = [*RUN, *KILL, f"data.cache_dir={cache_dir}", f"paths.log_dir={logs}"]

    # preemption: SIGTERM at step 5 (mid-epoch) -> checkpoint, exit status 143, how to resume
    proc = run_train([*common, f"hydra.run.dir={run}"], kill_at=5, signal="SIGTERM")
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert global_step(run / "checkpoints" / "on_exception.ckpt") == 5
    assert "ckpt_path=" in proc.stderr and not (run / "metrics.json").exists()

    # resumed from step 5 (`last` finds the newest run under paths.log_dir), then killed for real at step 10
    proc = run_train(["ckpt_path=last", f"paths.log_dir={logs}"], kill_at=10)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert f"resuming in {run}" in proc.stderr
    assert rundir.latest_checkpoint(run).name == "last.ckpt" and global_step(run / "checkpoints" / "last.ckpt") == 9

    # resumed from step 9, to the end
    proc = run_train(["ckpt_path=last", f"paths.log_dir={logs}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = json.loads((run / "metrics.json").read_text())

    for key in ("val/wer", "val/cer", "val/loss", "val/wer_best", "test/wer", "test/cer", "test/loss"):
        assert resumed[key] == expected[key], key
    assert read_jsonl(run / "predictions" / "test.jsonl") == read_jsonl(uninterrupted / "predictions" / "test.jsonl")
    weights = load_file(run / "hf_model" / "model.safetensors")
    for name, value in load_file(uninterrupted / "hf_model" / "model.safetensors").items():
        assert torch.equal(weights[name], value), name

    # one curve: the rows logged before each interruption are kept, none twice
    with open(run / "csv" / "metrics.csv", newline="") as f:
        losses = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert losses == sorted(set(losses)) and losses[0] == 0 and len(losses) == 12
    assert "before_resume" in json.loads((run / "provenance.json").read_text())
    assert not (run / "checkpoints" / "on_exception.ckpt").exists()  # a finished run removes it


def test_a_failed_resume_leaves_no_trap_and_a_cut_checkpoint_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    first = [*FAST, "trainer.max_steps=6", "callbacks.periodic_checkpoint.every_n_train_steps=3",
             f"data.cache_dir={cache_dir}", f"hydra.run.dir={run}"]  # fmt: skip
    assert run_train([*first, *KILL, "test=false"], kill_at=5).returncode != 0  # killed: checkpoints at steps 3, 4
    ckpts = run / "checkpoints"
    furthest = rundir.latest_checkpoint(run)
    step = global_step(furthest)
    overrides = (run / ".hydra" / "overrides.yaml").read_text()

    # an override that does not fit the checkpoint: the restore fails; no step-0 checkpoint, overrides kept
    bad = run_train(["ckpt_path=last", f"hydra.run.dir={run}", "model.architecture.num_hidden_layers=1"])
    assert bad.returncode != 0
    assert not (ckpts / "on_exception.ckpt").exists() or global_step(ckpts / "on_exception.ckpt") == step
    assert rundir.latest_checkpoint(run) == furthest and (run / ".hydra" / "overrides.yaml").read_text() == overrides

    # every checkpoint cut short (a full disk, a kill mid-write): refused, twice, and nothing is overwritten
    for ckpt in ckpts.glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    before = {p.name: p.read_bytes() for p in ckpts.glob("*.ckpt")}
    for _ in range(2):
        proc = run_train(["ckpt_path=last", f"hydra.run.dir={run}"])
        assert proc.returncode != 0 and "error: no checkpoint of" in proc.stderr and "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in ckpts.glob("*.ckpt")} == before


def test_a_second_run_into_a_held_run_dir_is_refused_at_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with rundir.claim(run, resuming=False):  # this test process holds it, as a running training would
        proc = run_train(["experiment=demo", f"hydra.run.dir={run}"])
    assert proc.returncode != 0 and f"in use by another run (pid {os.getpid()}" in proc.stderr
    assert not (run / "metrics.csv").exists()


def test_resumed_metrics_keep_the_first_parts_training(tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    cfg = [*FAST, "trainer.max_steps=4", f"data.cache_dir={cache_dir}"]
    first = train.train(compose_cfg("train", cfg, run, cache_dir))
    more = train.train(compose_cfg("train", [*cfg, "trainer.max_steps=6", "ckpt_path=last"], run, cache_dir))
    assert more["train_time_s"] >= first["train_time_s"]  # the time of both parts, not of the second alone
    assert "val/wer_best" in more
    # nothing left to train: a finished run is not rewritten
    with pytest.raises(rundir.RunDirError, match="finished at step 6"):
        train.train(compose_cfg("train", [*cfg, "trainer.max_steps=6", "ckpt_path=last"], run, cache_dir))


def test_an_empty_test_split_is_refused_before_training(demo_cfg) -> None:
    from asr_lightning.errors import ConfigError

    with pytest.raises(ConfigError, match="test split is empty"):
        train.train(demo_cfg("data.test_fraction=0"))


def test_sigterm_in_the_test_stage_names_the_resume_and_the_resume_finishes(tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    args = [
        *FAST,
        "trainer.max_steps=4",
        "data.eval_batch_size=2",
        f"data.cache_dir={cache_dir}",
        f"hydra.run.dir={run}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "KILL_SIGNAL": "SIGTERM", "KILL_AT_TEST_BATCH": "0"}
    proc = subprocess.run([sys.executable, "train.py", *args, *KILL], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert f"stopped by SIGTERM; resume with: python train.py ckpt_path=last hydra.run.dir={run}" in proc.stderr
    assert not (run / "metrics.json").exists()
    resumed = run_train(["ckpt_path=last", f"hydra.run.dir={run}"])  # no step left to train: it scores and exports
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test/wer", "val/wer_best"} <= set(metrics) and (run / "hf_model").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting",
    [
        ["model.freeze_encoder_steps=4"],  # preempted inside the head-only steps (step 3 of 4)
        # on-the-fly augmentation in two persistent workers: seeded per (seed, epoch, clip), not by history
        ["data.augment.speed_perturb=[0.9,1.0,1.1]", "data.augment.gain_db=[-6.0,6.0]", "data.augment.telephone=true",
         "data.num_workers=2"],
    ],
    ids=["head_only_steps", "augmentation"],
)  # fmt: skip
def test_preempted_and_resumed_ends_as_never_stopped(tmp_path: Path, cache_dir: Path, setting: list[str]) -> None:
    """Head-only steps depend on the global step alone, augmentation on (seed, epoch, clip): a run preempted at
    step 3 and resumed ends bit-identical to one that was never stopped."""
    args = [*FAST, "trainer.max_steps=6", *setting, f"data.cache_dir={cache_dir}", "test=false"]
    train.train(compose_cfg("train", args, tmp_path / "whole"))
    run = tmp_path / "part"
    proc = run_train([*args, *KILL, f"hydra.run.dir={run}"], kill_at=3, signal="SIGTERM")
    assert proc.returncode == 143, proc.stderr[-3000:]
    proc = run_train(["ckpt_path=last", f"hydra.run.dir={run}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ends = [
        torch.load(d / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        for d in (tmp_path / "whole", run)
    ]
    assert ends[0]["global_step"] == ends[1]["global_step"] == 6
    assert all(torch.equal(v, ends[1]["state_dict"][k]) for k, v in ends[0]["state_dict"].items())
