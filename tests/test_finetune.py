# pytest tests/test_finetune.py
"""Fine-tuning recipes on a tiny random-init model: encoder freezing, tri_stage, masking, layer lr decay, adapters."""

from __future__ import annotations

import functools
import logging
import math
import re
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCTC, Wav2Vec2FeatureExtractor
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

from asr_lightning import encoders
from asr_lightning.collate import CTCCollator
from asr_lightning.errors import ConfigError
from asr_lightning.module import ASRModule, tri_stage
from asr_lightning.text import build_vocab
from asr_lightning.transcribe import load_model

TEXTS = ["HELLO WORLD", "WORLD", "HELL", "LOW"]
TINY = {
    "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_dim": [16] * 7, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "num_conv_pos_embeddings": 8,
    "num_conv_pos_embedding_groups": 2,
}  # fmt: skip
# no randomness that could leave a weight without a gradient in some step (a dropped layer, no mask drawn)
STEADY = {"layerdrop": 0.0, "mask_time_prob": 0.0}
ADAMW = functools.partial(torch.optim.AdamW, weight_decay=0.01)  # decay would move even gradient-less weights


FEATURES = Wav2Vec2FeatureExtractor(return_attention_mask=True).to_dict()


def tiny_module(architecture: dict | None = None, texts: list[str] = TEXTS, **kwargs) -> ASRModule:
    torch.manual_seed(0)
    arch = {**TINY, **(architecture or {})}
    return ASRModule(build_vocab(texts), FEATURES, pretrained=None, architecture=arch, optimizer=ADAMW, **kwargs)


def examples(module: ASRModule) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    tok = module.processor.tokenizer
    lengths = [16000, 12000, 14000, 10000]
    return [
        {"input_values": torch.randn(n, generator=gen).numpy(), "labels": tok(t).input_ids, "id": str(i), "text": t}
        for i, (n, t) in enumerate(zip(lengths, TEXTS, strict=True))
    ]


def fit(module: ASRModule, steps: int, root: Path, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    """Train `steps` optimiser steps on four random clips, two a batch, with a real Trainer (global_step counts)."""
    loader = torch.utils.data.DataLoader(examples(module), batch_size=2, collate_fn=CTCCollator(True))
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks or [], default_root_dir=root,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    return trainer


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {n for n in before if not torch.equal(before[n], after[n])}


@torch.no_grad()
def eval_logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    return model(batch["input_values"], attention_mask=batch["attention_mask"]).logits  # (batch, frames, vocab)


# ---------------------------------------------------------------- freeze_encoder_steps


class Snapshots(L.Callback):
    """The model's weights before each optimiser step (keyed by global_step) and at the end."""

    def __init__(self) -> None:
        self.at: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: ASRModule, batch: dict, batch_idx: int) -> None:
        self.at[trainer.global_step] = weights(pl_module.model)

    def on_train_end(self, trainer: L.Trainer, pl_module: ASRModule) -> None:
        self.at[trainer.global_step] = weights(pl_module.model)


def test_freeze_encoder_steps_trains_only_the_head_for_exactly_n_steps(tmp_path: Path) -> None:
    n = 3
    module = tiny_module(freeze_encoder_steps=n, **STEADY)
    snaps = Snapshots()
    fit(module, n + 2, tmp_path, [snaps])
    assert sorted(snaps.at) == list(range(n + 3))
    head = {name for name in snaps.at[0] if name.startswith(encoders.HEAD_PREFIX)}
    trainable = {name for name, p in module.model.named_parameters() if p.requires_grad}
    encoder = trainable - head
    cnn = {name for name in snaps.at[0] if ".feature_extractor." in name}
    assert head and encoder and cnn and not cnn & trainable  # the CNN is frozen as usual (freeze_feature_encoder)
    frozen_phase = changed(snaps.at[0], snaps.at[n])
    assert frozen_phase == head  # every encoder weight bit-identical after N steps; the head moved
    assert changed(snaps.at[n], snaps.at[n + 1]) == trainable  # step N+1 is the first to move the encoder
    assert changed(snaps.at[n], snaps.at[n + 2]) == trainable
    assert not changed(snaps.at[0], snaps.at[n + 2]) & cnn


def test_freeze_encoder_steps_is_off_outside_training() -> None:
    module = tiny_module(freeze_encoder_steps=5)
    assert not module.encoder_frozen  # no trainer: a plain forward (export, tests) runs the whole model


# ---------------------------------------------------------------- tri_stage


def fairseq_tri_stage_lr(step: int, total: int, lr: float, phase_ratio, final_scale: float, init_scale: float):
    """fairseq/optim/lr_scheduler/tri_stage_lr_scheduler.py, `step_update`, written out independently."""
    warmup, hold, decay = (int(total * r) for r in phase_ratio)
    init_lr, final_lr = init_scale * lr, final_scale * lr
    if step < warmup:
        return init_lr + (lr - init_lr) / warmup * step
    if step < warmup + hold:
        return lr
    if step <= warmup + hold + decay:
        return lr * math.exp(math.log(final_scale) / decay * (step - warmup - hold))
    return final_lr


def lr_curve(scheduler_factory, steps: int, lr: float) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = scheduler_factory(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_tri_stage_follows_fairseq_at_every_phase_boundary() -> None:
    lr, total = 3e-4, 100
    lrs = lr_curve(functools.partial(tri_stage, num_training_steps=total), total + 20, lr)
    assert lrs[0] == pytest.approx(0.01 * lr)  # init_lr_scale
    assert lrs[5] == pytest.approx((0.01 + 0.99 * 0.5) * lr)  # linear warmup, half way
    assert lrs[10] == pytest.approx(lr) and lrs[49] == pytest.approx(lr) and lrs[50] == pytest.approx(lr)  # hold
    assert lrs[75] == pytest.approx(lr * 0.05**0.5)  # exponential decay, half way
    assert lrs[100] == pytest.approx(0.05 * lr)  # final_lr_scale at the end of decay
    assert lrs[101:] == [pytest.approx(0.05 * lr)] * 19  # then held
    assert max(lrs) == pytest.approx(lr)
    expected = [fairseq_tri_stage_lr(s, total, lr, (0.1, 0.4, 0.5), 0.05, 0.01) for s in range(total + 20)]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_tri_stage_phases_other_than_the_default() -> None:
    lr, total, phases = 1.0, 40, (0.25, 0.25, 0.5)
    factory = functools.partial(tri_stage, num_training_steps=total, phase_ratio=phases, final_lr_scale=0.1)
    lrs = lr_curve(factory, total + 5, lr)
    expected = [fairseq_tri_stage_lr(s, total, lr, phases, 0.1, 0.01) for s in range(total + 5)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert lrs[10] == 1.0 and lrs[19] == 1.0 and lrs[40] == pytest.approx(0.1)


@pytest.mark.parametrize("phase_ratio", [(0.5, 0.5), (0.2, 0.2, 0.2), (-0.1, 0.6, 0.5), (0.1, 0.4, 0.5, 0.0)])
def test_tri_stage_rejects_phase_ratios_that_are_not_three_shares_of_one(phase_ratio) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=re.escape("model.scheduler.phase_ratio")):
        tri_stage(opt, num_training_steps=100, phase_ratio=phase_ratio)


def test_tri_stage_rejects_a_final_scale_of_zero() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=re.escape("model.scheduler.final_lr_scale")):
        tri_stage(opt, num_training_steps=100, final_lr_scale=0.0)


# ---------------------------------------------------------------- masking semantics


def masked_fraction(mask_prob: float, batch: int = 32, frames: int = 1000) -> float:
    state = np.random.get_state()  # transformers draws from numpy's global generator
    np.random.seed(0)
    try:
        mask = _compute_mask_indices((batch, frames), mask_prob=mask_prob, mask_length=10, min_masks=2)
    finally:
        np.random.set_state(state)
    return float(mask.mean())


def test_mask_time_prob_is_the_share_of_frames_masked_not_the_span_start_probability() -> None:
    # 65 spans of 10 over 1000 frames, overlapping: about 1 - exp(-0.65) = 0.48 of the frames (fairseq's 0.65)
    assert 0.40 < masked_fraction(0.65) < 0.56
    # 0.065 (the paper's span-start probability p, mistaken for transformers' share) masks ~6%: 10x too little
    assert masked_fraction(0.065) < 0.1


def test_module_masking_settings_reach_the_model_and_mask_about_half_the_frames() -> None:
    module = tiny_module(mask_time_prob=0.65, mask_time_length=10)
    config = module.model.config
    assert config.mask_time_prob == 0.65 and config.mask_time_length == 10
    model = module.model.wav2vec2.train()
    hidden = torch.randn(8, 1000, config.hidden_size)  # (batch, frames, hidden)
    np.random.seed(0)
    with torch.no_grad():
        masked = model._mask_hidden_states(hidden.clone())
    share = (masked == model.masked_spec_embed).all(-1).float().mean().item()
    assert 0.40 < share < 0.56


# ---------------------------------------------------------------- layer_lr_decay


def test_layer_lr_decay_gives_each_layer_its_own_learning_rate() -> None:
    lr, decay, layers = 1e-3, 0.5, 3
    module = tiny_module({"num_hidden_layers": layers}, lr=lr, layer_lr_decay=decay, freeze_feature_encoder=False)
    optimizer = module.configure_optimizers()["optimizer"]
    group_lr = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    trainable = {n: p for n, p in module.model.named_parameters() if p.requires_grad}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(group_lr) == len(trainable)

    def expected(name: str) -> float:
        if name.startswith("lm_head.") or name.startswith("wav2vec2.encoder.layer_norm."):  # above the layers
            return lr  # (a stable-layer-norm encoder's final norm)
        if match := re.search(r"\.encoder\.layers\.(\d+)\.", name):
            return lr * decay ** (layers - int(match.group(1)))
        return lr * decay ** (layers + 1)  # the CNN, feature projection, positional conv, mask embedding

    assert {n: group_lr[id(p)] for n, p in trainable.items()} == pytest.approx({n: expected(n) for n in trainable})
    kinds = {"feature_extractor", "feature_projection", "pos_conv_embed", "layers.0", "layers.2", "lm_head"}
    assert all(any(k in n for n in trainable) for k in kinds)  # every kind of weight was checked
    assert len(optimizer.param_groups) == layers + 2


def test_layer_lr_decay_keeps_frozen_weights_out_of_the_optimizer() -> None:
    module = tiny_module(layer_lr_decay=0.8)  # the CNN frozen (the default)
    optimizer = module.configure_optimizers()["optimizer"]
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in module.model.parameters() if p.requires_grad}


def test_layer_lr_decay_of_one_gives_a_single_group_at_the_peak_lr() -> None:
    module = tiny_module(lr=2e-4, layer_lr_decay=1.0)
    (group,) = module.configure_optimizers()["optimizer"].param_groups
    assert group["lr"] == 2e-4
    assert {id(p) for p in group["params"]} == {id(p) for p in module.model.parameters() if p.requires_grad}


# ---------------------------------------------------------------- MMS adapters

ADAPTER = {"target_lang": "xyz", "attn_dim": 8}


@pytest.fixture(scope="module")
def adapter_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """An adapter-trained tiny model: its weights before training, the untrained base saved, the export."""
    root = tmp_path_factory.mktemp("adapter")
    module = tiny_module(adapter=ADAPTER, lr=1e-2, **STEADY)
    base = root / "base"  # what predict.py's ckpt_path= would be: the base model with a processor
    module.model.save_pretrained(base)
    module.processor.save_pretrained(base)
    before = weights(module.model)
    fit(module, 3, root)
    return SimpleNamespace(module=module, before=before, base=base, export=module.export(root / "export"))


def test_adapter_training_changes_only_adapter_layers_and_the_head(adapter_run: SimpleNamespace) -> None:
    model = adapter_run.module.model
    adapters = set(model._get_adapters())
    assert any(".adapter_layer." in n for n in adapters) and "lm_head.weight" in adapters
    assert {n for n, p in model.named_parameters() if p.requires_grad} == adapters
    assert changed(adapter_run.before, weights(model)) == adapters  # everything else bit-identical


def test_adapter_training_logs_how_many_weights_train(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="asr_lightning.module"):
        module = tiny_module(adapter=ADAPTER)
    trained = sum(p.numel() for p in module.model._get_adapters().values())
    total = sum(p.numel() for p in module.model.parameters())
    assert trained < total
    assert f"{trained:,} of {total:,} weights trained" in caplog.text
    assert "adapter xyz initialised anew; the base model is frozen" in caplog.text


def test_export_writes_the_adapter_file(adapter_run: SimpleNamespace) -> None:
    path = adapter_run.export / "adapter.xyz.safetensors"
    assert path.is_file() and (adapter_run.export / "config.json").is_file()
    from safetensors.torch import load_file

    state = load_file(str(path))
    model = adapter_run.module.model
    assert state.keys() == model._get_adapters().keys()
    assert all(torch.equal(state[k], p.detach()) for k, p in model._get_adapters().items())


def test_adapter_file_turns_a_fresh_base_model_into_the_trained_one(adapter_run: SimpleNamespace) -> None:
    batch = CTCCollator(True)(examples(adapter_run.module))
    trained = eval_logits(adapter_run.module.model, batch)
    fresh = AutoModelForCTC.from_pretrained(adapter_run.base)
    assert not torch.equal(eval_logits(fresh, batch), trained)  # the base alone is not the trained model
    encoders.load_adapter_file(fresh, adapter_run.export / "adapter.xyz.safetensors")
    assert torch.equal(eval_logits(fresh, batch), trained)


def test_load_model_with_an_adapter_gives_the_trained_models_logits(adapter_run: SimpleNamespace) -> None:
    model, processor = load_model(adapter_run.base, adapter=adapter_run.export / "adapter.xyz.safetensors")
    assert not model.training
    tokenizer = adapter_run.module.processor.tokenizer
    assert processor.tokenizer.get_vocab() == tokenizer.get_vocab()
    batch = CTCCollator(True)(examples(adapter_run.module))
    assert torch.equal(eval_logits(model, batch), eval_logits(adapter_run.module.model, batch))


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"architecture": {"num_hidden_layers": 1}}, "not this model's adapter weights"),
        ({"adapter": {"target_lang": "xyz", "attn_dim": 4}}, "does not fit this base model"),
    ],
    ids=["other_layer_count", "other_attn_dim"],
)
def test_an_adapter_from_another_base_model_is_refused_clearly(
    adapter_run: SimpleNamespace, tmp_path: Path, other: dict, message: str
) -> None:
    other_module = tiny_module(**{"adapter": ADAPTER, **other})
    path = encoders.save_adapter(other_module.model, tmp_path, "xyz")
    fresh = AutoModelForCTC.from_pretrained(adapter_run.base)
    with pytest.raises(ValueError, match=message):
        encoders.load_adapter_file(fresh, path)
    with pytest.raises(ConfigError, match=re.escape(f"adapter={path}")):
        load_model(adapter_run.base, adapter=path)


def test_a_missing_or_unreadable_adapter_file_is_refused_clearly(adapter_run: SimpleNamespace, tmp_path: Path) -> None:
    missing = tmp_path / "adapter.abc.safetensors"
    with pytest.raises(FileNotFoundError, match="no such file"):
        encoders.load_adapter_file(AutoModelForCTC.from_pretrained(adapter_run.base), missing)
    with pytest.raises(ConfigError, match=re.escape(f"adapter={missing}: no such file")):
        load_model(adapter_run.base, adapter=missing)
    cut = tmp_path / "adapter.cut.safetensors"
    cut.write_bytes((adapter_run.export / "adapter.xyz.safetensors").read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        encoders.load_adapter_file(AutoModelForCTC.from_pretrained(adapter_run.base), cut)


def test_an_adapter_for_another_vocabulary_brings_its_own_output_layer(
    adapter_run: SimpleNamespace, tmp_path: Path
) -> None:
    other = tiny_module(texts=["QUICK BROWN FOX JUMPS"], adapter=ADAPTER).model
    assert other.lm_head.out_features != adapter_run.module.model.lm_head.out_features
    fresh = AutoModelForCTC.from_pretrained(adapter_run.base)
    encoders.load_adapter_file(fresh, encoders.save_adapter(other, tmp_path, "abc"))
    assert fresh.lm_head.out_features == fresh.config.vocab_size == other.lm_head.out_features
    assert all(torch.equal(p, other._get_adapters()[k]) for k, p in fresh._get_adapters().items())


@pytest.mark.parametrize("checkpoint_vocab", [50, None], ids=["its_own_vocabulary", "this_vocabulary"])
def test_a_checkpoints_adapter_is_loaded_with_a_head_of_this_vocabulary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, checkpoint_vocab: int | None
) -> None:
    """As MMS ships adapters: each language's adapter file with its own output layer, beside the base model."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    vocab = build_vocab(TEXTS)
    size = checkpoint_vocab or len(vocab)
    torch.manual_seed(1)
    checkpoint = Wav2Vec2ForCTC(Wav2Vec2Config(**TINY, adapter_attn_dim=8, vocab_size=size))
    checkpoint.save_pretrained(tmp_path)
    shipped = {k: p.detach().clone() for k, p in checkpoint._get_adapters().items()}
    encoders.save_adapter(checkpoint, tmp_path, "xyz")
    with caplog.at_level(logging.INFO, logger="asr_lightning.module"):
        module = ASRModule(vocab, FEATURES, pretrained=str(tmp_path), adapter={"target_lang": "xyz"}, optimizer=ADAMW)
    model = module.model
    assert model.lm_head.out_features == model.config.vocab_size == len(module.processor.tokenizer)
    layers = [k for k in shipped if not k.startswith(encoders.HEAD_PREFIX)]
    assert layers and all(torch.equal(model._get_adapters()[k], shipped[k]) for k in layers)
    head_loaded = torch.equal(model.lm_head.weight, shipped["lm_head.weight"])
    assert head_loaded == (checkpoint_vocab is None)  # another vocabulary's output layer cannot be kept
    assert f"adapter xyz loaded from {tmp_path}" in caplog.text
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(model._get_adapters())


def test_an_adapter_needs_a_base_model_with_adapter_layers(adapter_run: SimpleNamespace) -> None:
    plain = tiny_module().model
    with pytest.raises(ValueError, match="has no adapter layers"):
        encoders.load_adapter_file(plain, adapter_run.export / "adapter.xyz.safetensors")


def test_adapter_training_needs_adapter_layers() -> None:
    with pytest.raises(ValueError, match=re.escape("model.adapter.attn_dim")):
        tiny_module(adapter={"target_lang": "xyz"})  # a random-init model without adapter_attn_dim
    # transformers builds adapter layers only in stable-layer-norm layers: elsewhere only the head would train
    with pytest.raises(ValueError, match="do_stable_layer_norm=true"):
        tiny_module({"do_stable_layer_norm": False}, adapter=ADAPTER)


# ---------------------------------------------------------------- check_hparams


@pytest.mark.parametrize(
    ("hparams", "key"),
    [
        ({"freeze_encoder_steps": -1}, "model.freeze_encoder_steps"),
        ({"freeze_encoder_steps": 2.5}, "model.freeze_encoder_steps"),
        ({"freeze_encoder_steps": True}, "model.freeze_encoder_steps"),
        ({"layer_lr_decay": 0}, "model.layer_lr_decay"),
        ({"layer_lr_decay": 1.5}, "model.layer_lr_decay"),
        ({"adapter": {"target_lang": "fra", "attn_size": 16}}, "model.adapter"),
        ({"adapter": OmegaConf.create({"target_lang": "fra", "lang": "x"})}, "model.adapter"),
        ({"scheduler": "tri_stage"}, "model/scheduler=tri_stage"),
    ],
)
def test_check_hparams_rejects_bad_fine_tuning_settings_naming_the_key(hparams: dict, key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(key)):
        ASRModule.check_hparams(**hparams)


@pytest.mark.parametrize(
    "hparams",
    [
        {"freeze_encoder_steps": 0, "layer_lr_decay": 1.0, "adapter": None},
        {"freeze_encoder_steps": 10000, "layer_lr_decay": 0.75, "adapter": {"target_lang": "fra", "attn_dim": 16}},
        {"adapter": OmegaConf.create({"target_lang": None, "attn_dim": None})},  # as Hydra passes the config group
        {"scheduler": functools.partial(tri_stage, phase_ratio=(0.1, 0.4, 0.5))},
    ],
)
def test_check_hparams_accepts_valid_fine_tuning_settings(hparams: dict) -> None:
    ASRModule.check_hparams(**hparams)


def test_the_constructor_checks_before_building() -> None:
    with pytest.raises(ValueError, match=re.escape("model.layer_lr_decay")):
        tiny_module(layer_lr_decay=0)
