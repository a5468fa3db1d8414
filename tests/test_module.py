# pytest tests/test_module.py
"""The LightningModule on a tiny random-init config: loss, decoding, checkpoints without Hydra."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Wav2Vec2FeatureExtractor

from asr_lightning.collate import CTCCollator
from asr_lightning.module import ASRModule, linear_warmup_decay
from asr_lightning.text import build_vocab

TINY = {
    "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_dim": [16] * 7, "hidden_size": 32,
    "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "num_conv_pos_embeddings": 8,
    "num_conv_pos_embedding_groups": 2,
}  # fmt: skip


def tiny_module(**kwargs) -> ASRModule:
    torch.manual_seed(0)
    fe = Wav2Vec2FeatureExtractor(return_attention_mask=True).to_dict()
    return ASRModule(build_vocab(["HELLO WORLD"]), fe, pretrained=None, architecture=TINY, **kwargs)


def batch(module: ASRModule) -> dict:
    tok = module.processor.tokenizer
    examples = [
        {"input_values": torch.randn(n).numpy(), "labels": tok(t).input_ids, "id": str(i), "text": t}
        for i, (n, t) in enumerate([(16000, "HELLO WORLD"), (12000, "WORLD")])
    ]
    return CTCCollator(return_attention_mask=True)(examples)


def test_loss_is_finite_and_mean_reduced() -> None:
    module = tiny_module(freeze_feature_encoder=False)
    b = batch(module)
    logits = module(b)
    loss = module.ctc_loss(logits, b)
    assert torch.isfinite(loss) and loss.ndim == 0
    assert module.model.config.ctc_loss_reduction == "mean" and module.model.config.ctc_zero_infinity
    assert logits.shape[-1] == len(module.processor.tokenizer)  # (batch, frames, vocab)
    loss.backward()
    assert any(p.grad is not None for p in module.model.wav2vec2.feature_extractor.parameters())


def test_ctc_loss_equals_the_hf_loss_for_masked_models() -> None:
    """Our sync-free loss is the HF one where they mean the same (masked inputs: real frames only)."""
    module = tiny_module(layerdrop=0.0, mask_time_prob=0.0, hidden_dropout=0.0, activation_dropout=0.0)
    module.eval()
    b = batch(module)
    hf = module.model(b["input_values"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
    ours = module.ctc_loss(module(b), b)
    assert torch.allclose(ours, hf, rtol=1e-5), (ours, hf)


def test_ctc_loss_is_fp32_under_bf16_autocast() -> None:
    module = tiny_module()
    b = batch(module)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = module(b)
        loss = module.ctc_loss(logits, b)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32


def test_feature_encoder_frozen_by_default() -> None:
    module = tiny_module(freeze_feature_encoder=True)
    assert not any(p.requires_grad for p in module.model.wav2vec2.feature_extractor.parameters())


def test_greedy_decoding_collapses_repeats_and_blanks() -> None:
    module = tiny_module()
    vocab = module.processor.tokenizer.get_vocab()
    frames = ["H", "H", "<pad>", "E", "L", "<pad>", "L", "O", "|", "|", "W", "O", "R", "L", "D", "<pad>"]
    logits = torch.full((1, len(frames), len(vocab)), -10.0)
    for t, tok in enumerate(frames):
        logits[0, t, vocab[tok]] = 10.0
    assert module.transcribe_logits(logits) == ["HELLO WORLD"]
    logits[0, 0, vocab["<unk>"]] = 20.0  # specials never reach a transcript (as in transformers.pipeline)
    logits[0, 8, vocab["</s>"]] = 20.0
    assert module.transcribe_logits(logits) == ["HELLO WORLD"]


@torch.inference_mode()
def test_evaluation_decodes_each_clip_over_its_own_frames() -> None:
    """A clip's hypothesis is the same alone as padded in a batch: padding frames are not decoded."""
    module = tiny_module().eval()
    examples = [{"input_values": torch.randn(n).numpy(), "id": str(n), "text": ""} for n in (16000, 12000)]
    collate = CTCCollator(return_attention_mask=True)
    b = collate(examples)  # the 0.75 s clip is padded to 1 s
    logits = module(b)
    alone = [module.transcribe_logits(module(collate([e])))[0] for e in examples]
    assert module.transcribe_logits(logits, b["num_samples"]) == alone
    assert len(module.transcribe_logits(logits)[1]) > len(alone[1])  # random weights spell on the padding too


def test_none_keeps_the_configs_regularisation() -> None:
    module = tiny_module(layerdrop=None, mask_time_prob=0.3)
    assert module.model.config.layerdrop == 0.1 and module.model.config.mask_time_prob == 0.3


def test_warmup_then_linear_decay() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_warmup_decay(opt, num_training_steps=100, warmup_ratio=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[10] == max(lrs) == 1.0 and lrs[-1] < 0.02


def test_checkpoint_loads_without_hydra_and_export_roundtrips(tmp_path: Path) -> None:
    module = tiny_module()
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": "2.6",
    }
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "m.ckpt")
    loaded = ASRModule.from_checkpoint(tmp_path / "m.ckpt")
    b = batch(module)
    module.eval(), loaded.eval()
    assert torch.allclose(module(b), loaded(b))
    assert loaded.processor.tokenizer.get_vocab() == module.processor.tokenizer.get_vocab()


def test_pretrained_model_trains_in_train_mode(tmp_path: Path) -> None:
    """from_pretrained returns eval-mode modules; fine-tuning must not silently run without dropout."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    vocab = build_vocab(["HELLO WORLD"])
    Wav2Vec2ForCTC(Wav2Vec2Config(**TINY, vocab_size=len(vocab))).save_pretrained(tmp_path)
    fe = Wav2Vec2FeatureExtractor(return_attention_mask=True).to_dict()
    module = ASRModule(vocab, fe, pretrained=str(tmp_path), hidden_dropout=0.1)
    assert module.model.training and all(m.training for m in module.model.modules())


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    grads = []
    random_parts = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "final_dropout")
    no_dropout = {k: 0.0 for k in (*random_parts, "layerdrop", "mask_time_prob")}
    for checkpointing in (False, True):
        module = tiny_module(freeze_feature_encoder=False, gradient_checkpointing=checkpointing, **no_dropout)
        module.train()
        torch.manual_seed(1)
        b = batch(module)
        module.ctc_loss(module(b), b).backward()
        grads.append(module.model.lm_head.weight.grad.clone())
    assert module.model.wav2vec2.encoder.gradient_checkpointing  # transformers' flag for either API name
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_mask_setting_must_suit_the_encoder() -> None:
    fe = Wav2Vec2FeatureExtractor(return_attention_mask=False).to_dict()
    with pytest.raises(ValueError, match="data.return_attention_mask=true"):
        ASRModule(build_vocab(["A"]), fe, pretrained=None, architecture=TINY)
