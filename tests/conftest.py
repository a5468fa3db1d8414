# pytest
"""Shared fixtures: a datasets cache for the session and a short trained demo run (helpers: `tests/helpers/`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.config import FAST, compose_cfg
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import train
from asr_lightning import launch

launch.register_resolvers()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One datasets cache for the session, so the demo corpus is preprocessed once."""
    return tmp_path_factory.mktemp("hf_datasets_cache")


@pytest.fixture
def demo_cfg(tmp_path: Path, cache_dir: Path):
    def make(*overrides: str) -> DictConfig:
        return compose_cfg("train", [*FAST, *overrides], tmp_path / "run", cache_dir)

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A run dir from a short demo training (checkpoints, hf_model, predictions)."""
    out = tmp_path_factory.mktemp("trained_run")
    cfg = compose_cfg("train", [*FAST, "trainer.max_steps=12"], out, cache_dir)
    train.train(cfg)
    GlobalHydra.instance().clear()
    return out
