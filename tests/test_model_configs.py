# pytest tests/test_model_configs.py
"""Every model config composes into ASRModule's arguments with the papers' fine-tuning settings (composition
only: nothing is downloaded or built)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from helpers.config import ROOT, compose_cfg
from omegaconf import OmegaConf

from asr_lightning.module import ASRModule

MODEL_DIR = ROOT / "conf" / "model"
MODELS = sorted(p.stem for p in MODEL_DIR.glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (MODEL_DIR / "scheduler").glob("*.yaml"))

HUB_IDS = {
    "wav2vec2_base": "facebook/wav2vec2-base",
    "wav2vec2_large_lv60": "facebook/wav2vec2-large-lv60",
    "hubert_base": "facebook/hubert-base-ls960",
    "hubert_large": "facebook/hubert-large-ll60k",
    "wavlm_base_plus": "microsoft/wavlm-base-plus",
    "wavlm_large": "microsoft/wavlm-large",
    "data2vec_audio_base": "facebook/data2vec-audio-base",
    "xls_r_300m": "facebook/wav2vec2-xls-r-300m",
    "mms_300m": "facebook/mms-300m",
    "mms_1b_all": "facebook/mms-1b-all",
    "w2v_bert_2": "facebook/w2v-bert-2.0",
}
RANDOM_INIT = {"wav2vec2_tiny"}

# (mask_time_prob, mask_time_length, mask_feature_prob, mask_feature_length): fairseq's (mask_prob, mask_length,
# mask_channel_prob, mask_channel_length) unchanged, since transformers' *_prob is also the masked share.
# None: the checkpoint's (the HF blogs' recipes leave it).
PAPER_MASKS = {
    "wav2vec2_base": (0.65, 10, 0.5, 64),  # examples/wav2vec/config/finetuning/base_10h.yaml
    "data2vec_audio_base": (0.65, 10, 0.5, 64),  # the same file (examples/data2vec/README.md)
    "wav2vec2_large_lv60": (0.75, 10, 0.25, 64),  # .../finetuning/vox_10h.yaml
    "xls_r_300m": (0.75, 10, 0.25, 64),  # examples/wav2vec/xlsr/config/finetune.yaml
    "mms_300m": (0.75, 10, 0.25, 64),  # the same file (no MMS full fine-tuning config found)
    "hubert_base": (0.75, 10, 0.5, 64),  # examples/hubert/config/finetune/base_10h.yaml
    "hubert_large": (0.75, 10, 0.5, 64),
    "wavlm_base_plus": (0.75, 10, 0.5, 64),
    "wavlm_large": (0.75, 10, 0.5, 64),
    "mms_1b_all": (None, None, None, None),  # HF blog "Fine-tuning MMS Adapter Models"
    "w2v_bert_2": (0.0, 10, None, None),  # HF blog "Fine-Tune W2V2-Bert"
    "wav2vec2_tiny": (0.0, 10, 0.0, 64),  # the demo: masking only slows minutes of training
}

# fairseq's tri_stage as every wav2vec 2.0 fine-tuning config sets it; init_lr_scale is fairseq's default
FAIRSEQ_TRI_STAGE = {
    "_target_": "asr_lightning.module.tri_stage",
    "_partial_": True,
    "phase_ratio": [0.1, 0.4, 0.5],
    "final_lr_scale": 0.05,
    "init_lr_scale": 0.01,
}


def model_cfg(name: str, tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_cfg("train", [f"model={name}", *overrides], tmp_path)
    return OmegaConf.to_container(cfg.model, resolve=True)


def test_every_model_config_is_listed_here() -> None:
    assert set(MODELS) == set(HUB_IDS) | RANDOM_INIT == set(PAPER_MASKS)
    assert set(SCHEDULERS) == {"linear", "tri_stage"}


@pytest.mark.parametrize("scheduler", [None, *SCHEDULERS])
@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_composes_into_asr_module_with_either_scheduler(
    name: str, scheduler: str | None, tmp_path: Path
) -> None:
    model = model_cfg(name, tmp_path, *([f"model/scheduler={scheduler}"] if scheduler else []))
    assert model["_target_"] == "asr_lightning.module.ASRModule"
    assert model["scheduler"]["_partial_"] is True
    if scheduler is not None:
        assert model["scheduler"]["_target_"].endswith(scheduler if scheduler == "tri_stage" else "linear_warmup_decay")


@pytest.mark.parametrize("name", MODELS)
def test_config_keys_are_asr_module_arguments(name: str, tmp_path: Path) -> None:
    # fails until ASRModule takes freeze_encoder_steps, layer_lr_decay and adapter
    params = set(inspect.signature(ASRModule.__init__).parameters)
    keys = {k for k in model_cfg(name, tmp_path) if not k.startswith("_")}
    assert keys <= params, f"not arguments of ASRModule: {sorted(keys - params)}"


@pytest.mark.parametrize("name", sorted(HUB_IDS))
def test_every_pretrained_config_names_its_hub_checkpoint(name: str, tmp_path: Path) -> None:
    model = model_cfg(name, tmp_path)
    assert model["pretrained"] == HUB_IDS[name] and model["architecture"] is None


@pytest.mark.parametrize("name", sorted(PAPER_MASKS))
def test_masks_are_the_papers_fractions_of_frames_and_channels(name: str, tmp_path: Path) -> None:
    model = model_cfg(name, tmp_path)
    got = (model["mask_time_prob"], model["mask_time_length"], model["mask_feature_prob"], model["mask_feature_length"])
    assert got == PAPER_MASKS[name]
    # the start-probability misreading (0.065 for the paper's 0.65) would mask a tenth of what the recipe does
    assert model["mask_time_prob"] in (None, 0.0) or model["mask_time_prob"] >= 0.5


@pytest.mark.parametrize("name", MODELS)
def test_fine_tuning_controls_default_off(name: str, tmp_path: Path) -> None:
    model = model_cfg(name, tmp_path)
    assert model["freeze_encoder_steps"] == 0 and model["layer_lr_decay"] == 1.0
    # mms_1b_all too: its target_lang is the user's to give (model.adapter.target_lang=<iso code>)
    assert model["adapter"] == {"target_lang": None, "attn_dim": None}


@pytest.mark.parametrize("name", [n for n in MODELS if n != "wav2vec2_base"])
def test_model_configs_inherit_wav2vec2_base(name: str) -> None:
    defaults = OmegaConf.load(MODEL_DIR / f"{name}.yaml").defaults
    assert defaults[0] == "wav2vec2_base" and defaults[-1] == "_self_"


@pytest.mark.parametrize("path", sorted(MODEL_DIR.rglob("*.yaml")), ids=lambda p: str(p.relative_to(MODEL_DIR)))
def test_every_model_config_begins_with_the_command_that_selects_it(path: Path) -> None:
    rel = path.relative_to(MODEL_DIR).with_suffix("")
    group = "model" if rel.parent == Path(".") else f"model/{rel.parent}"
    assert path.read_text().splitlines()[0].startswith(f"# python train.py {group}={rel.name}")


def test_tri_stage_scheduler_is_fairseqs(tmp_path: Path) -> None:
    assert model_cfg("wav2vec2_base", tmp_path, "model/scheduler=tri_stage")["scheduler"] == FAIRSEQ_TRI_STAGE


@pytest.mark.parametrize("name", ["wav2vec2_large_lv60", "hubert_base", "wavlm_large", "xls_r_300m"])
def test_paper_recipes_select_tri_stage(name: str, tmp_path: Path) -> None:
    assert model_cfg(name, tmp_path)["scheduler"] == FAIRSEQ_TRI_STAGE


def test_wav2vec2_base_keeps_linear_warmup_for_the_minds14_experiments(tmp_path: Path) -> None:
    scheduler = model_cfg("wav2vec2_base", tmp_path)["scheduler"]
    assert scheduler == {"_target_": "asr_lightning.module.linear_warmup_decay", "_partial_": True,
                         "warmup_steps": 0, "warmup_ratio": 0.1}  # fmt: skip
    seed = compose_cfg("train", ["experiment=minds14_seed"], tmp_path).model.scheduler
    assert seed._target_.endswith("linear_warmup_decay") and (seed.warmup_steps, seed.warmup_ratio) == (500, 0.0)


def test_minds14_experiment_masks_as_the_paper(tmp_path: Path) -> None:
    model = compose_cfg("train", ["experiment=minds14"], tmp_path).model
    assert (model.mask_time_prob, model.mask_time_length) == (0.65, 10)
    assert (model.mask_feature_prob, model.mask_feature_length) == (0.5, 64)
    assert model.lr == 1e-4 and model.freeze_feature_encoder


def test_tiny_is_a_random_init_wav2vec2_with_the_base_controls(tmp_path: Path) -> None:
    model = model_cfg("wav2vec2_tiny", tmp_path)
    assert model["pretrained"] is None and next(iter(model["architecture"])) == "model_type"
    assert model["architecture"]["model_type"] == "wav2vec2" and model["architecture"]["hidden_size"] == 144
    assert model["freeze_encoder_steps"] == 0 and model["layer_lr_decay"] == 1.0  # from wav2vec2_base


def test_mms_adapter_trains_the_language_given(tmp_path: Path) -> None:
    model = model_cfg("mms_1b_all", tmp_path, "model.adapter.target_lang=tur")
    assert model["adapter"] == {"target_lang": "tur", "attn_dim": None}
    assert model["lr"] == 1e-3 and model["layerdrop"] == 0.0 and model["hidden_dropout"] == 0.0


def test_w2v_bert_follows_the_blog_without_a_new_adapter(tmp_path: Path) -> None:
    model = model_cfg("w2v_bert_2", tmp_path)
    assert model["lr"] == 5e-5 and model["mask_time_prob"] == 0.0 and model["layerdrop"] == 0.0
    assert (model["hidden_dropout"], model["attention_dropout"], model["feat_proj_dropout"]) == (0.0, 0.0, 0.0)
    assert "add_adapter" not in model and not model["freeze_feature_encoder"]  # no CNN; only the CTC head is new
