# pytest tests/test_splits.py
"""Where the rows come from: a Hub dataset, a local dataset directory (parquet with a card, as on the Hub) or
an audiofolder, with the audio left undecoded (`Audio(decode=False)`: bytes or a path per cell)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
from datasets import Audio, Dataset, DatasetDict, IterableDatasetDict

from asr_lightning import hub
from asr_lightning.corpora import LAYOUTS, corpus_splits

# Hub corpora whose download layout is read instead when data.data_dir is set (`corpora.LAYOUTS`)
HUB_LAYOUTS = {"openslr/librispeech_asr": "librispeech"}
# Source split names and the split each one is
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}


def load_source(
    dataset: str,
    config: str | None,
    revision: str | None,
    data_dir: str | None,
    cache_dir: str | None,
    audio_column: str,
    columns: list[str],
    splits: list[str] | None = None,
) -> DatasetDict:
    """The source's splits (only `splits`, when given), each checked to have `audio_column` and `columns`, the
    audio undecoded.

    `dataset` is a Hub id, a local dataset directory, `audiofolder`, or a corpus download layout
    (`corpora.LAYOUTS`: `librispeech`, `librilight`, `common_voice`) read from `data_dir`. A Hub corpus whose
    download layout is known (`openslr/librispeech_asr`) is read from that layout when `data_dir` is set.

    Raises:
        FileNotFoundError: an audiofolder or corpus folder that is not a directory.
        ValueError: a config the dataset does not have (from its card, before any download), or a split it lacks.
        KeyError: a missing column, naming the columns there are and the `data.` keys to set.
    """
    layout = _layout(dataset, data_dir)
    if dataset == "audiofolder" or layout:
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(f"data.data_dir={data_dir} is not a directory (a {layout or dataset} folder)")
        if layout:
            try:
                ds = LAYOUTS[layout](data_dir, splits=splits, cache_dir=cache_dir)
            except KeyError as err:
                raise ValueError(f"{err.args[0]}: set data.train_splits, val_splits and test_splits") from None
        else:
            ds = load_audiofolder(data_dir, audio_column, cache_dir)
    else:
        with _config_error(dataset, config):  # an unknown config fails from the card, before any download
            options = {"split": list(splits)} if splits else {}
            if Path(dataset).exists():
                ds = datasets.load_dataset(dataset, name=config, data_dir=data_dir, cache_dir=cache_dir, **options)
            else:
                ds = hub.load_dataset(dataset, name=config, revision=revision, cache_dir=cache_dir, **options)
            if splits:
                ds = DatasetDict(zip(splits, ds, strict=True))
    for split in ds.values():
        missing = {audio_column, *columns} - set(split.column_names)
        if missing:
            raise KeyError(
                f"dataset {dataset} ({config or data_dir}) has no column(s) {sorted(missing)}; "
                f"its columns are {split.column_names}: set data.audio_column/text_column/id_column/"
                "metadata_columns/group_column accordingly"
            )
    # decode=False: we decode with soundfile and resample with soxr (no torchcodec/FFmpeg).
    return DatasetDict({k: v.cast_column(audio_column, Audio(decode=False)) for k, v in ds.items()})


def source_splits(dataset: str, config: str | None, revision: str | None, data_dir: str | None) -> list[str] | None:
    """The split names a source offers, read without loading them (a corpus folder's listing, a dataset card);
    None for an audiofolder, whose few splits are loaded whole."""
    layout = _layout(dataset, data_dir)
    if layout:
        return corpus_splits(layout, data_dir)
    if dataset == "audiofolder":
        return None
    with _config_error(dataset, config):
        if Path(dataset).exists():
            return datasets.get_dataset_split_names(dataset, config_name=config, data_dir=data_dir)
        return hub.split_names(dataset, config_name=config, revision=revision)


def load_stream_source(
    dataset: str,
    config: str | None,
    revision: str | None,
    data_dir: str | None,
    cache_dir: str | None,
    audio_column: str,
    columns: list[str],
    num_shards: int = 1,
) -> IterableDatasetDict:
    """The source's splits as `datasets.IterableDataset`s (`data.streaming=true`), the audio undecoded.

    A Hub or local dataset directory streams from its files: nothing is copied. An audiofolder's or corpus
    folder's manifest is small and read as usual, its rows streamed in `num_shards` shards (for DDP ranks and
    loader workers): a Hub corpus given a `data_dir` streams that folder, not the Hub.

    Raises:
        KeyError: a missing column, as `load_source`.
    """
    if dataset == "audiofolder" or _layout(dataset, data_dir):
        folder = load_source(dataset, config, revision, data_dir, cache_dir, audio_column, columns)
        return IterableDatasetDict({k: v.to_iterable_dataset(num_shards=num_shards) for k, v in folder.items()})
    if Path(dataset).exists():
        ds = datasets.load_dataset(dataset, name=config, data_dir=data_dir, streaming=True)
    else:
        ds = hub.load_dataset(dataset, name=config, revision=revision, streaming=True)
    for name, split in ds.items():
        have = set(split.column_names or split.features or [])
        if have and ({audio_column, *columns} - have):
            raise KeyError(
                f"dataset {dataset} split {name} has no column(s) {sorted({audio_column, *columns} - have)}; its "
                f"columns are {sorted(have)}: set data.audio_column/text_column/id_column accordingly"
            )
    return IterableDatasetDict({k: v.cast_column(audio_column, Audio(decode=False)) for k, v in ds.items()})


def load_audiofolder(data_dir: str | Path, audio_column: str = "audio", cache_dir: str | None = None) -> DatasetDict:
    """Load a folder in the datasets "audiofolder" layout without decoding (or encoding) any audio.

    `metadata.csv` or `metadata.jsonl` with a `file_name` column (paths relative to the metadata file),
    either at the top (one `train` split) or in `train/`, `validation/` (`valid/`, `dev/`) and `test/`
    subfolders. datasets' own `audiofolder` builder cannot be used: in datasets 5 it encodes every
    audio path through torchcodec, which needs FFmpeg.
    """
    root = Path(data_dir).resolve()
    found = {s: _metadata_file(root / s) for s in SPLIT_ALIASES if (root / s).is_dir()}
    found = {SPLIT_ALIASES[s]: f for s, f in found.items() if f is not None}
    if not found:
        top = _metadata_file(root)
        if top is None:
            raise FileNotFoundError(
                f"{root} has no metadata.csv or metadata.jsonl (at the top or in train/validation/test subfolders); "
                "the audiofolder layout needs one with a `file_name` column and a transcript column"
            )
        found = {"train": top}
    out = {}
    for split, meta in found.items():
        # csv: every cell as written; pandas would read ids and transcripts such as "NA", "null" or "None" as missing
        options = {"keep_default_na": False} if meta.suffix == ".csv" else {}
        builder = "csv" if meta.suffix == ".csv" else "json"
        ds = datasets.load_dataset(builder, data_files={split: str(meta)}, cache_dir=cache_dir, **options)[split]
        if "file_name" not in ds.column_names:
            raise KeyError(f"{meta} has no `file_name` column (its columns: {ds.column_names})")
        ds = ds.map(
            _audio_cell,
            input_columns="file_name",
            fn_kwargs={"folder": str(meta.parent), "column": audio_column},
        )
        out[split] = ds.cast_column(audio_column, Audio(decode=False))
    return DatasetDict(out)


def audio_paths(ds: Dataset, audio_column: str) -> list[str]:
    # Read only the `path` field of the audio struct: the bytes can be gigabytes.
    column = ds.select_columns([audio_column]).with_format("arrow")[:].column(audio_column)
    return [p for chunk in column.chunks for p in chunk.field("path").to_pylist()]


def readable(ds: Dataset, column: str) -> list[Any]:
    """A column's values, with class labels (MInDS-14's `intent_class`) as their names."""
    feature = ds.features[column]
    return feature.int2str(ds[column]) if isinstance(feature, datasets.ClassLabel) else ds[column]


def _layout(dataset: str, data_dir: str | None) -> str | None:
    """The corpus layout (`corpora.LAYOUTS`) that `dataset` is read from: a layout name, or a Hub corpus whose
    download folder is `data_dir`; None for Hub ids, dataset dirs and audiofolders."""
    if dataset in LAYOUTS:
        return dataset
    return HUB_LAYOUTS.get(dataset) if data_dir else None


@contextlib.contextmanager
def _config_error(dataset: str, config: str | None) -> Iterator[None]:
    """A config the dataset's card lacks, as an error naming the `data.config` key."""
    try:
        yield
    except ValueError as err:
        if "BuilderConfig" not in str(err):
            raise
        raise ValueError(f"data.config={config!r} is not a config of {dataset}: {err}") from None


def _metadata_file(folder: Path) -> Path | None:
    return next((folder / n for n in ("metadata.csv", "metadata.jsonl") if (folder / n).is_file()), None)


def _audio_cell(file_name: str, folder: str, column: str) -> dict:
    return {column: {"bytes": None, "path": str(Path(folder) / file_name)}}
