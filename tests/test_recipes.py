# pytest tests/test_recipes.py
"""The papers' recipes compose to their sources: fairseq's examples/wav2vec/config/finetuning/base_*.yaml, as
the table of the issue that asked for them gives them, on any device count."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.config import compose_cfg
from omegaconf import OmegaConf

from asr_lightning import launch, preflight
from asr_lightning.errors import ConfigError

# fairseq base_*.yaml: lr, max_update, freeze_finetune_updates, mask_prob, mask_channel_prob,
# mask_channel_length, layerdrop, distributed_world_size, update_freq
FAIRSEQ = {
    "librilight_10m": (5e-5, 13_000, 10_000, 0.65, 0.25, 64, 0.1, 2, 4),
    "librilight_1h": (5e-5, 13_000, 10_000, 0.65, 0.25, 64, 0.1, 2, 4),
    "librilight_10h": (5e-5, 20_000, 10_000, 0.65, 0.5, 64, 0.05, 2, 4),
    "librispeech_100h": (3e-5, 80_000, 0, 0.65, 0.5, 64, 0.1, 2, 4),
    "librispeech_960h": (1e-5, 320_000, 0, 0.5, 0.1, 64, 0.1, 8, 1),
}
TRAIN_SETS = {
    "librilight_10m": ["10m-0"],
    "librilight_1h": [f"10m-{k}" for k in range(6)],
    "librilight_10h": [*(f"10m-{k}" for k in range(6)), "9h"],
    "librispeech_100h": ["train-clean-100"],
    "librispeech_960h": ["train-clean-100", "train-clean-360", "train-other-500"],
}


def _recipe(name: str, tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_cfg("train", [f"experiment={name}", "data.data_dir=/corpus", *overrides], tmp_path)
    launch.check_config(cfg)
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("name", sorted(FAIRSEQ))
def test_recipe_equals_its_fairseq_config(name: str, tmp_path: Path) -> None:
    lr, updates, freeze, mask, channel, channel_len, layerdrop, _, _ = FAIRSEQ[name]
    cfg = _recipe(name, tmp_path)
    model, trainer, data = cfg["model"], cfg["trainer"], cfg["data"]
    assert model["pretrained"] == "facebook/wav2vec2-base"
    assert (model["lr"], trainer["max_steps"], model["freeze_encoder_steps"]) == (lr, updates, freeze)
    assert (model["mask_time_prob"], model["mask_time_length"]) == (mask, 10)
    assert (model["mask_feature_prob"], model["mask_feature_length"]) == (channel, channel_len)
    assert (model["layerdrop"], model["activation_dropout"]) == (layerdrop, 0.1)
    # Wav2Vec2AsrConfig's dropout, attention_dropout, dropout_input, final_dropout
    dropouts = ("hidden_dropout", "attention_dropout", "feat_proj_dropout", "final_dropout")
    assert [model[k] for k in dropouts] == [0.0] * 4
    assert model["freeze_feature_encoder"] is True  # feature_grad_mult: 0.0
    opt = model["optimizer"]
    assert (opt["betas"], opt["eps"], opt["weight_decay"]) == ([0.9, 0.98], 1e-8, 0.0)
    sched = model["scheduler"]
    assert sched["_target_"] == "asr_lightning.module.tri_stage"
    assert (sched["phase_ratio"], sched["final_lr_scale"]) == ([0.1, 0.4, 0.5], 0.05)
    assert data["train_splits"] == TRAIN_SETS[name]
    assert data["val_splits"] == ["dev-other"]  # valid_subset: dev_other; best by its WER
    assert cfg["callbacks"]["model_checkpoint"]["monitor"] == "val/wer"
    assert data["test_splits"] == ["test-clean", "test-other"]
    assert data["max_batch_seconds"] == 200.0  # max_tokens 3.2 M samples at 16 kHz
    # validate_after_updates: 10000 in the three Libri-light configs, absent (0) in base_100h/960h
    assert cfg["callbacks"]["validate_from"]["step"] == (10_000 if name.startswith("librilight") else 0)


@pytest.mark.parametrize("name", sorted(FAIRSEQ))
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
def test_recipe_updates_on_1600_s_of_audio_on_any_device_count(name: str, devices: int, tmp_path: Path) -> None:
    *_, gpus, update_freq = FAIRSEQ[name]
    cfg = _recipe(name, tmp_path, f"trainer.devices={devices}")
    batch = preflight.effective_batch(OmegaConf.create(cfg))
    assert batch["devices"] == devices
    assert batch["accumulate_grad_batches"] == gpus * update_freq // devices
    assert batch["per_update_s"] == 200.0 * gpus * update_freq == 1600.0


def test_validation_interval_counts_updates_not_batches(tmp_path: Path) -> None:
    # fairseq validates the 10 min recipe every 50 updates: 400 batches of one GPU, 100 of four
    assert _recipe("librilight_10m", tmp_path, "trainer.devices=1")["trainer"]["val_check_interval"] == 400
    assert _recipe("librilight_10m", tmp_path, "trainer.devices=4")["trainer"]["val_check_interval"] == 100
    epochs = _recipe("librispeech_100h", tmp_path)["trainer"]
    assert (epochs["val_check_interval"], epochs["check_val_every_n_epoch"]) == (None, 1)


def test_a_device_count_that_cannot_keep_the_batch_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="3 devices cannot split"):
        _recipe("librilight_10h", tmp_path, "trainer.devices=3")
    with pytest.raises(ConfigError, match="device count that divides 8"):
        preflight.accumulation(8, _root_=OmegaConf.create({"trainer": {"devices": 3}}))


def test_world_size_reads_lists_nodes_and_auto() -> None:
    assert preflight.world_size(OmegaConf.create({"devices": [0, 1, 2]})) == 3
    assert preflight.world_size(OmegaConf.create({"devices": 2, "num_nodes": 2})) == 4
    assert preflight.world_size(OmegaConf.create({"devices": "auto", "accelerator": "cpu"})) == 1
