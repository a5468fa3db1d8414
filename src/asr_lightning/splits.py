# pytest tests/test_splits.py
"""Train, validation and test: the source's own splits (several validation and test sets allowed, each scored
apart), or one pool split by seed (optionally by speaker), or the split of an earlier run's `splits.json`; and the
ids that name each clip across runs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import Dataset, DatasetDict

from asr_lightning.sources import SPLIT_ALIASES, audio_paths

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Holdout:
    """How rows are held out by seed: the shares for validation and test, the seed, and a column whose values (a
    speaker) stay in one split."""

    val_fraction: float
    test_fraction: float
    seed: int
    group_column: str | None = None

    def split(self, rows: Dataset, roles: Collection[str] = ("validation", "test")) -> dict[str, list[int]]:
        """Row indices of train and of the held-out `roles` (the others get none)."""
        groups = rows[self.group_column] if self.group_column else None
        val = self.val_fraction if "validation" in roles else 0.0
        test = self.test_fraction if "test" in roles else 0.0
        return split_indices(len(rows), val, test, self.seed, groups)


def split_sets(
    ds: DatasetDict,
    ids_of: Any,
    named: dict[str, list[str] | None],
    resplit: bool,
    max_samples: int | None,
    splits_file: str | None,
    holdout: Holdout,
) -> tuple[dict[str, dict[str, Dataset]], dict[str, dict[str, list[str]]], dict[str, Any]]:
    """Each role's sets (`role -> set name -> rows`), their rows' ids (`ids_of(dataset)`), and how they were made.

    Args:
        ds: the source's splits, by (renamed) split name.
        named: role -> the source splits that make it (`data.train_splits`, `val_splits`, `test_splits`); None:
            the splits named like the role (`SPLIT_ALIASES`). Several of a role: train pools them; each
            validation and test split is a set of its own, scored apart.
        resplit: pool the splits (the named ones, or all) and split the pool by seed, ignoring their names.
        holdout: how a pool, or a role that no split fills, is held out of the rows.

    A source with one split (MInDS-14) is pooled and split by seed; a role that no split fills (a source with
    train and test only) is held out of the train rows by its fraction. Nothing else is ever pooled: a source
    whose split names fill no train role fails, naming them.

    Raises:
        ValueError: a named split the source lacks, a split named for two roles, or no train split.
    """
    found = list(ds)
    listed = [s for names in named.values() for s in names or []]
    missing = [s for s in listed if s not in ds]
    if missing:
        raise ValueError(
            f"data split(s) {missing} are not in the source, whose splits are {found}: set data.train_splits, "
            "data.val_splits and data.test_splits to some of those"
        )
    twice = sorted({s for s in listed if listed.count(s) > 1})
    if twice:
        raise ValueError(f"split(s) {twice} are named for two of train/validation/test: a set used twice leaks")
    if splits_file or resplit or len(ds) == 1:
        pool_names = [s for s in found if s in listed] or found
        return _pooled(ds, pool_names, ids_of, max_samples, splits_file, holdout)
    roles = {
        role: list(names) if names is not None else [s for s in found if SPLIT_ALIASES.get(s) == role]
        for role, names in ((r, named.get(r)) for r in SPLITS)
    }
    if not roles["train"]:
        raise ValueError(
            f"the source's splits {found} name no train split: set data.train_splits (and val_splits, test_splits) "
            "to some of them, or data.resplit=true to pool them all and split the pool by data.split_seed"
        )
    sets = {role: {s: head(ds[s], max_samples) for s in names} for role, names in roles.items()}
    ids = {role: {s: ids_of(d) for s, d in parts.items()} for role, parts in sets.items()}
    meta: dict[str, Any] = {"source": "predefined"}
    held_out = [r for r in ("validation", "test") if named.get(r) is None and not roles[r]]
    if held_out:  # e.g. train and test only: validation comes out of train, never out of test
        train = _concat(list(sets["train"].values()))
        train_ids = [k for part in ids["train"].values() for k in part]
        index = holdout.split(train, held_out)
        name = roles["train"][0] if len(roles["train"]) == 1 else "train"
        for role, set_name in (("train", name), *((r, r) for r in held_out)):
            sets[role] = {set_name: train.select(index[role])}
            ids[role] = {set_name: [train_ids[i] for i in index[role]]}
        meta |= {"source": "predefined+held_out", "held_out": held_out, "held_out_from": roles["train"]}
    return sets, ids, meta


def _pooled(
    ds: DatasetDict,
    names: list[str],
    ids_of: Any,
    max_samples: int | None,
    splits_file: str | None,
    holdout: Holdout,
) -> tuple[dict[str, dict[str, Dataset]], dict[str, dict[str, list[str]]], dict[str, Any]]:
    """One pool of rows split by seed (optionally by group), or as an earlier run's `splits.json` says."""
    pool = head(_concat([ds[k] for k in names]), max_samples)
    ids = ids_of(pool)
    meta: dict[str, Any] = {"pooled": names}
    if splits_file:
        meta["source"], sets = f"file:{splits_file}", sets_from_file(splits_file, ids)
    else:
        index = holdout.split(pool)
        meta["source"] = "random"
        train = names[0] if len(names) == 1 else "train"
        sets = {"train": {train: index["train"]}, "validation": {"validation": index["validation"]},
                "test": {"test": index["test"]}}  # fmt: skip
    return (
        {role: {s: pool.select(i) for s, i in parts.items()} for role, parts in sets.items()},
        {role: {s: [ids[j] for j in i] for s, i in parts.items()} for role, parts in sets.items()},
        meta,
    )


def _concat(parts: list[Dataset]) -> Dataset:
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


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


def sets_from_file(splits_file: str, ids: list[str]) -> dict[str, dict[str, list[int]]]:
    """Row indices of the ids an earlier run's `splits.json` put in each role's sets (one set per role, named
    like it, in files from before several sets per role).

    Raises:
        KeyError: ids of the file that are not in the dataset.
    """
    saved = json.loads(Path(splits_file).read_text())
    named = saved.get("sets") or {role: {role: saved[role]} for role in SPLITS}
    position = {k: i for i, k in enumerate(ids)}
    index: dict[str, dict[str, list[int]]] = {}
    for role in SPLITS:
        for name, keys in named.get(role, {}).items():
            unknown = [k for k in keys if k not in position]
            if unknown:
                raise KeyError(
                    f"{splits_file}: {len(unknown)} {role} id(s) of {name} are not in the dataset "
                    f"(e.g. {unknown[:3]}); was it made from another dataset, config or max_samples?"
                )
            index.setdefault(role, {})[name] = [position[k] for k in keys]
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
