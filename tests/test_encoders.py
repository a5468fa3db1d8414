# pytest tests/test_encoders.py
"""Every encoder family through the Auto classes, on tiny checkpoints saved here with `save_pretrained`:
loaded whole or not at all, exported bit-identical, trained, transcribed and read by `transformers.pipeline`."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.config import DEMO_DIR, compose_cfg
from helpers.encoders import DEMO_VOCAB, ENCODERS, save_encoder
from hydra.errors import InstantiationException
from safetensors.torch import load_file

import predict
import train
from asr_lightning.audio import load_audio
from asr_lightning.collate import CTCCollator
from asr_lightning.errors import EncoderLoadError
from asr_lightning.module import ASRModule
from asr_lightning.scoring import read_jsonl
from asr_lightning.text import build_vocab

KINDS = [*ENCODERS, "hubert_without_tokenizer"]
CLIPS = sorted((DEMO_DIR / "audio").glob("*.flac"))[:4]


def checkpoint(kind: str, root: Path) -> Path:
    if kind == "hubert_without_tokenizer":  # pretrain-only Hub repos (facebook/hubert-base-ls960) ship none
        return save_encoder("hubert", root / kind, tokenizer=False)
    return save_encoder(kind, root / kind)


@pytest.mark.parametrize("kind", KINDS)
def test_train_false_exports_the_encoder_bit_identical_and_predict_and_pipeline_read_it(
    kind: str, tmp_path: Path, demo_cfg, caplog: pytest.LogCaptureFixture
) -> None:
    source = checkpoint(kind, tmp_path / "ckpt")
    with caplog.at_level(logging.INFO):
        metrics = train.train(demo_cfg(f"model.pretrained={source}", "train=false", "+trainer.limit_test_batches=1"))
    export = Path(metrics["hf_model"])
    # every encoder tensor as saved (a base-model checkpoint: no prefix), under the CTC model's prefix
    exported, original = load_file(export / "model.safetensors"), load_file(source / "model.safetensors")
    (base,) = {k.split(".")[0] for k in exported if not k.startswith("lm_head.")}  # hubert, wav2vec2_bert, ...
    assert original and all(torch.equal(exported[f"{base}.{k}"], v) for k, v in original.items())
    assert "encoder loaded whole; CTC head newly initialised" in caplog.text
    vocab_log = "built from the train split" if kind == "hubert_without_tokenizer" else f"the tokenizer of {source}"
    assert vocab_log in caplog.text

    out = tmp_path / "pred.jsonl"
    cfg = compose_cfg("predict", [f"ckpt_path={export}", f"inputs=[{','.join(map(str, CLIPS))}]",
                                  f"output={out}", "device=cpu"], tmp_path / "pred")  # fmt: skip
    results = predict.predict(cfg)
    assert len(results) == len(CLIPS) and all("text" in r and "error" not in r for r in results)

    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(export), device="cpu")
    assert isinstance(asr(load_audio(CLIPS[0], 16000))["text"], str)


@pytest.mark.parametrize("kind", KINDS)
def test_a_few_training_steps_give_a_finite_loss(kind: str, tmp_path: Path) -> None:
    source = checkpoint(kind, tmp_path)
    module = ASRModule(
        build_vocab(["RAISE MY CASH LIMIT"]),
        _feature_extractor(source),
        pretrained=str(source),
        mask_time_prob=0.0,  # the tiny clips are shorter than two masks of ten frames
    )
    batch = _batch(module)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    for _ in range(3):
        loss = module.ctc_loss(module(batch), batch)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    moved = [n for n, p in module.model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("lm_head.") for n in moved) and any(not n.startswith("lm_head.") for n in moved)


def test_a_config_naming_wav2vec2_over_hubert_weights_fails_before_training(tmp_path: Path, demo_cfg) -> None:
    source = save_encoder("hubert", tmp_path / "mislabelled", head=True)  # weights under `hubert.`
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(
        json.dumps(config | {"model_type": "wav2vec2", "architectures": ["Wav2Vec2Model"]})
    )
    cfg = demo_cfg(f"model.pretrained={source}")
    with pytest.raises(InstantiationException) as info:
        train.train(cfg)
    err = info.value.__cause__
    assert isinstance(err, EncoderLoadError)
    for part in (str(source), "'wav2vec2'", "Wav2Vec2ForCTC", "missing", "wav2vec2.encoder.", "hubert"):
        assert part in str(err)
    assert not list((Path(cfg.paths.output_dir) / "checkpoints").glob("*.ckpt"))  # it never trained


def test_an_encoder_weight_of_another_shape_fails(tmp_path: Path) -> None:
    source = save_encoder("wavlm", tmp_path / "wavlm")
    weights = load_file(source / "model.safetensors")
    key = next(k for k in weights if k.endswith("feature_projection.projection.weight"))
    weights[key] = torch.zeros(weights[key].shape[0], weights[key].shape[1] + 1)
    from safetensors.torch import save_file

    save_file(weights, str(source / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(EncoderLoadError, match="of another shape"):
        ASRModule(DEMO_VOCAB, _feature_extractor(source), pretrained=str(source))


def test_vocab_pretrained_without_a_tokenizer_names_the_fix(tmp_path: Path, demo_cfg) -> None:
    source = save_encoder("hubert", tmp_path / "hubert", tokenizer=False)
    with pytest.raises(ValueError, match="ships no tokenizer.*data.vocab=auto or train"):
        train.train(demo_cfg(f"model.pretrained={source}", "data.vocab=pretrained"))


def test_auto_vocab_builds_from_train_when_the_tokenizer_cannot_spell_it(tmp_path: Path, demo_cfg) -> None:
    source = save_encoder("hubert", tmp_path / "hubert")
    (source / "vocab.json").write_text(json.dumps(build_vocab(["XYZ"])))  # cannot spell the demo's transcripts
    cfg = demo_cfg(f"model.pretrained={source}")
    import hydra

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    assert dm.vocab_source == "train" and set("RAISE") <= set(dm.vocab)


def test_the_demo_recipe_runs_on_any_audiofolder(tmp_path: Path, demo_cfg) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(DEMO_DIR, corpus)
    cfg = demo_cfg(
        "data=audiofolder", f"data.data_dir={corpus}", "data.num_workers=0", "trainer.max_steps=2", "test=false"
    )
    metrics = train.train(cfg)
    assert np.isfinite(metrics["train/loss"])


def _feature_extractor(source: Path) -> dict:
    from transformers import AutoFeatureExtractor

    return AutoFeatureExtractor.from_pretrained(source).to_dict()


def _batch(module: ASRModule) -> dict:
    tok, frontend = module.processor.tokenizer, module.frontend
    examples = []
    for i, (path, text) in enumerate(zip(CLIPS[:2], ["RAISE MY CASH LIMIT", "CASH"], strict=True)):
        audio = load_audio(path, 16000)
        examples.append({frontend.input_name: frontend.features(audio), "input_length": len(audio),
                         "labels": tok(text).input_ids, "id": str(i), "text": text})  # fmt: skip
    collate = CTCCollator(frontend.uses_attention_mask, input_name=frontend.input_name)
    return collate(examples)


def test_filterbank_model_predicts_a_data_split_as_its_test_stage(tmp_path: Path, demo_cfg, cache_dir: Path) -> None:
    """w2v-BERT's cached `input_features` (frames, 160) go through predict.py's data path as through the test stage."""
    source = save_encoder("w2v_bert", tmp_path / "ckpt")
    cfg = demo_cfg(f"model.pretrained={source}", "train=false")
    metrics = train.train(cfg)
    test_stage = {
        r["id"]: r["hypothesis"] for r in read_jsonl(Path(metrics["hf_model"]).parent / "predictions" / "test.jsonl")
    }
    out = tmp_path / "test.jsonl"
    overrides = [f"ckpt_path={metrics['hf_model']}", "data=demo", "split=test", f"output={out}", "device=cpu",
                 "data.max_samples=48", "data.num_proc=1", f"data.cache_dir={cache_dir}"]  # fmt: skip
    got = {r["id"]: r["text"] for r in predict.predict(compose_cfg("predict", overrides, tmp_path / "pred"))}
    assert got == test_stage and len(got) > 1
