# python train.py data=minds14   (or data=audiofolder data.data_dir=..., data=demo)
"""The LightningDataModule: load, split, normalise, filter, preprocess (cached) and batch speech data."""

from __future__ import annotations

import json
import logging
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import datasets
import lightning as L
import numpy as np
from datasets import Audio, Dataset, DatasetDict
from torch.utils.data import DataLoader, Sampler

from asr_lightning import encoders, hub
from asr_lightning.audio import AUDIO_ERROR_REASONS, AudioError, audio_source, load_audio
from asr_lightning.collate import CTCCollator
from asr_lightning.frontend import Frontend, ctc_min_frames
from asr_lightning.sampling import DurationBatchSampler, LengthGroupedBatchSampler, ResumableDataLoader
from asr_lightning.text import (
    DEFAULT_CHARS_TO_IGNORE,
    build_processor,
    build_vocab,
    load_feature_extractor,
    normalize_text,
    oov_stats,
    pretrained_vocab,
    vocab_characters,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}
# Why a clip is left out, in the order they are checked: the audio, then the transcript, then the fit of the two.
SKIP_REASONS = (
    *AUDIO_ERROR_REASONS,  # missing_file, undecodable, truncated, empty_audio, non_finite_audio
    "silent",  # digital silence under a non-empty transcript: a broken recording
    "empty_text",  # no transcript, or only whitespace
    "ignored_chars_only",  # nothing left once `chars_to_ignore` is deleted
    "oov_chars",  # train only: characters the vocab cannot spell would be trained as <unk>
    "too_short",
    "too_long",
    "unalignable",  # more CTC labels than the encoder makes frames
)
# Peak |x| under which a clip is digital silence (16-bit PCM: about 3 LSB); dithered silence is above it.
SILENCE_PEAK = 1e-4
VOCABS = ("auto", "pretrained", "train")


def preprocessed_features(input_name: str) -> datasets.Features:
    """The cached columns: waveform models store `input_values` (samples,), filterbank ones `input_features`
    (frames, dim); `input_length` is always the clip's samples at the model's rate."""
    values = datasets.List(datasets.Value("float32"))
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            input_name: values if input_name == "input_values" else datasets.List(values),
            "input_length": datasets.Value("int64"),
            "labels": datasets.List(datasets.Value("int32")),
            "skip": datasets.Value("string"),
            "error": datasets.Value("string"),
        }
    )


class ASRDataModule(L.LightningDataModule):
    """Speech + transcript data for CTC fine-tuning.

    Args:
        dataset: a Hub dataset id (`PolyAI/minds14`), a local dataset directory (e.g. parquet files with a
            README `configs:` block, as on the Hub), or `audiofolder` (then `data_dir` is required).
        config: the dataset config, e.g. a MInDS-14 language (`en-US`, `fr-FR`, `all`).
        revision: Hub revision (commit, tag or branch) to pin for reproducibility.
        data_dir: folder of an audiofolder dataset (audio + metadata.csv/jsonl, optional split subfolders).
        audio_column: column holding the audio.
        text_column: column holding the transcript.
        id_column: column with a unique id per clip; None uses the audio path.
        metadata_columns: columns copied into predictions (e.g. `intent_class`, `speaker`).
        val_fraction: share of all rows held out for validation when the source has only `train`.
        test_fraction: share of all rows held out for test when the source has only `train`.
        split_seed: seed of that split (independent of the training seed).
        group_column: split so that no value of this column (e.g. `speaker`) is in two splits.
        splits_file: a `splits.json` from an earlier run, to reuse its split exactly.
        max_samples: keep only the first N rows before splitting (like `train[:N]`).
        chars_to_ignore: regex of characters deleted from transcripts.
        vocab: `auto` (the checkpoint's tokenizer when it ships one that spells the train split, within
            `max_oov_rate`; otherwise one built from the train split, said in the log), `pretrained` (the
            checkpoint's tokenizer, or fail) or `train` (built from the train split). Random-init models
            (`pretrained` None) always build from train.
        pretrained: Hub id or directory of the checkpoint whose config, tokenizer and feature extractor to use;
            None for a random-init model of `architecture`.
        architecture: the random-init model's config fields (`model.architecture`): its frame geometry and
            its input (waveform or filterbanks) come from it.
        return_attention_mask: for the default feature extractor only: whether the model takes masks; None: as
            its feature encoder was trained (layer norm: masks; group norm: none).
        sampling_rate: for the default feature extractor only.
        max_oov_rate: largest share of train characters the pretrained vocab may miss before failing.
        min_duration_s: drop shorter clips.
        max_duration_s: drop longer clips.
        batch_size: training batch size (per device) when `max_batch_seconds` is None.
        max_batch_seconds: fill each training batch up to this much padded audio (per device) from length
            buckets instead of a fixed `batch_size` (see `DurationBatchSampler`); None: fixed size.
        num_buckets: length buckets of the duration batching.
        eval_batch_size: validation/test batch size (per device).
        group_by_length: with a fixed `batch_size`, batch training examples of similar length (less padding).
        num_workers: DataLoader workers.
        num_proc: processes for the one-off preprocessing `map`.
        cache_dir: datasets cache directory (default: HF_DATASETS_CACHE).
        output_dir: where `splits.json`, `vocab.json` and `data_report.json` are written (the run dir).
        seed: seed of the training shuffle.
        on_bad_audio: `skip` leaves out clips whose audio is missing, undecodable, empty or non-finite
            (counted by reason in `data_report.json`); `error` fails on the first one, naming it.
    """

    def __init__(
        self,
        dataset: str,
        config: str | None = None,
        revision: str | None = None,
        data_dir: str | None = None,
        audio_column: str = "audio",
        text_column: str = "transcription",
        id_column: str | None = None,
        metadata_columns: list[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 42,
        group_column: str | None = None,
        splits_file: str | None = None,
        max_samples: int | None = None,
        chars_to_ignore: str | None = DEFAULT_CHARS_TO_IGNORE,
        vocab: Literal["auto", "pretrained", "train"] = "auto",
        pretrained: str | None = None,
        architecture: dict[str, Any] | None = None,
        return_attention_mask: bool | None = None,
        sampling_rate: int = 16000,
        max_oov_rate: float = 0.01,
        min_duration_s: float = 0.5,
        max_duration_s: float = 20.0,
        batch_size: int = 8,
        max_batch_seconds: float | None = None,
        num_buckets: int = 30,
        eval_batch_size: int = 16,
        group_by_length: bool = True,
        num_workers: int = 2,
        num_proc: int = 1,
        cache_dir: str | None = None,
        output_dir: str | None = None,
        seed: int = 0,
        on_bad_audio: Literal["skip", "error"] = "skip",
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ValueError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must each be in [0, 1) "
                "and leave rows for training"
            )
        if vocab not in VOCABS:
            raise ValueError(f"data.vocab must be one of {list(VOCABS)}, got {vocab!r}")
        if vocab == "pretrained" and pretrained is None:
            raise ValueError(
                "data.vocab=pretrained needs a pretrained checkpoint with a tokenizer (model.pretrained): a "
                "random-init model has none; use data.vocab=train (or auto) to build it from the train split"
            )
        if on_bad_audio not in ("skip", "error"):
            raise ValueError(f"data.on_bad_audio must be 'skip' or 'error', got {on_bad_audio!r}")
        for key, value in (
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
            ("num_buckets", num_buckets),
        ):
            if value < 1:
                raise ValueError(f"data.{key}={value} must be >= 1")
        if not 0 <= min_duration_s < max_duration_s:
            raise ValueError(
                f"data.min_duration_s={min_duration_s} and data.max_duration_s={max_duration_s} must satisfy "
                "0 <= min_duration_s < max_duration_s"
            )
        if max_batch_seconds is not None and max_batch_seconds <= 0:
            raise ValueError(f"data.max_batch_seconds={max_batch_seconds} must be > 0 (or null for fixed batches)")
        if not 0 <= max_oov_rate <= 1:
            raise ValueError(f"data.max_oov_rate={max_oov_rate} must be in [0, 1]")
        if max_batch_seconds is not None and max_batch_seconds < max_duration_s:
            raise ValueError(
                f"data.max_batch_seconds={max_batch_seconds} is below data.max_duration_s={max_duration_s}: "
                "the longest clips would fit in no batch; raise max_batch_seconds or lower max_duration_s"
            )
        if dataset == "audiofolder" and not data_dir:
            raise ValueError("data.dataset=audiofolder needs data.data_dir=/path/to/folder")
        self.save_hyperparameters(logger=False)
        self.metadata_columns = list(metadata_columns or [])
        self.feature_extractor = None
        self.frontend: Frontend | None = None
        self.vocab_source: str | None = None
        self.vocab: dict[str, int] = {}
        self.splits: dict[str, Dataset] = {}
        self.metadata: dict[str, dict[str, dict[str, Any]]] = {}
        self.report: dict[str, Any] = {}
        self.fingerprints: dict[str, str] = {}
        self.split_source: str | None = None

    # ---------------------------------------------------------------- Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        """Load, split, build the vocab and preprocess every split (once; later calls are no-ops)."""
        if self.splits:
            return
        hp = self.hparams
        raw, ids = self._split(self._load())
        # datasets' content hash of each split's rows (data files + selection), for provenance
        self.fingerprints = {s: d._fingerprint for s, d in raw.items()}
        config = encoders.model_config(hp.pretrained, hp.architecture)
        self.feature_extractor = load_feature_extractor(
            hp.pretrained, config, hp.sampling_rate, hp.return_attention_mask
        )
        self.frontend = Frontend(config, self.feature_extractor)
        self.vocab = self._make_vocab(
            [normalize_text(t or "", hp.chars_to_ignore) for t in raw["train"][hp.text_column]]
        )
        for split, ds in raw.items():
            self.splits[split] = self._preprocess(split, ds, ids[split])
        self._write_outputs(ids)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, batch_size=self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False, batch_size=self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, batch_size=self.hparams.eval_batch_size)

    @property
    def identity(self) -> dict[str, Any]:
        """What data a run saw: source, config, revision, split settings and per-split fingerprints."""
        hp = self.hparams
        return {
            "dataset": hp.dataset, "config": hp.config, "revision": hp.revision, "data_dir": hp.data_dir,
            "split_seed": hp.split_seed, "split_source": self.split_source,
            "max_samples": hp.max_samples, "fingerprints": dict(self.fingerprints),
        }  # fmt: skip

    @property
    def collator(self) -> CTCCollator:
        return CTCCollator(
            return_attention_mask=self.frontend.uses_attention_mask,
            padding_value=self.feature_extractor.padding_value,
            input_name=self.frontend.input_name,
        )

    # ---------------------------------------------------------------- loading and splitting

    def _load(self) -> DatasetDict:
        hp = self.hparams
        if hp.dataset == "audiofolder":
            if not Path(hp.data_dir).is_dir():
                raise FileNotFoundError(f"data.data_dir={hp.data_dir} is not a directory (an audiofolder dataset)")
            ds = load_audiofolder(hp.data_dir, hp.audio_column, hp.cache_dir)
        else:
            try:  # an unknown config fails here, from the dataset's card, before any data is downloaded
                if Path(hp.dataset).exists():
                    ds = datasets.load_dataset(hp.dataset, name=hp.config, data_dir=hp.data_dir, cache_dir=hp.cache_dir)
                else:
                    ds = hub.load_dataset(hp.dataset, name=hp.config, revision=hp.revision, cache_dir=hp.cache_dir)
            except ValueError as err:
                if "BuilderConfig" not in str(err):
                    raise
                raise ValueError(f"data.config={hp.config!r} is not a config of {hp.dataset}: {err}") from None
        for split in ds.values():
            missing = {hp.audio_column, hp.text_column, *self.metadata_columns} - set(split.column_names)
            missing |= {c for c in (hp.id_column, hp.group_column) if c} - set(split.column_names)
            if missing:
                raise KeyError(
                    f"dataset {hp.dataset} ({hp.config or hp.data_dir}) has no column(s) {sorted(missing)}; "
                    f"its columns are {split.column_names}: set data.audio_column/text_column/id_column/"
                    "metadata_columns/group_column accordingly"
                )
        # decode=False: we decode with soundfile and resample with soxr (no torchcodec/FFmpeg).
        return DatasetDict({k: v.cast_column(hp.audio_column, Audio(decode=False)) for k, v in ds.items()})

    def _split(self, ds: DatasetDict) -> tuple[dict[str, Dataset], dict[str, list[str]]]:
        """The three splits and the ids of their rows."""
        hp = self.hparams
        named = {SPLIT_ALIASES[k]: v for k, v in ds.items() if k in SPLIT_ALIASES}
        if set(named) >= {"train", "validation", "test"} and not hp.splits_file:
            self.split_source = "predefined"
            splits = {s: self._head(named[s]) for s in SPLITS}
            return splits, {s: self._ids(d) for s, d in splits.items()}
        # One pool of rows (MInDS-14 ships only `train`), split deterministically.
        pool = datasets.concatenate_datasets([ds[k] for k in sorted(ds)]) if len(ds) > 1 else next(iter(ds.values()))
        pool = self._head(pool)
        ids = self._ids(pool)
        if hp.splits_file:
            self.split_source = f"file:{hp.splits_file}"
            index = self._indices_from_file(ids)
        else:
            self.split_source = "random"
            groups = pool[hp.group_column] if hp.group_column else None
            index = split_indices(len(pool), hp.val_fraction, hp.test_fraction, hp.split_seed, groups)
        return {s: pool.select(index[s]) for s in SPLITS}, {s: [ids[i] for i in index[s]] for s in SPLITS}

    def _head(self, ds: Dataset) -> Dataset:
        n = self.hparams.max_samples
        return ds.select(range(min(n, len(ds)))) if n else ds

    def _ids(self, ds: Dataset) -> list[str]:
        hp = self.hparams
        if hp.id_column:
            ids = [str(x) for x in ds[hp.id_column]]
        else:
            root = Path(hp.data_dir).resolve() if hp.data_dir else None
            ids = [_relative(p, root) for p in _audio_paths(ds, hp.audio_column)]
        dupes = [k for k, c in Counter(ids).items() if c > 1]
        if dupes:
            raise ValueError(f"ids are not unique ({len(dupes)} repeated, e.g. {dupes[:3]}): set data.id_column")
        return ids

    def _indices_from_file(self, ids: list[str]) -> dict[str, list[int]]:
        saved = json.loads(Path(self.hparams.splits_file).read_text())
        position = {k: i for i, k in enumerate(ids)}
        index = {}
        for split in SPLITS:
            unknown = [k for k in saved[split] if k not in position]
            if unknown:
                raise KeyError(
                    f"{self.hparams.splits_file}: {len(unknown)} {split} id(s) are not in the dataset "
                    f"(e.g. {unknown[:3]}); was it made from another dataset, config or max_samples?"
                )
            index[split] = [position[k] for k in saved[split]]
        return index

    # ---------------------------------------------------------------- vocab and preprocessing

    def _make_vocab(self, train_texts: list[str]) -> dict[str, int]:
        hp = self.hparams
        if hp.vocab == "train" or hp.pretrained is None:
            self.vocab_source = "train"
            return self._train_vocab(train_texts, "data.vocab=train" if hp.vocab == "train" else "a random-init model")
        vocab = pretrained_vocab(hp.pretrained)
        if vocab is None:
            if hp.vocab == "pretrained":
                raise ValueError(
                    f"data.vocab=pretrained: {hp.pretrained} ships no tokenizer (a pretrain-only checkpoint); use "
                    "data.vocab=auto or train to build the vocabulary from the train split"
                )
            self.vocab_source = "train"
            return self._train_vocab(train_texts, f"{hp.pretrained} ships no tokenizer")
        rate, missing = oov_stats(train_texts, vocab)
        if rate > hp.max_oov_rate:
            spelled = "".join(c for c, _ in missing.most_common(20))
            if hp.vocab == "auto":
                self.vocab_source = "train"
                why = f"the tokenizer of {hp.pretrained} cannot spell {rate:.1%} of the train characters ({spelled!r})"
                return self._train_vocab(train_texts, why)
            raise ValueError(
                f"the vocabulary of {hp.pretrained} cannot spell {rate:.1%} of the train characters of "
                f"{hp.dataset} ({hp.config}); most common missing: {spelled!r}. "
                "Use data.vocab=train (or auto) to build a vocabulary from the train split"
            )
        self.vocab_source = "pretrained"
        log.info("vocabulary: the tokenizer of %s (%d tokens; %.3f%% of train characters out of it)",
                 hp.pretrained, len(vocab), 100 * rate)  # fmt: skip
        return vocab

    @staticmethod
    def _train_vocab(train_texts: list[str], why: str) -> dict[str, int]:
        vocab = build_vocab(train_texts)
        log.info("vocabulary: %d tokens built from the train split (%s); the CTC head is new", len(vocab), why)
        return vocab

    def _preprocess(self, split: str, raw: Dataset, ids: list[str]) -> Dataset:
        hp = self.hparams
        if len(raw) == 0:  # e.g. test_fraction=0
            self.metadata[split] = {}
            self.report[split] = {
                "rows": 0, "kept": 0, "hours": 0.0, "skipped": dict.fromkeys(SKIP_REASONS, 0), "skipped_ids": {},
            }  # fmt: skip
            columns = preprocessed_features(self.frontend.input_name)
            features = datasets.Features({k: v for k, v in columns.items() if k not in ("skip", "error")})
            return Dataset.from_dict({k: [] for k in features}, features=features)
        columns = {c: _readable(raw, c) for c in self.metadata_columns}
        self.metadata[split] = {k: {c: v[i] for c, v in columns.items()} for i, k in enumerate(ids)}
        raw = raw.add_column("_id", ids) if "_id" not in raw.column_names else raw
        fn_kwargs = {
            "audio_column": hp.audio_column,
            "text_column": hp.text_column,
            "chars_to_ignore": hp.chars_to_ignore,
            "vocab_json": json.dumps(self.vocab, sort_keys=True),
            "fe_json": self.feature_extractor.to_json_string(),
            # the frame geometry's fields only: a run dir's path in the config must not change the cache key
            "config_json": _geometry_json(self.frontend.config),
            "min_samples": int(hp.min_duration_s * self.feature_extractor.sampling_rate),
            "max_samples": int(hp.max_duration_s * self.feature_extractor.sampling_rate),
            "split": split,
            "on_bad_audio": hp.on_bad_audio,  # in the cache key: a strict run must not reuse a skipping one
        }
        ds = raw.map(
            _prepare_example,
            fn_kwargs=fn_kwargs,
            remove_columns=raw.column_names,
            features=preprocessed_features(self.frontend.input_name),
            num_proc=hp.num_proc if hp.num_proc > 1 else None,
            desc=f"preprocess {split}",
        )
        skips, errors = ds["skip"], ds["error"]
        counts = Counter(s for s in skips if s)
        skipped_ids = {r: [ids[i] for i, s in enumerate(skips) if s == r] for r in SKIP_REASONS if counts[r]}
        for i, reason in enumerate(skips):
            if reason in (*AUDIO_ERROR_REASONS, "silent"):
                log.warning("%s: skipped %s (%s): %s", split, ids[i], reason, errors[i])
        kept = ds.select([i for i, s in enumerate(skips) if not s]).remove_columns(["skip", "error"])
        texts = kept["text"]
        rate, missing = oov_stats(texts, self.vocab)
        seconds = float(np.sum(kept["input_length"])) / self.feature_extractor.sampling_rate if len(kept) else 0.0
        self.report[split] = {
            "rows": len(raw),
            "kept": len(kept),
            "skipped": {r: counts.get(r, 0) for r in SKIP_REASONS},
            "skipped_ids": skipped_ids,
            "hours": round(seconds / 3600, 4),
            "oov_char_rate": round(rate, 6),
            "oov_chars": dict(missing.most_common()),
        }
        log.info(
            "%s: %d/%d clips kept (%.2f h); skipped %s; out-of-vocabulary characters %.3f%%",
            split, len(kept), len(raw), seconds / 3600, {r: counts[r] for r in skipped_ids} or "none", 100 * rate,
        )  # fmt: skip
        if split == "train" and len(kept) == 0:
            raise ValueError(f"no usable training clips in {self.hparams.dataset}: see the skip counts above")
        return kept

    def _write_outputs(self, ids: dict[str, list[str]]) -> None:
        if not self.hparams.output_dir:
            return
        out = Path(self.hparams.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        splits: dict[str, Any] = {s: ids[s] for s in SPLITS}
        splits["_meta"] = {
            "dataset": self.hparams.dataset, "config": self.hparams.config, "revision": self.hparams.revision,
            "split_seed": self.hparams.split_seed, "source": self.split_source,
            "val_fraction": self.hparams.val_fraction, "test_fraction": self.hparams.test_fraction,
            "group_column": self.hparams.group_column, "max_samples": self.hparams.max_samples,
        }  # fmt: skip
        (out / "splits.json").write_text(json.dumps(splits, indent=1))
        (out / "vocab.json").write_text(json.dumps(self.vocab, indent=1, ensure_ascii=False))
        (out / "data_report.json").write_text(json.dumps(self.report, indent=1, ensure_ascii=False))

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        columns = [self.frontend.input_name, "labels"]
        ds = self.splits[split].with_format("numpy", columns=columns, output_all_columns=True)
        lengths = self.splits[split]["input_length"]
        trainer = self.trainer
        ddp = {"num_replicas": trainer.world_size if trainer else 1, "rank": trainer.global_rank if trainer else 0}
        hp = self.hparams
        sampler: Sampler[list[int]]
        if shuffle and hp.max_batch_seconds is not None:
            sampler = DurationBatchSampler(
                lengths,
                max_batch_seconds=hp.max_batch_seconds,
                sampling_rate=self.feature_extractor.sampling_rate,
                shuffle=True,
                num_buckets=hp.num_buckets,
                seed=hp.seed,
                **ddp,
            )
        else:
            sampler = LengthGroupedBatchSampler(
                lengths, batch_size=batch_size, shuffle=shuffle, group_by_length=hp.group_by_length, seed=hp.seed, **ddp
            )
        workers = hp.num_workers
        kwargs = {
            "batch_sampler": sampler,
            "collate_fn": self.collator,
            "num_workers": workers,
            "persistent_workers": workers > 0,
            "pin_memory": trainer is not None and trainer.strategy.root_device.type == "cuda",
        }
        if shuffle and trainer is not None:  # training: checkpoints record the place in the epoch
            loop = trainer.fit_loop.epoch_loop
            return ResumableDataLoader(ds, batches_done=lambda: loop.batch_progress.current.processed, **kwargs)
        return DataLoader(ds, **kwargs)


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


def _prepare_example(
    example: dict,
    audio_column: str,
    text_column: str,
    chars_to_ignore: str | None,
    vocab_json: str,
    fe_json: str,
    min_samples: int,
    max_samples: int,
    config_json: str,
    split: str,
    on_bad_audio: str,
) -> dict:
    tokenizer, frontend = _processor_parts(vocab_json, fe_json, config_json)
    fe, name = frontend.feature_extractor, frontend.input_name
    raw_text = example[text_column] or ""
    text = normalize_text(raw_text, chars_to_ignore)
    out = {
        "id": example["_id"],
        "text": text,
        # typed: Arrow won't mix float64 [] with float32 rows
        name: np.zeros(0 if name == "input_values" else (0, 1), dtype=np.float32),
        "input_length": 0,
        "labels": [],
        "skip": "",
        "error": "",
    }
    # The audio is read even under an empty transcript, so that every broken file is reported (or fails).
    try:
        audio = load_audio(audio_source(example[audio_column]), fe.sampling_rate)  # (samples,)
    except AudioError as err:
        if on_bad_audio == "error":
            raise AudioError(
                f"{split} clip {example['_id']}: {err} ({err.reason}); data.on_bad_audio=skip skips such clips instead",
                reason=err.reason,
            ) from err
        return out | {"skip": err.reason, "error": str(err)}
    out["input_length"] = len(audio)
    peak = float(np.abs(audio).max())
    if text and peak < SILENCE_PEAK:
        return out | {"skip": "silent", "error": f"digital silence (peak |x| = {peak:.1e})"}
    if not raw_text.strip():
        return out | {"skip": "empty_text"}
    if not text:
        return out | {"skip": "ignored_chars_only"}
    if split == "train" and not set(text) <= _known_chars(vocab_json):
        # Evaluation keeps such clips: their reference stays the real text (the report counts the misses).
        return out | {"skip": "oov_chars"}
    if len(audio) < min_samples:
        return out | {"skip": "too_short"}
    if len(audio) > max_samples:
        return out | {"skip": "too_long"}
    labels = tokenizer(text).input_ids
    if ctc_min_frames(labels) > frontend.output_frames(len(audio)):
        return out | {"skip": "unalignable"}
    return out | {name: frontend.features(audio), "labels": labels}


@lru_cache(maxsize=4)
def _processor_parts(vocab_json: str, fe_json: str, config_json: str) -> tuple[Any, Frontend]:
    processor = build_processor(json.loads(vocab_json), json.loads(fe_json))
    config = encoders.model_config(None, json.loads(config_json))
    return processor.tokenizer, Frontend(config, processor.feature_extractor)


# What decides a model's frame counts (`Frontend`): its family and feature-encoder/adapter geometry.
GEOMETRY_KEYS = ("model_type", "conv_dim", "conv_kernel", "conv_stride", "add_adapter", "num_adapter_layers",
                 "adapter_stride", "adapter_kernel_size", "feature_projection_input_dim", "hidden_size",
                 "output_hidden_size")  # fmt: skip


def _geometry_json(config: Any) -> str:
    full = config.to_dict()
    return json.dumps({k: full[k] for k in GEOMETRY_KEYS if k in full}, sort_keys=True)


@lru_cache(maxsize=4)
def _known_chars(vocab_json: str) -> frozenset[str]:
    return frozenset(vocab_characters(json.loads(vocab_json)))


def _audio_paths(ds: Dataset, audio_column: str) -> list[str]:
    # Read only the `path` field of the audio struct: the bytes can be gigabytes.
    column = ds.select_columns([audio_column]).with_format("arrow")[:].column(audio_column)
    return [p for chunk in column.chunks for p in chunk.field("path").to_pylist()]


def _readable(ds: Dataset, column: str) -> list[Any]:
    """A column's values, with class labels (MInDS-14's `intent_class`) as their names."""
    feature = ds.features[column]
    return feature.int2str(ds[column]) if isinstance(feature, datasets.ClassLabel) else ds[column]


def _metadata_file(folder: Path) -> Path | None:
    return next((folder / n for n in ("metadata.csv", "metadata.jsonl") if (folder / n).is_file()), None)


def _audio_cell(file_name: str, folder: str, column: str) -> dict:
    return {column: {"bytes": None, "path": str(Path(folder) / file_name)}}


def _relative(path: str | None, root: Path | None) -> str:
    if path is None:
        raise ValueError("an audio cell has no path to use as id: set data.id_column")
    if root is not None:
        try:
            return str(Path(path).resolve().relative_to(root))
        except ValueError:
            pass
    return path
