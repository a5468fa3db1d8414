# pytest tests/test_configs.py
"""Every experiment composes, resolves and instantiates its groups' targets' signatures."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.config import ROOT, compose_cfg
from omegaconf import OmegaConf

import train
from asr_lightning import launch

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
    launch.check_config(cfg)  # every key is an argument of its target, every model value possible


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


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "wandb", "many"])
def test_logger_groups_compose(logger: str, tmp_path: Path) -> None:
    resolved = OmegaConf.to_container(
        compose_cfg("train", ["experiment=demo", f"logger={logger}"], tmp_path), resolve=True
    )
    expected = {"many": {"csv", "tensorboard", "wandb"}}.get(logger, {logger})
    assert set(resolved["logger"]) == expected
    if "wandb" in expected:
        wandb = resolved["logger"]["wandb"]
        assert wandb["group"] is None and wandb["name"] == tmp_path.name and wandb["tags"] == ["demo"]
        assert not any("key" in k for k in wandb)  # the API key only ever comes from the environment


def test_optuna_search_space(tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["experiment=demo", "hparams_search=minds14_optuna"], tmp_path)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert set(sweeper.params) == {
        "model.lr",
        "model.scheduler.warmup_ratio",
        "model.mask_time_prob",
        "model.layerdrop",
    }
    assert cfg.optimized_metric == "val/wer_best" and str(cfg.hydra.mode) == "RunMode.MULTIRUN"


def test_slurm_launcher_gives_one_task_per_gpu(tmp_path: Path) -> None:
    overrides = ["experiment=demo", "hydra/launcher=slurm", "trainer=slurm", "hydra.launcher.gpus_per_node=4",
                 "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=60"]  # fmt: skip
    cfg = compose_cfg("train", overrides, tmp_path)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["partition"], launcher["timeout_min"], launcher["gpus_per_node"]) == ("gpu", 60, 4)
    assert launcher["tasks_per_node"] == 4  # SLURM starts every rank: Lightning never re-runs the script
    assert (cfg.trainer.devices, cfg.trainer.num_nodes, cfg.trainer.strategy) == (4, 1, "ddp")


# ---------------------------------------------------------------- config errors, before any download


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def download(*args, **kwargs):
        raise AssertionError("a download was attempted before the config was checked")

    for name in ("load_dataset", "from_pretrained"):
        monkeypatch.setattr(f"asr_lightning.hub.{name}", download)


@pytest.mark.usefixtures("no_downloads")
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+data.max_batch_second=100", r"data.max_batch_second is not .* did you mean data.max_batch_seconds"),
        ("+model.learning_rate=1e-4", r"model.learning_rate is not an argument .* its arguments are \[.*'lr'"),
        ("+trainer.max_step=10", r"trainer.max_step is not an argument .* did you mean trainer.max_steps"),
        ("model.lr=-0.001", r"model.lr=-0.001 must be > 0"),
        ("model.mask_time_prob=1.5", r"model.mask_time_prob=1.5 must be a probability in \[0, 1\]"),
        ("model.attn_implementation=flash", r"model.attn_implementation='flash' must be one of \['sdpa'"),
        ("model.max_nonfinite_steps=0", r"model.max_nonfinite_steps=0 must be > 0"),
        ("data.test_fraction=1.0", r"data.test_fraction=1.0 must each be in \[0, 1\)"),
        ("data.max_batch_seconds=5", r"data.max_batch_seconds=5 is below data.max_duration_s=30"),
        ("data.on_bad_audio=ignore", r"data.on_bad_audio must be 'skip' or 'error'"),
    ],
)
def test_impossible_config_fails_before_any_download(override: str, message: str, tmp_path: Path) -> None:
    from hydra.errors import InstantiationException

    cfg = compose_cfg("train", [override], tmp_path)  # the Hub recipe: data and model would be downloaded
    with pytest.raises((ValueError, InstantiationException), match=message):  # Hydra wraps the data module's
        train.train(cfg)


def test_misspelt_command_line_key_is_rejected_by_hydra() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "train.py", "data.max_batch_second=100"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0
    assert "Key 'max_batch_second' is not in struct" in proc.stderr and "full_key: data.max_batch_second" in proc.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_steps=abc", "trainer.max_steps='abc' must be an integer"),
        ("trainer.max_steps=1.5", "trainer.max_steps=1.5 must be an integer"),
        ("model.lr=abc", "model.lr='abc' must be a number"),
        ("seed=abc", "seed='abc' must be an integer"),
        ("model.lr=-1", "model.lr=-1 must be > 0"),
    ],
)
def test_a_wrong_type_or_value_is_a_config_error_naming_the_key(override: str, message: str, tmp_path: Path) -> None:
    import re

    with pytest.raises(launch.ConfigError, match=re.escape(message)):
        launch.check_config(compose_cfg("train", [override], tmp_path))


def test_a_wrong_type_is_one_line_on_the_command_line() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "train.py", "trainer.max_steps=abc"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: trainer.max_steps='abc' must be an integer"]


def test_progress_bar_off_drops_the_progress_bar_callback(tmp_path: Path) -> None:
    import hydra

    cfg = compose_cfg("train", ["trainer.enable_progress_bar=false"], tmp_path)
    launch.drop_progress_bar(cfg)
    assert "progress_bar" not in cfg.callbacks and "model_checkpoint" in cfg.callbacks
    callbacks = [hydra.utils.instantiate(c) for c in cfg.callbacks.values()]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)  # Lightning refused both
    assert trainer.progress_bar_callback is None
