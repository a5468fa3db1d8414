# pytest tests/test_data.py
"""The data module on the committed demo corpus: splits, filters, caching, length-sorted evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import pytest

from asr_lightning.data import ASRDataModule, ctc_min_frames, ctc_output_frames
from asr_lightning.sampling import DurationBatchSampler, LengthGroupedBatchSampler
from asr_lightning.text import make_tokenizer


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
    ex = dm.splits["train"].with_format("numpy")[0]
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
    frames = ctc_output_frames(16000, (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2))  # 1 s -> 49 frames
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


def test_bad_clips_are_skipped_counted_and_named(tmp_path: Path, cache_dir: Path, caplog) -> None:
    import csv
    import shutil

    from conftest import DEMO_DIR

    folder = tmp_path / "corpus"
    (folder / "audio").mkdir(parents=True)
    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:12]
    for r in rows:
        shutil.copy(DEMO_DIR / r["file_name"], folder / r["file_name"])
    (folder / "audio" / "broken.flac").write_bytes(b"fLaC but not really")
    rows += [
        {"file_name": "audio/broken.flac", "transcription": "hello", "id": "broken"},
        {"file_name": rows[0]["file_name"], "transcription": " ?! ", "id": "empty"},
        {"file_name": rows[1]["file_name"], "transcription": "a b " * 40, "id": "too-many-labels"},
    ]
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file_name", "transcription", "id"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    dm = ASRDataModule(
        dataset="audiofolder", data_dir=str(folder), id_column="id", vocab="train", val_fraction=0.0,
        test_fraction=0.0, cache_dir=str(cache_dir), output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    dm.setup()
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())["train"]
    assert report["skipped"] == {"unreadable": 1, "empty_text": 1, "too_short": 0, "too_long": 0, "unalignable": 1}
    assert report["skipped_ids"] == {
        "unreadable": ["broken"],
        "empty_text": ["empty"],
        "unalignable": ["too-many-labels"],
    }
    assert report["kept"] == 12 and len(dm.splits["train"]) == 12
    assert "broken.flac" in caplog.text
