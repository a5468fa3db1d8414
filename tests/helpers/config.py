# pytest
"""Hydra configs composed as `train.py` composes them, on the committed demo corpus."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "data" / "demo"
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

# Few clips and steps: the suite checks behaviour, not accuracy.
FAST = [
    "experiment=demo",
    "data.max_samples=48",
    "data.num_proc=1",
    "data.batch_size=8",
    "data.eval_batch_size=8",
    "trainer.max_steps=4",
    "trainer.check_val_every_n_epoch=1",
    "trainer.log_every_n_steps=1",
    "callbacks.progress_bar.refresh_rate=0",
    "trainer.enable_model_summary=false",
]


def compose_cfg(config_name: str, overrides: list[str], output_dir: Path, cache_dir: Path | None = None) -> DictConfig:
    """Compose a config like the entry point does, with the run dir set to `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        if cache_dir is not None and "data" in cfg:
            cfg.data.cache_dir = str(cache_dir)
    HydraConfig().set_config(cfg)
    return cfg
