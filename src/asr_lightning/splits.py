# pytest tests/test_splits.py
"""Train, validation and test: the source's own splits, or one pool split by seed (optionally by speaker), or
the split of an earlier run's `splits.json`; and the ids that name each clip across runs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import Dataset, DatasetDict

from asr_lightning.sources import SPLIT_ALIASES, audio_paths

SPLITS = ("train", "validation", "test")


def split_rows(
    ds: DatasetDict,
    ids_of: Any,
    max_samples: int | None,
    splits_file: str | None,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
    group_column: str | None,
) -> tuple[dict[str, Dataset], dict[str, list[str]], str]:
    """The three splits, the ids of their rows (`ids_of(dataset)`), and where the split came from."""
    named = {SPLIT_ALIASES[k]: v for k, v in ds.items() if k in SPLIT_ALIASES}
    if set(named) >= set(SPLITS) and not splits_file:
        splits = {s: head(named[s], max_samples) for s in SPLITS}
        return splits, {s: ids_of(d) for s, d in splits.items()}, "predefined"
    # One pool of rows (MInDS-14 ships only `train`), split deterministically.
    pool = datasets.concatenate_datasets([ds[k] for k in sorted(ds)]) if len(ds) > 1 else next(iter(ds.values()))
    pool = head(pool, max_samples)
    ids = ids_of(pool)
    if splits_file:
        source, index = f"file:{splits_file}", indices_from_file(splits_file, ids)
    else:
        groups = pool[group_column] if group_column else None
        source, index = "random", split_indices(len(pool), val_fraction, test_fraction, split_seed, groups)
    return {s: pool.select(index[s]) for s in SPLITS}, {s: [ids[i] for i in index[s]] for s in SPLITS}, source


def head(ds: Dataset, n: int | None) -> Dataset:
    """The first `n` rows (like `train[:n]`); all of them for None."""
    return ds.select(range(min(n, len(ds)))) if n else ds


def clip_ids(ds: Dataset, id_column: str | None, audio_column: str, data_dir: str | None) -> list[str]:
    """Each row's id: `id_column`, or the audio path (relative to `data_dir`).

    Raises:
        ValueError: ids that are not unique.
    """
    if id_column:
        ids = [str(x) for x in ds[id_column]]
    else:
        root = Path(data_dir).resolve() if data_dir else None
        ids = [_relative(p, root) for p in audio_paths(ds, audio_column)]
    dupes = [k for k, c in Counter(ids).items() if c > 1]
    if dupes:
        raise ValueError(f"ids are not unique ({len(dupes)} repeated, e.g. {dupes[:3]}): set data.id_column")
    return ids


def indices_from_file(splits_file: str, ids: list[str]) -> dict[str, list[int]]:
    """Row indices of the ids an earlier run's `splits.json` put in each split.

    Raises:
        KeyError: ids of the file that are not in the dataset.
    """
    saved = json.loads(Path(splits_file).read_text())
    position = {k: i for i, k in enumerate(ids)}
    index = {}
    for split in SPLITS:
        unknown = [k for k in saved[split] if k not in position]
        if unknown:
            raise KeyError(
                f"{splits_file}: {len(unknown)} {split} id(s) are not in the dataset "
                f"(e.g. {unknown[:3]}); was it made from another dataset, config or max_samples?"
            )
        index[split] = [position[k] for k in saved[split]]
    return index


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int, groups: list | None = None
) -> dict[str, list[int]]:
    """Deterministic train/validation/test row indices.

    With `groups`, whole groups (e.g. speakers) are assigned, in a seeded random order, to test, then
    validation, until each holds its fraction of rows, so no group is in two splits.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n)
        n_test, n_val = round(test_fraction * n), round(val_fraction * n)
        parts = {
            "test": order[:n_test],
            "validation": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        return {s: sorted(parts[s].tolist()) for s in SPLITS}
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = sorted(members, key=str)
    keys = [keys[i] for i in rng.permutation(len(keys))]
    out: dict[str, list[int]] = {"test": [], "validation": [], "train": []}
    targets = {"test": test_fraction * n, "validation": val_fraction * n}
    for key in keys:
        split = next((s for s in ("test", "validation") if len(out[s]) < targets[s]), "train")
        out[split].extend(members[key])
    return {s: sorted(out[s]) for s in SPLITS}


def _relative(path: str | None, root: Path | None) -> str:
    if path is None:
        raise ValueError("an audio cell has no path to use as id: set data.id_column")
    if root is not None:
        try:
            return str(Path(path).resolve().relative_to(root))
        except ValueError:
            pass
    return path
