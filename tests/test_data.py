# pytest tests/test_data.py
"""The data module on the committed demo corpus (splits, filters, caching, length-sorted evaluation) and on
generated bad clips of every kind (skipped and counted by reason, or failing fast)."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import hydra
import numpy as np
import pytest
import soundfile as sf
import soxr
from helpers.config import DEMO_DIR
from transformers import Wav2Vec2Config, Wav2Vec2Processor

from asr_lightning.audio import AudioError
from asr_lightning.data import ASRDataModule
from asr_lightning.frontend import ctc_min_frames
from asr_lightning.index import SKIP_REASONS
from asr_lightning.sampling import DurationBatchSampler, LengthGroupedBatchSampler
from asr_lightning.text import build_vocab, load_feature_extractor, make_tokenizer

SR = 16000


def make_dm(demo_cfg, *overrides: str) -> ASRDataModule:
    dm = hydra.utils.instantiate(demo_cfg(*overrides).data)
    dm.setup()
    return dm


def test_demo_split_is_speaker_disjoint_and_written(demo_cfg, tmp_path: Path) -> None:
    dm = make_dm(demo_cfg)
    speakers = {s: {dm.metadata[s][i]["speaker"] for i in dm.splits[s]["id"]} for s in dm.splits}
    assert speakers["train"] and speakers["test"]
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["validation"]
    saved = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert set(saved["train"]) >= set(dm.splits["train"]["id"])
    assert saved["_meta"]["group_column"] == "speaker"
    assert json.loads((tmp_path / "run" / "vocab.json").read_text()) == dm.vocab
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["train"]["kept"] == len(dm.splits["train"])


def test_splits_file_reproduces_the_split(demo_cfg, tmp_path: Path) -> None:
    first = make_dm(demo_cfg)
    splits_file = tmp_path / "run" / "splits.json"
    kept = splits_file.read_text()
    other = make_dm(demo_cfg, "data.split_seed=7", f"data.splits_file={splits_file}")
    for split in ("train", "validation", "test"):
        assert sorted(other.splits[split]["id"]) == sorted(first.splits[split]["id"])
    assert json.loads(splits_file.read_text())["train"] == json.loads(kept)["train"]


def test_other_split_seed_gives_another_split(demo_cfg) -> None:
    a = make_dm(demo_cfg)
    b = make_dm(demo_cfg, "data.split_seed=7")
    assert sorted(a.splits["test"]["id"]) != sorted(b.splits["test"]["id"])


def test_features_are_normalised_16k_and_labels_decode(demo_cfg) -> None:
    dm = make_dm(demo_cfg)
    ex = dm.dataset("train")[0]  # decoded and normalised as a DataLoader worker does
    x = ex["input_values"]
    assert x.dtype == np.float32 and abs(x.mean()) < 1e-3 and abs(x.std() - 1) < 1e-2
    tokenizer = make_tokenizer(dm.vocab)
    assert tokenizer.decode(ex["labels"].tolist(), group_tokens=False) == ex["text"]
    assert ex["text"] == ex["text"].upper()


def test_filters_are_counted(demo_cfg) -> None:
    dm = make_dm(demo_cfg, "data.max_duration_s=1.6", "data.min_duration_s=1.2")  # demo clips: 0.8-2.2 s
    report = dm.report["train"]
    assert report["skipped"]["too_long"] > 0 and report["skipped"]["too_short"] > 0
    assert report["kept"] + sum(report["skipped"].values()) == report["rows"]
    lengths = np.asarray(dm.splits["train"]["input_length"]) / 16000
    assert lengths.min() >= 1.2 and lengths.max() <= 1.6
    assert len(report["skipped_ids"]["too_long"]) == report["skipped"]["too_long"]


def test_unalignable_label_is_filtered() -> None:
    frames = 49  # wav2vec2's frames of 1 s (tests/test_frontend.py)
    assert ctc_min_frames(list(range(frames))) <= frames < ctc_min_frames(list(range(frames + 1)))
    assert ctc_min_frames([5] * 25) == 49  # repeats need a blank between them


def test_second_setup_reuses_the_preprocessing_cache(demo_cfg) -> None:
    first = make_dm(demo_cfg)
    second = make_dm(demo_cfg)
    assert (
        first.splits["train"].cache_files and second.splits["train"]._fingerprint == first.splits["train"]._fingerprint
    )


def test_eval_batches_are_length_sorted(demo_cfg) -> None:
    dm = make_dm(demo_cfg)
    lengths = [int(b["input_lengths"].max()) for b in dm.val_dataloader()]
    assert lengths == sorted(lengths, reverse=True)
    seen = [i for b in dm.val_dataloader() for i in b["ids"]]
    assert sorted(seen) == sorted(dm.splits["validation"]["id"])


def test_duration_batching_fills_batches_to_the_budget(demo_cfg) -> None:
    dm = make_dm(demo_cfg, "data.max_batch_seconds=20")
    loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, DurationBatchSampler)
    batches = list(loader)
    assert all(len(b["ids"]) * max(b["num_samples"]) <= 20 * 16000 for b in batches)
    assert sorted(i for b in batches for i in b["ids"]) == sorted(dm.splits["train"]["id"])
    assert isinstance(dm.val_dataloader().batch_sampler, LengthGroupedBatchSampler)  # eval: sorted, fixed size


def test_budget_below_max_duration_fails_before_loading() -> None:
    with pytest.raises(ValueError, match=r"data.max_batch_seconds=10 is below data.max_duration_s=15"):
        ASRDataModule(dataset="audiofolder", data_dir=".", vocab="train", max_batch_seconds=10, max_duration_s=15)


def test_bad_fractions_fail_before_loading() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        ASRDataModule(dataset="audiofolder", data_dir=".", val_fraction=0.5, test_fraction=0.6, vocab="train")


def test_missing_column_names_the_column(demo_cfg) -> None:
    with pytest.raises(KeyError, match="sentence"):
        make_dm(demo_cfg, "data.text_column=sentence")


def copy_demo_clips(folder: Path, n: int) -> list[dict[str, str]]:
    """The first `n` demo clips copied into `folder/audio`; their metadata rows."""
    (folder / "audio").mkdir(parents=True)
    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    for r in rows:
        shutil.copy(DEMO_DIR / r["file_name"], folder / r["file_name"])
    return rows


def test_bad_clips_are_skipped_counted_and_named(tmp_path: Path, cache_dir: Path, caplog) -> None:
    folder = tmp_path / "corpus"
    rows = copy_demo_clips(folder, 12)
    (folder / "audio" / "broken.flac").write_bytes(b"fLaC but not really")
    rows += [
        {"file_name": "audio/broken.flac", "transcription": "hello", "id": "broken"},
        {"file_name": rows[0]["file_name"], "transcription": " ?! ", "id": "empty"},
        {"file_name": rows[1]["file_name"], "transcription": "a b " * 40, "id": "too-many-labels"},
        {"file_name": rows[2]["file_name"], "transcription": "None", "id": "NA"},  # pandas would read both as missing
    ]
    write_metadata(folder, rows)
    dm = ASRDataModule(
        dataset="audiofolder", data_dir=str(folder), id_column="id", vocab="train", val_fraction=0.0,
        test_fraction=0.0, cache_dir=str(cache_dir), output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    dm.setup()
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())["train"]
    assert report["skipped"] == dict.fromkeys(SKIP_REASONS, 0) | {
        "undecodable": 1,
        "ignored_chars_only": 1,
        "unalignable": 1,
    }
    assert report["skipped_ids"] == {
        "undecodable": ["broken"],
        "ignored_chars_only": ["empty"],
        "unalignable": ["too-many-labels"],
    }
    assert report["kept"] == 13 and len(dm.splits["train"]) == 13
    assert "broken.flac" in caplog.text
    assert dict(zip(dm.splits["train"]["id"], dm.splits["train"]["text"], strict=True))["NA"] == "NONE"


def test_a_wav_cut_short_mid_data_is_counted_as_truncated(tmp_path: Path, cache_dir: Path) -> None:
    folder = tmp_path / "corpus"
    rows = copy_demo_clips(folder, 12)
    speech, sr = sf.read(DEMO_DIR / rows[0]["file_name"], dtype="float32")
    sf.write(folder / "audio" / "cut.wav", speech, sr)
    cut = (folder / "audio" / "cut.wav").read_bytes()
    (folder / "audio" / "cut.wav").write_bytes(cut[: len(cut) // 2])  # an interrupted copy: the header is whole
    rows.append({"file_name": "audio/cut.wav", "transcription": rows[0]["transcription"], "id": "cut"})
    write_metadata(folder, rows)
    settings = dict(
        dataset="audiofolder", data_dir=str(folder), id_column="id", vocab="train", val_fraction=0.0,
        test_fraction=0.0, cache_dir=str(cache_dir), output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    ASRDataModule(**settings).setup()
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())["train"]
    assert report["skipped"] == dict.fromkeys(SKIP_REASONS, 0) | {"truncated": 1}
    assert report["skipped_ids"] == {"truncated": ["cut"]} and report["kept"] == 12
    with pytest.raises(AudioError, match=r"train clip cut: .*cut\.wav is truncated: its header promises") as info:
        ASRDataModule(**settings | {"on_bad_audio": "error", "output_dir": str(tmp_path / "run2")}).setup()
    assert info.value.reason == "truncated" and "(truncated); data.on_bad_audio=skip" in str(info.value)


# ---------------------------------------------------------------- one corpus with every kind of bad clip

CLEAN = 12  # demo clips copied as they are
# Demo clips re-encoded (resampled from their 8 kHz): each must decode and be kept.
VALID_VARIANTS = {
    # id: (file name, samplerate, channels, soundfile kwargs)
    "stereo-44k1": ("stereo.wav", 44100, 2, {"subtype": "PCM_16"}),
    "48k": ("48k.wav", 48000, 1, {"subtype": "PCM_16"}),
    "pcm24": ("pcm24.wav", 16000, 1, {"subtype": "PCM_24"}),
    "float32": ("float32.wav", 16000, 1, {"subtype": "FLOAT"}),
    "flac": ("16k.flac", 16000, 1, {"format": "FLAC"}),
    "ogg-vorbis": ("vorbis.ogg", 16000, 1, {"format": "OGG", "subtype": "VORBIS"}),
}
# id: the skip reason the data module must give it (each is one of the rows below)
EXPECTED_SKIPS = {
    "corrupt": "undecodable",
    "truncated-header": "undecodable",
    "zero-length": "empty_audio",
    "nan-samples": "non_finite_audio",
    "missing": "missing_file",
    "silence": "silent",
    "empty-text": "empty_text",
    "whitespace-text": "empty_text",
    "ignored-only": "ignored_chars_only",
    "oov": "oov_chars",
    "too-short": "too_short",
    "too-long": "too_long",
    "unalignable": "unalignable",
}
MAX_DURATION_S = 4.0  # demo clips are at most ~2.2 s; "too-long" is 3x this
# wav2vec2-base's character set: what a pretrained English checkpoint can spell
ENGLISH_VOCAB = build_vocab(["ABCDEFGHIJKLMNOPQRSTUVWXYZ'"])


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audiofolder: CLEAN demo clips, the VALID_VARIANTS and one row per EXPECTED_SKIPS kind, all generated here.

    Also `pretrained/` (a tokenizer + feature extractor with ENGLISH_VOCAB, so that a transcript can hold
    characters the vocab cannot spell) and `splits.json` (everything in train but `oov-eval`, in validation).
    """
    root = tmp_path_factory.mktemp("bad_corpus")
    audio = root / "audio"
    audio.mkdir()
    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        demo = list(csv.DictReader(f))[: CLEAN + len(VALID_VARIANTS) + 1]
    rows = []
    for r in demo[:CLEAN]:
        shutil.copy(DEMO_DIR / r["file_name"], root / r["file_name"])
        rows.append(r)
    for r, (clip_id, (name, sr, channels, kwargs)) in zip(demo[CLEAN:-1], VALID_VARIANTS.items(), strict=True):
        x, demo_sr = sf.read(DEMO_DIR / r["file_name"], dtype="float32")
        x = soxr.resample(x, demo_sr, sr)
        sf.write(audio / name, np.stack([x] * channels, axis=1) if channels > 1 else x, sr, **kwargs)
        rows.append({"file_name": f"audio/{name}", "transcription": r["transcription"], "id": clip_id})
    speech, speech_sr = sf.read(DEMO_DIR / demo[-1]["file_name"], dtype="float32")
    sf.write(audio / "ok.wav", speech, speech_sr)
    sf.write(audio / "truncated.wav", speech, speech_sr)
    (audio / "truncated.wav").write_bytes((audio / "truncated.wav").read_bytes()[:20])
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage" * 50)
    (audio / "zero.wav").write_bytes(b"")
    sf.write(audio / "nan.wav", np.full(SR, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    sf.write(audio / "silence.wav", np.zeros(SR, dtype=np.float32), SR)
    sf.write(audio / "short.wav", speech[: speech_sr // 5], speech_sr)  # 0.2 s < min_duration_s
    repeats = int(3 * MAX_DURATION_S * speech_sr / len(speech)) + 1
    sf.write(audio / "long.wav", np.tile(speech, repeats), speech_sr)
    text = demo[-1]["transcription"]
    files = {"corrupt": "corrupt.wav", "truncated-header": "truncated.wav", "zero-length": "zero.wav",
             "nan-samples": "nan.wav", "missing": "missing.wav", "silence": "silence.wav", "too-short": "short.wav",
             "too-long": "long.wav"}  # fmt: skip
    texts = {"empty-text": "", "whitespace-text": "   ", "ignored-only": " ?! ", "oov": "café ☃", "oov-eval": "café ☃",
             "too-short": "a", "too-long": " ".join([text] * repeats), "unalignable": "a b " * 40}  # fmt: skip
    for clip_id in [*EXPECTED_SKIPS, "oov-eval"]:
        file_name = f"audio/{files.get(clip_id, 'ok.wav')}"
        rows.append({"file_name": file_name, "transcription": texts.get(clip_id, text), "id": clip_id})
    write_metadata(root, rows)
    ids = [r["id"] for r in rows]
    (root / "splits.json").write_text(json.dumps({"train": ids[:-1], "validation": ids[-1:], "test": []}))
    fe = load_feature_extractor(None)
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=make_tokenizer(ENGLISH_VOCAB)).save_pretrained(
        root / "pretrained"
    )
    Wav2Vec2Config().save_pretrained(root / "pretrained")  # the geometry the alignability filter asks
    return root


def bad_corpus_dm(corpus: Path, out: Path, cache_dir: Path, **kwargs) -> ASRDataModule:
    return ASRDataModule(
        dataset="audiofolder", data_dir=str(corpus), id_column="id", vocab="pretrained",
        pretrained=str(corpus / "pretrained"), splits_file=str(corpus / "splits.json"),
        max_duration_s=MAX_DURATION_S, num_proc=1, cache_dir=str(cache_dir), output_dir=str(out), **kwargs,
    )  # fmt: skip


def test_every_bad_clip_kind_is_skipped_by_reason_and_valid_formats_kept(
    bad_corpus: Path, tmp_path: Path, cache_dir: Path, caplog
) -> None:
    dm = bad_corpus_dm(bad_corpus, tmp_path / "run", cache_dir)
    with caplog.at_level(logging.INFO, logger="asr_lightning.data"):
        dm.setup()
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    train = report["train"]
    assert train["skipped"] == {
        "missing_file": 1, "undecodable": 2, "truncated": 0, "empty_audio": 1, "non_finite_audio": 1, "silent": 1,
        "empty_text": 2, "ignored_chars_only": 1, "oov_chars": 1, "too_short": 1, "too_long": 1, "unalignable": 1,
    }  # fmt: skip
    assert list(train["skipped"]) == list(SKIP_REASONS)
    assert train["skipped_ids"] == {
        reason: [i for i, r in EXPECTED_SKIPS.items() if r == reason]
        for reason in SKIP_REASONS
        if reason in EXPECTED_SKIPS.values()
    }
    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        demo = list(csv.DictReader(f))[: CLEAN + len(VALID_VARIANTS)]
    assert set(dm.splits["train"]["id"]) == {r["id"] for r in demo[:CLEAN]} | set(VALID_VARIANTS)
    assert train["rows"] == CLEAN + len(VALID_VARIANTS) + len(EXPECTED_SKIPS)
    assert train["kept"] == len(dm.splits["train"]) == CLEAN + len(VALID_VARIANTS)
    # every format decoded to 16 kHz mono at its true length (no rate or channel slip)
    lengths = dict(zip(dm.splits["train"]["id"], dm.splits["train"]["input_length"], strict=True))
    for r, clip_id in zip(demo[CLEAN:], VALID_VARIANTS, strict=True):
        expected = sf.info(DEMO_DIR / r["file_name"]).frames * SR // 8000
        assert abs(lengths[clip_id] - expected) <= SR // 100, clip_id
    assert train["oov_char_rate"] == 0  # the train clip it could not spell was left out ...
    assert report["validation"]["kept"] == 1 and report["validation"]["oov_chars"] == {"É": 1, "☃": 1}  # ... not eval
    assert dm.splits["validation"]["text"] == ["CAFÉ ☃"]
    assert report["test"]["skipped"] == dict.fromkeys(SKIP_REASONS, 0)  # an empty split reports every reason too
    for clip_id in ("corrupt", "truncated-header", "zero-length", "nan-samples", "missing", "silence"):
        assert f"train: skipped {clip_id} ({EXPECTED_SKIPS[clip_id]})" in caplog.text
    assert "missing.wav does not exist" in caplog.text
    assert f"train: {train['kept']}/{train['rows']} clips kept" in caplog.text


def test_on_bad_audio_error_fails_naming_the_clip(bad_corpus: Path, tmp_path: Path, cache_dir: Path) -> None:
    dm = bad_corpus_dm(bad_corpus, tmp_path / "run", cache_dir, on_bad_audio="error")
    with pytest.raises(AudioError, match=r"train clip corrupt: cannot decode .*corrupt\.wav") as info:
        dm.setup()
    assert info.value.reason == "undecodable"
    assert "data.on_bad_audio=skip" in str(info.value)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"batch_size": 0}, r"data.batch_size=0 must be >= 1"),
        ({"eval_batch_size": -2}, r"data.eval_batch_size=-2 must be >= 1"),
        ({"num_buckets": 0}, r"data.num_buckets=0 must be >= 1"),
        ({"min_duration_s": -0.5}, r"data.min_duration_s=-0.5 .* 0 <= min_duration_s < max_duration_s"),
        ({"min_duration_s": 5.0, "max_duration_s": 5.0}, r"data.min_duration_s=5.0 and data.max_duration_s=5.0"),
        ({"max_batch_seconds": 0.0}, r"data.max_batch_seconds=0.0 must be > 0"),
        ({"max_oov_rate": 1.5}, r"data.max_oov_rate=1.5 must be in \[0, 1\]"),
        ({"max_oov_rate": -0.1}, r"data.max_oov_rate=-0.1 must be in \[0, 1\]"),
        ({"on_bad_audio": "warn"}, r"data.on_bad_audio must be 'skip' or 'error', got 'warn'"),
    ],
)
def test_bad_settings_fail_before_loading(setting: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ASRDataModule(dataset="audiofolder", data_dir="/nonexistent", vocab="train", **setting)


def write_metadata(folder: Path, rows: list[dict]) -> None:
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file_name", "transcription", "id"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
