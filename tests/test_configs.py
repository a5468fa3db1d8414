# pytest tests/test_configs.py
"""Every experiment composes, resolves and instantiates its groups' targets' signatures."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg
from omegaconf import OmegaConf

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


def test_there_are_experiments() -> None:
    assert {"demo", "minds14", "minds14_seed"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_resolves(experiment: str, tmp_path: Path) -> None:
    cfg = compose_cfg("train", [f"experiment={experiment}"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["data"]["_target_"] == "asr_lightning.data.ASRDataModule"
    assert resolved["model"]["_target_"] == "asr_lightning.module.ASRModule"
    assert resolved["callbacks"]["model_checkpoint"]["monitor"] == "val/wer"
    assert resolved["optimized_metric"] == "val/wer_best"


def test_bare_config_is_the_minds14_experiment(tmp_path: Path) -> None:
    bare = OmegaConf.to_container(compose_cfg("train", [], tmp_path), resolve=True)
    exp = OmegaConf.to_container(compose_cfg("train", ["experiment=minds14"], tmp_path), resolve=True)
    for cfg in (bare, exp):
        cfg.pop("hydra")
    assert bare == exp
    assert bare["data"]["dataset"] == "PolyAI/minds14" and bare["model"]["pretrained"] == "facebook/wav2vec2-base"


def test_seed_guide_recipe(tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["experiment=minds14_seed"], tmp_path)
    assert cfg.data.max_samples == 100 and cfg.data.val_fraction == 0.2 and cfg.data.test_fraction == 0.0
    assert cfg.model.lr == 1e-5 and cfg.model.scheduler.warmup_steps == 500 and cfg.model.gradient_checkpointing
    assert (cfg.data.batch_size, cfg.trainer.accumulate_grad_batches) == (8, 2)
    assert cfg.trainer.precision == "16-mixed" and cfg.trainer.max_steps == 2000
    assert cfg.trainer.val_check_interval == 2000  # batches: 1000 optimizer steps x 2


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp", "ddp_cpu", "default"])
def test_trainer_groups_compose(trainer: str, tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["experiment=demo", f"trainer={trainer}"], tmp_path)
    assert cfg.trainer.precision in {"32-true", "bf16-mixed", "16-mixed"}
    assert cfg.trainer.use_distributed_sampler is False


@pytest.mark.parametrize("debug", ["fdr", "overfit"])
def test_debug_groups_compose(debug: str, tmp_path: Path) -> None:
    compose_cfg("train", ["experiment=demo", f"debug={debug}"], tmp_path)


def test_predict_config_composes(tmp_path: Path) -> None:
    cfg = compose_cfg("predict", ["ckpt_path=x", "inputs=[a.wav]"], tmp_path)
    assert cfg.output == str(tmp_path / "predictions.jsonl")
