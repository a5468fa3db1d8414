# pytest tests/test_transform.py
"""Clips decoded in the DataLoader workers: the features preprocessing used to store, augmentation seeded per
(seed, epoch, clip), clips that fail in a worker dropped and counted, and an index that re-tokenises alone."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import hydra
import numpy as np
import pytest
import soundfile as sf
from helpers.config import DEMO_DIR

import train
from asr_lightning import index
from asr_lightning.audio import load_audio
from asr_lightning.data import ASRDataModule


def make_dm(demo_cfg, *overrides: str) -> ASRDataModule:
    dm = hydra.utils.instantiate(demo_cfg(*overrides).data)
    dm.setup()
    return dm


def test_worker_features_equal_what_preprocessing_stored(demo_cfg) -> None:
    """The old pipeline stored `feature_extractor(load_audio(clip)).input_values[0]` as float32: the same bits."""
    dm = make_dm(demo_cfg)
    clips = dm.dataset("test")
    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        files = {r["id"]: DEMO_DIR / r["file_name"] for r in csv.DictReader(f)}
    fe = dm.feature_extractor
    for i in range(len(clips)):
        item = clips[i]
        audio = load_audio(files[item["id"]], 16000)
        stored = np.asarray(fe(audio, sampling_rate=16000).input_values[0], dtype=np.float32)
        assert item["input_values"].dtype == np.float32 and np.array_equal(item["input_values"], stored)
        assert item["input_length"] == len(audio) == clips.lengths[i]


def test_the_cache_holds_no_audio(demo_cfg) -> None:
    dm = make_dm(demo_cfg)
    assert set(dm.splits["train"].column_names) == {"id", "row", "text", "input_length", "labels"}
    cached = sum(Path(f["filename"]).stat().st_size for f in dm.splits["train"].cache_files)
    audio_bytes = sum(dm.splits["train"]["input_length"]) * 4  # what float32 arrays took
    assert cached < audio_bytes / 100


def test_speed_perturbation_changes_durations_by_the_factor_and_keeps_labels(demo_cfg) -> None:
    dm = make_dm(demo_cfg, "data.augment.speed_perturb=[1.1]")
    plain, fast = dm.dataset("train"), dm.dataset("train", augment=True)
    for i in range(4):
        a, b = plain[i], fast[(0, i)]
        assert b["input_length"] == dm.augmenter.perturbed_length(a["input_length"], 1.1)
        assert abs(b["input_length"] - a["input_length"] / 1.1) <= 1
        assert np.array_equal(a["labels"], b["labels"]) and a["text"] == b["text"]


def test_augmentation_depends_on_epoch_and_clip_only(demo_cfg) -> None:
    dm = make_dm(demo_cfg, "data.augment.speed_perturb=[0.9,1.0,1.1]", "data.augment.gain_db=[-6.0,6.0]")
    clips = dm.dataset("train", augment=True)
    first = clips[(3, 5)]["input_values"]
    clips[(0, 1)], clips[(7, 2)]  # other draws in between (a worker's history) change nothing
    assert np.array_equal(clips[(3, 5)]["input_values"], first)
    assert any(not np.array_equal(clips[(e, 5)]["input_values"], first) for e in (4, 5, 6))


def test_evaluation_is_never_augmented(demo_cfg) -> None:
    dm = make_dm(demo_cfg, "data.augment.gain_db=[-6.0,6.0]", "data.augment.telephone=true")
    loader = dm.val_dataloader()
    assert loader.dataset.augmenter is None and not loader.batch_sampler.tag_epoch


def test_a_clip_that_fails_in_a_worker_is_dropped_and_counted(tmp_path: Path, demo_cfg) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(DEMO_DIR, corpus)
    args = (f"data.data_dir={corpus}", "data.validate_audio=false")
    bad_id = make_dm(demo_cfg, *args).splits["train"]["id"][0]
    with open(corpus / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    row = next(r for r in rows if r["id"] == bad_id)
    # a WAV whose header promises more samples than the file holds: its header reads, its decoding fails
    bad = corpus / row["file_name"].replace(".flac", ".wav")
    sf.write(bad, np.random.default_rng(0).normal(0, 0.1, 24000).astype(np.float32), 16000, subtype="PCM_16")
    bad.write_bytes(bad.read_bytes()[:-8000])
    row["file_name"] = str(bad.relative_to(corpus))
    with open(corpus / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    dm = make_dm(demo_cfg, *args)
    position = dm.splits["train"]["id"].index(bad_id)  # the header passed the index
    clips = dm.dataset("train")
    assert clips[position] == {"id": bad_id, "failed": "truncated"}
    batch = dm.collator([clips[position - 1], clips[position], clips[position + 1]])
    assert batch["dropped"] == [(bad_id, "truncated")] and len(batch["ids"]) == 2
    metrics = train.train(demo_cfg(*args, "test=false"))  # an epoch: every training clip, the bad one too
    assert metrics["train/dropped_clips"] == 1


def test_text_settings_reindex_the_text_without_reading_audio(demo_cfg, monkeypatch) -> None:
    make_dm(demo_cfg)

    def no_audio(*args, **kwargs):
        raise AssertionError("the audio pass ran again")

    monkeypatch.setattr(index, "load_audio", no_audio)
    dm = make_dm(demo_cfg, "data.max_duration_s=14.0", "data.vocab=train")  # the text pass's settings only
    assert len(dm.splits["train"])
    with pytest.raises(AssertionError, match="ran again"):  # what the audio pass depends on does re-read it
        make_dm(demo_cfg, "data.on_bad_audio=error")
