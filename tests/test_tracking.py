# pytest tests/test_tracking.py
"""W&B for real, offline: train, then read the run's transaction log back (no network, no account)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.wandb_log import summarize_run

import train


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))


@pytest.mark.usefixtures("offline_wandb")
def test_wandb_offline_run_has_metrics_config_and_tables(demo_cfg, tmp_path: Path) -> None:
    import wandb

    cfg = demo_cfg("logger=wandb", "trainer.max_steps=6", "callbacks.prediction_tables.num_samples=3")
    metrics = train.train(cfg)
    assert wandb.run is None  # finished, so the next job of a multirun gets a run of its own
    run = summarize_run(tmp_path / "run")
    assert run["exit"] == 0 and run["name"] == "run" and run["group"] == ""  # single runs: no sweep group

    # the resolved Hydra config (no interpolations left) plus provenance
    assert run["config"]["model"]["lr"] == cfg.model.lr and run["config"]["seed"] == cfg.seed
    assert run["config"]["logger"]["wandb"]["save_dir"] == str(tmp_path / "run")
    assert run["config"]["provenance"]["data"]["splits_sha256"]
    assert "api_key" not in json.dumps(run["config"]).lower()

    assert run["history"]["test/wer"] == [pytest.approx(metrics["test/wer"])]
    assert "val/wer" in run["history"] and "train/loss" in run["history"]

    val = json.loads(run["tables"]["val/predictions"][0].read_text())
    assert val["columns"][:5] == ["id", "audio", "reference", "hypothesis", "wer"]
    assert "intent_class" in val["columns"] and len(val["data"]) == 3
    test = json.loads(run["tables"]["test/predictions"][0].read_text())
    assert len(test["data"]) == metrics["data"]["test"]["kept"]
    assert "test/wer_by_intent_class" in run["tables"]


@pytest.mark.usefixtures("offline_wandb")
def test_failed_run_is_finished_as_failed(demo_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    from asr_lightning.module import ASRModule

    def broken(self, batch, batch_idx):
        raise RuntimeError("a bug in the training step")

    monkeypatch.setattr(ASRModule, "training_step", broken)
    with pytest.raises(RuntimeError, match="training step"):
        train.train(demo_cfg("logger=wandb"))
    assert wandb.run is None and summarize_run(tmp_path / "run")["exit"] == 1


@pytest.mark.usefixtures("offline_wandb")
def test_resumed_run_continues_its_wandb_run(demo_cfg, tmp_path: Path) -> None:
    every2 = "callbacks.periodic_checkpoint.every_n_train_steps=2"
    train.train(demo_cfg("logger=wandb", "trainer.max_steps=2", "test=false", every2))
    metrics = train.train(demo_cfg("logger=wandb", "trainer.max_steps=4", "test=false", every2, "ckpt_path=last"))
    assert "before_resume" in metrics["provenance"]  # it did resume
    runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and len({r.name.rsplit("-", 1)[1] for r in runs}) == 1  # two parts, one run id
