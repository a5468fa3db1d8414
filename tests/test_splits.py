# pytest tests/test_splits.py
"""data.py's pure helpers: deterministic splits and the audiofolder loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_lightning.sources import load_audiofolder
from asr_lightning.splits import SPLITS, split_indices

# ---------------------------------------------------------------- split_indices


def test_split_indices_fractions_disjoint_cover() -> None:
    index = split_indices(1000, 0.1, 0.2, seed=42)
    assert set(index) == set(SPLITS)
    assert (len(index["train"]), len(index["validation"]), len(index["test"])) == (700, 100, 200)
    sets = [set(index[s]) for s in SPLITS]
    assert sum(len(s) for s in sets) == 1000
    assert set().union(*sets) == set(range(1000))
    for s in SPLITS:
        assert index[s] == sorted(index[s])


def test_split_indices_deterministic_per_seed() -> None:
    a = split_indices(1000, 0.1, 0.2, seed=42)
    assert a == split_indices(1000, 0.1, 0.2, seed=42)
    b = split_indices(1000, 0.1, 0.2, seed=43)
    assert a["test"] != b["test"]
    assert a["validation"] != b["validation"]


def test_split_indices_zero_fractions() -> None:
    index = split_indices(10, 0.0, 0.0, seed=0)
    assert index == {"train": list(range(10)), "validation": [], "test": []}


def test_split_indices_groups_never_straddle_splits() -> None:
    groups = [f"spk{i // 10:02d}" for i in range(200)]  # 20 speakers x 10 rows
    index = split_indices(200, 0.1, 0.2, seed=42, groups=groups)
    owner: dict[str, str] = {}
    for split in SPLITS:
        for i in index[split]:
            assert owner.setdefault(groups[i], split) == split, f"{groups[i]} is in two splits"
    assert sorted(i for s in SPLITS for i in index[s]) == list(range(200))
    assert len(index["test"]) >= 0.2 * 200
    assert len(index["validation"]) >= 0.1 * 200
    assert len(index["train"]) > 0
    assert index == split_indices(200, 0.1, 0.2, seed=42, groups=groups)
    other = split_indices(200, 0.1, 0.2, seed=7, groups=groups)
    assert {groups[i] for i in other["test"]} != {groups[i] for i in index["test"]}


def test_split_indices_groups_shuffled_interleaved_rows() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 15, 300).tolist()  # unequal groups, rows interleaved
    index = split_indices(300, 0.15, 0.25, seed=1, groups=groups)
    split_groups = {s: {groups[i] for i in index[s]} for s in SPLITS}
    assert not split_groups["train"] & split_groups["test"]
    assert not split_groups["train"] & split_groups["validation"]
    assert not split_groups["validation"] & split_groups["test"]
    assert len(index["test"]) >= 0.25 * 300


# ---------------------------------------------------------------- load_audiofolder


def write_wav(path: Path, seconds: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)


def test_load_audiofolder_flat_csv(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_wav(root / "a.wav")
    write_wav(root / "clips" / "b.wav")
    (root / "metadata.csv").write_text("file_name,transcription\na.wav,hello\nclips/b.wav,world\n")
    ds = load_audiofolder(root, cache_dir=str(tmp_path / "cache"))
    assert list(ds) == ["train"]
    train = ds["train"]
    assert len(train) == 2
    assert train["transcription"] == ["hello", "world"]
    cells = train["audio"]
    assert cells[0] == {"bytes": None, "path": str((root / "a.wav").resolve())}
    assert cells[1] == {"bytes": None, "path": str((root / "clips" / "b.wav").resolve())}
    for cell in cells:
        assert Path(cell["path"]).is_absolute() and Path(cell["path"]).is_file()
    assert train.features["audio"].decode is False


def test_load_audiofolder_custom_audio_column(tmp_path: Path) -> None:
    write_wav(tmp_path / "data" / "a.wav")
    (tmp_path / "data" / "metadata.csv").write_text("file_name,text\na.wav,hi\n")
    ds = load_audiofolder(tmp_path / "data", audio_column="speech", cache_dir=str(tmp_path / "cache"))
    assert ds["train"][0]["speech"]["path"] == str((tmp_path / "data" / "a.wav").resolve())


def test_load_audiofolder_split_subfolders_jsonl(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split, names in {"train": ["t1", "t2", "t3"], "test": ["x1"]}.items():
        rows = []
        for name in names:
            write_wav(root / split / f"{name}.wav")
            rows.append(json.dumps({"file_name": f"{name}.wav", "transcription": name.upper()}))
        (root / split / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    ds = load_audiofolder(str(root), cache_dir=str(tmp_path / "cache"))
    assert sorted(ds) == ["test", "train"]
    assert len(ds["train"]) == 3
    assert len(ds["test"]) == 1
    assert ds["test"][0]["audio"] == {"bytes": None, "path": str((root / "test" / "x1.wav").resolve())}
    assert ds["train"]["transcription"] == ["T1", "T2", "T3"]


def test_load_audiofolder_dev_alias_is_validation(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split in ("train", "dev"):
        write_wav(root / split / "a.wav")
        (root / split / "metadata.csv").write_text("file_name,transcription\na.wav,a\n")
    ds = load_audiofolder(root, cache_dir=str(tmp_path / "cache"))
    assert sorted(ds) == ["train", "validation"]


def test_load_audiofolder_without_metadata_raises(tmp_path: Path) -> None:
    write_wav(tmp_path / "data" / "a.wav")
    with pytest.raises(FileNotFoundError, match="metadata.csv"):
        load_audiofolder(tmp_path / "data", cache_dir=str(tmp_path / "cache"))


def test_load_audiofolder_without_file_name_column_raises(tmp_path: Path) -> None:
    write_wav(tmp_path / "data" / "a.wav")
    (tmp_path / "data" / "metadata.csv").write_text("path,transcription\na.wav,hi\n")
    with pytest.raises(KeyError, match="file_name"):
        load_audiofolder(tmp_path / "data", cache_dir=str(tmp_path / "cache"))
