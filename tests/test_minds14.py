# pytest tests/test_minds14.py
"""The MInDS-14 + wav2vec2-base code path, against local stand-ins shaped like the Hub's.

A parquet dataset directory laid out like `PolyAI/minds14` (one `train` split per language config,
columns `path`, `audio` (bytes + path), `transcription`, `english_transcription`, `intent_class`,
`lang_id`) and a `save_pretrained` directory shaped like `facebook/wav2vec2-base` (group-norm encoder,
no attention mask, the uppercase English character vocab).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import datasets
import pytest
import soundfile as sf
import torch
from helpers.config import DEMO_DIR, FAST, compose_cfg
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

import train
from asr_lightning.text import make_tokenizer

# facebook/wav2vec2-base's vocab.json
BASE_VOCAB = {tok: i for i, tok in enumerate(["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"])}
INTENTS = ["abroad", "address", "app_error", "atm_limit", "balance", "business_loan", "card_issues",
           "cash_deposit", "direct_debit", "freeze", "high_value_payment", "joint_account",
           "latest_transactions", "pay_bill"]  # fmt: skip
LANGS = ["cs-CZ", "de-DE", "en-AU", "en-GB", "en-US", "es-ES", "fr-FR", "it-IT", "ko-KR", "nl-NL", "pl-PL",
         "pt-PT", "ru-RU", "zh-CN"]  # fmt: skip


@pytest.fixture(scope="module")
def minds14_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("minds14")
    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        demo = list(csv.DictReader(f))[:40]
    for lang, text_of in (
        ("en-US", lambda r: r["transcription"]),
        ("ko-KR", lambda r: "안녕하세요 잔액을 확인하고 싶어요"),
    ):
        rows = {k: [] for k in ("path", "audio", "transcription", "english_transcription", "intent_class", "lang_id")}
        for r in demo:
            audio, sr = sf.read(DEMO_DIR / r["file_name"])
            buf = io.BytesIO()
            sf.write(buf, audio, sr, format="WAV", subtype="PCM_16")  # the Hub's clips are 8 kHz WAV bytes
            path = f"{lang}~{INTENTS[int(r['intent_class'])].upper()}/{r['id']}.wav"
            rows["path"].append(path)
            rows["audio"].append({"bytes": buf.getvalue(), "path": path})
            rows["transcription"].append(text_of(r))
            rows["english_transcription"].append(r["transcription"])
            rows["intent_class"].append(int(r["intent_class"]))
            rows["lang_id"].append(LANGS.index(lang))
        ds = datasets.Dataset.from_dict(rows)
        ds = ds.cast(datasets.Features({
            "path": datasets.Value("string"), "audio": datasets.Audio(sampling_rate=8000),
            "transcription": datasets.Value("string"), "english_transcription": datasets.Value("string"),
            "intent_class": datasets.ClassLabel(names=INTENTS), "lang_id": datasets.ClassLabel(names=LANGS),
        }))  # fmt: skip
        (root / lang).mkdir()
        ds.to_parquet(root / lang / "train-00000-of-00001.parquet")
    configs = "".join(
        f"- config_name: {lang}\n  data_files:\n  - split: train\n    path: {lang}/train-*\n"
        for lang in ("en-US", "ko-KR")
    )
    (root / "README.md").write_text(f"---\nconfigs:\n{configs}---\n# MInDS-14 stand-in\n")
    return root


@pytest.fixture(scope="module")
def base_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model saved like facebook/wav2vec2-base: group norm, no attention mask, its vocab."""
    out = tmp_path_factory.mktemp("wav2vec2-base")
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        conv_dim=(16,) * 7, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, vocab_size=len(BASE_VOCAB),
    )  # fmt: skip
    Wav2Vec2ForCTC(config).save_pretrained(out)
    fe = Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True)
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=make_tokenizer(BASE_VOCAB)).save_pretrained(out)
    return out


def minds14_cfg(tmp_path: Path, standin: Path, model: Path, *overrides: str):
    return compose_cfg(
        "train",
        [*FAST, "data=minds14", "model=wav2vec2_base", f"data.dataset={standin}", f"model.pretrained={model}",
         "data.num_workers=0", "model.mask_feature_prob=0.0", *overrides],  # 32 channels: no 64-wide masks
        tmp_path / "run",
        tmp_path / "cache",
    )  # fmt: skip


def test_minds14_path_trains_with_pretrained_vocab(minds14_standin: Path, base_standin: Path, tmp_path: Path) -> None:
    cfg = minds14_cfg(tmp_path, minds14_standin, base_standin, "debug=fdr")
    metrics = train.train(cfg)
    assert "test/wer" in metrics
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert (len(splits["train"]), len(splits["validation"]), len(splits["test"])) == (
        28,
        4,
        8,
    )  # 70/10/20 of 40
    assert splits["train"][0].startswith("en-US~")  # ids are the `path` column
    assert json.loads((tmp_path / "run" / "vocab.json").read_text()) == BASE_VOCAB
    rows = [json.loads(r) for r in (tmp_path / "run" / "predictions" / "test.jsonl").read_text().splitlines()]
    assert {"intent_class", "lang_id"} <= set(rows[0])
    assert {r["intent_class"] for r in rows} <= set(INTENTS)  # class labels as names, for readable breakdowns
    analysis = json.loads((tmp_path / "run" / "analysis" / "test.json").read_text())
    assert set(analysis["by_intent_class"]) <= set(INTENTS) and set(analysis["by_lang_id"]) == {"en-US"}


def test_max_samples_takes_the_first_rows(minds14_standin: Path, base_standin: Path, tmp_path: Path) -> None:
    import hydra

    cfg = minds14_cfg(tmp_path, minds14_standin, base_standin, "data.max_samples=20", "data.val_fraction=0.2",
                      "data.test_fraction=0.0")  # fmt: skip
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    assert (len(dm.splits["train"]), len(dm.splits["validation"]), len(dm.splits["test"])) == (16, 4, 0)
    used = set(dm.splits["train"]["id"]) | set(dm.splits["validation"]["id"])
    first20 = set(datasets.load_dataset(str(minds14_standin), "en-US", split="train[:20]")["path"])
    assert used == first20


def test_pretrained_vocab_that_cannot_spell_the_language_fails_clearly(
    minds14_standin: Path, base_standin: Path, tmp_path: Path
) -> None:
    cfg = minds14_cfg(tmp_path, minds14_standin, base_standin, "data.config=ko-KR", "data.vocab=pretrained")
    with pytest.raises(ValueError, match=r"cannot spell .*data.vocab=train \(or auto\)"):
        train.train(cfg)


@pytest.mark.parametrize("vocab", ["train", "auto"])  # auto: the English tokenizer cannot spell Korean
def test_other_language_with_train_vocab(minds14_standin: Path, base_standin: Path, tmp_path: Path, vocab: str) -> None:
    cfg = minds14_cfg(tmp_path, minds14_standin, base_standin, "data.config=ko-KR", f"data.vocab={vocab}", "debug=fdr")
    train.train(cfg)
    vocab = json.loads((tmp_path / "run" / "vocab.json").read_text())
    assert "잔" in vocab and len(vocab) != len(BASE_VOCAB)


def test_unknown_language_config_names_the_available_ones(minds14_standin: Path, base_standin: Path, tmp_path: Path):
    cfg = minds14_cfg(tmp_path, minds14_standin, base_standin, "data.config=xx-XX")
    with pytest.raises(ValueError, match=r"data.config='xx-XX' is not a config of .*Available: \['en-US', 'ko-KR'\]"):
        train.train(cfg)
    assert not (tmp_path / "run" / "splits.json").exists()
