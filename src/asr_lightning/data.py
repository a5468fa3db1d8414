# python train.py data=minds14   (or data=audiofolder data.data_dir=..., data=demo)
"""The LightningDataModule: it wires the stages of the data path into samplers and loaders.

`sources.py` loads the rows (audio undecoded), `splits.py` makes train/validation/test, `index.py` indexes and
filters each split once (cached; no audio arrays), and `transform.py` decodes, augments and normalises each clip
in the DataLoader workers. This class builds the vocabulary, the samplers and the loaders from them.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import datasets
import lightning as L
import numpy as np
from datasets import Dataset, DatasetDict
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from asr_lightning import encoders
from asr_lightning.audio import AUDIO_ERROR_REASONS
from asr_lightning.augment import Augmenter
from asr_lightning.collate import CTCCollator
from asr_lightning.corpora import LAYOUTS
from asr_lightning.frontend import Frontend
from asr_lightning.index import AUDIO_INDEX, INDEX, SKIP_REASONS, geometry_json, index_audio, index_text
from asr_lightning.sampling import (
    DurationBatchSampler,
    EpochBatchSampler,
    LengthGroupedBatchSampler,
    ResumableDataLoader,
)
from asr_lightning.sources import SPLIT_ALIASES, load_source, load_stream_source, readable, source_splits
from asr_lightning.splits import SPLITS, Holdout, clip_ids, head, split_sets
from asr_lightning.stream import StreamingClips, StreamingLoader
from asr_lightning.text import (
    DEFAULT_CHARS_TO_IGNORE,
    build_vocab,
    load_feature_extractor,
    normalize_text,
    oov_stats,
    pretrained_vocab,
)
from asr_lightning.transform import ClipDataset

log = logging.getLogger(__name__)

VOCABS = ("auto", "pretrained", "train")
# each evaluation role's metric prefix (`val/wer`, `test/wer`)
ROLE_PREFIX = {"validation": "val", "test": "test"}


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
        eval_dataset: a second source for validation and test sets, as `dataset` (e.g. Libri-light trains on its
            own folder and is scored on LibriSpeech's dev and test sets); None: `dataset` holds them.
        eval_config: its config.
        eval_data_dir: its folder (a corpus layout, or an audiofolder).
        split_names: source split name -> the name used here (the Hub's `validation.clean` -> `dev-clean`, so
            that the Hub copy and the downloaded folder of a corpus name their sets alike).
        train_splits: the source splits trained on (pooled); None: the split named `train`.
        val_splits: the validation sets, each scored apart (`val/<set>/wer`); the first is `val/wer`, which the
            checkpoint and the sweeps follow. None: the split named `validation` (`valid`, `dev`), else held out
            of train (`val_fraction`); []: none.
        test_splits: the test sets, each scored and reported apart; the first is `test/wer`. None: the split named
            `test`, else held out of train (`test_fraction`); []: none.
        resplit: pool the splits (the named ones, or all) and split the pool by seed, ignoring their names. A
            source with only one split (MInDS-14) is always split so.
        val_fraction: share of the rows held out for validation when no source split is one.
        test_fraction: share of the rows held out for test when no source split is one.
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
        validate_audio: the one-off index pass decodes every clip (finding every broken file, measuring exact
            lengths); False reads only headers (`soundfile.info`), for corpora too large to decode twice: a
            clip that then fails in a worker is dropped from its batch and counted (`train/dropped_clips`).
        augment: training-only, on-the-fly augmentation (`augment.Augmenter`'s arguments: `speed_perturb`,
            `noise_dir`, `snr_db`, `noise_prob`, `gain_db`, `telephone`, ...), seeded per (seed, epoch, clip);
            None or all off: none.
        streaming: read the train split as a stream (`stream.py`) rather than indexing it: for corpora that do
            not fit the disk. It needs a source with its own train/validation/test splits; those two are read
            whole and indexed as usual. Training then runs by `trainer.max_steps`.
        stream_buffer_clips: clips each loader worker buffers, sorts and cuts into batches (bounds memory).
        stream_vocab_clips: with a vocabulary built from train, the first this-many streamed transcripts.
    """

    def __init__(
        self,
        dataset: str,
        config: str | None = None,
        revision: str | None = None,
        data_dir: str | None = None,
        eval_dataset: str | None = None,
        eval_config: str | None = None,
        eval_data_dir: str | None = None,
        split_names: dict[str, str] | None = None,
        train_splits: list[str] | None = None,
        val_splits: list[str] | None = None,
        test_splits: list[str] | None = None,
        resplit: bool = False,
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
        validate_audio: bool = True,
        augment: dict[str, Any] | None = None,
        streaming: bool = False,
        stream_buffer_clips: int = 2000,
        stream_vocab_clips: int = 10000,
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
        if dataset in LAYOUTS and not data_dir:
            raise ValueError(f"data.dataset={dataset} is a download folder: set data.data_dir=/path/to/it")
        for key, names in (("train_splits", train_splits), ("val_splits", val_splits), ("test_splits", test_splits)):
            if names is not None and (isinstance(names, str) or any(not isinstance(n, str) or "/" in n for n in names)):
                raise ValueError(f"data.{key}={names!r} must be a list of split names (without '/'), or null")
        if train_splits is not None and not train_splits:
            raise ValueError("data.train_splits=[] names no split to train on: list at least one, or set null")
        unknown = set(augment or {}) - set(inspect.signature(Augmenter).parameters) - {"sampling_rate"}
        if unknown:
            raise ValueError(f"data.augment: unknown key(s) {sorted(unknown)}; see asr_lightning.augment.Augmenter")
        self._augment = {k: v for k, v in (augment or {}).items() if v is not None}
        self.augmenter = Augmenter(sampling_rate=sampling_rate, **self._augment)  # checks its settings now
        self.save_hyperparameters(logger=False)
        self.metadata_columns = list(metadata_columns or [])
        self.feature_extractor = None
        self.frontend: Frontend | None = None
        self.sources: dict[str, Dataset] = {}  # the source rows of each split, read by the workers
        self.stream: Any = None  # the streamed train split (data.streaming=true)
        self.vocab_source: str | None = None
        self.vocab: dict[str, int] = {}
        self.splits: dict[str, Dataset] = {}  # each role's kept index rows, its sets one after another
        self.sets: dict[str, list[str]] = {}  # role -> its sets' names, in the configured order
        self.metadata: dict[str, dict[str, dict[str, Any]]] = {}
        self.report: dict[str, Any] = {}
        self.fingerprints: dict[str, str] = {}
        self.split_source: str | None = None
        self.split_meta: dict[str, Any] = {}

    # ---------------------------------------------------------------- Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        """Load, split, build the vocab and preprocess every split (once; later calls are no-ops)."""
        if self.splits:
            return
        hp = self.hparams
        raw, ids = self._streamed_splits() if hp.streaming else self._split(self._load())
        self.sets = {role: list(parts) for role, parts in raw.items()}
        # datasets' content hash of each set's rows (data files + selection), for provenance
        self.fingerprints = {role: "+".join(d._fingerprint for d in parts.values()) for role, parts in raw.items()}
        if hp.streaming:
            self.fingerprints["train"] = f"streamed from {hp.dataset}"
        config = encoders.model_config(hp.pretrained, hp.architecture)
        self.feature_extractor = load_feature_extractor(
            hp.pretrained, config, hp.sampling_rate, hp.return_attention_mask
        )
        self.frontend = Frontend(config, self.feature_extractor)
        if self.augmenter.sampling_rate != self.feature_extractor.sampling_rate:  # the checkpoint's rate rules
            self.augmenter = Augmenter(sampling_rate=self.feature_extractor.sampling_rate, **self._augment)
        if self.augmenter.enabled:
            log.info("training %s", self.augmenter.describe())
        if hp.streaming:  # the stream's first transcripts stand for the train split
            texts = [
                r[hp.text_column] for r in self.stream.select_columns([hp.text_column]).take(hp.stream_vocab_clips)
            ]
        else:
            texts = [t for d in raw["train"].values() for t in d[hp.text_column]]
        self.vocab = self._make_vocab([normalize_text(t or "", hp.chars_to_ignore) for t in texts])
        for role, parts in raw.items():
            self._index_role(role, parts, ids[role])
        if hp.streaming:  # counted as the stream is read: train/skipped_clips, per reason in the checkpoint
            self.report["train"] = {"rows": None, "kept": None, "hours": None, "skipped": {}, "streamed": True}
        self._write_outputs(ids)

    def train_dataloader(self) -> DataLoader:
        if self.hparams.streaming:
            return self._stream_loader()
        return self._loader("train")

    @property
    def eval_sets(self) -> dict[str, list[str]]:
        """The validation and test sets' names, in order: the first of each is `val/wer`, `test/wer`."""
        return {role: list(self.sets.get(role, [])) for role in ("validation", "test")}

    def set_keys(self, role: str) -> list[str | None]:
        """Each of the role's sets' metric infix (`val/<set>/wer`), or None for a set that is the role itself: one
        set only, or one named like the role (`validation`, `test`)."""
        return set_keys(self.sets.get(role, []), role)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    @property
    def identity(self) -> dict[str, Any]:
        """What data a run saw: source, config, revision, split settings and per-split fingerprints."""
        hp = self.hparams
        return {
            "dataset": hp.dataset, "config": hp.config, "revision": hp.revision, "data_dir": hp.data_dir,
            "eval_dataset": hp.eval_dataset, "eval_config": hp.eval_config, "eval_data_dir": hp.eval_data_dir,
            "split_seed": hp.split_seed, "split_source": self.split_source, "sets": dict(self.sets),
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
        """The source's splits (renamed by `split_names`), and the eval source's validation and test sets."""
        hp = self.hparams
        columns = [hp.text_column, *self.metadata_columns, *(c for c in (hp.id_column, hp.group_column) if c)]
        listed = [n for names in (hp.train_splits, hp.val_splits, hp.test_splits) for n in names or []]
        if hp.eval_dataset is None:
            return self._load_named(hp.dataset, hp.config, hp.revision, hp.data_dir, columns, listed)
        if hp.train_splits is None or hp.val_splits is None or hp.test_splits is None:
            raise ValueError("data.eval_dataset needs data.train_splits, data.val_splits and data.test_splits named")
        train = self._load_named(hp.dataset, hp.config, hp.revision, hp.data_dir, columns, hp.train_splits)
        scored = self._load_named(hp.eval_dataset, hp.eval_config, None, hp.eval_data_dir, columns,
                                  [*hp.val_splits, *hp.test_splits])  # fmt: skip
        return DatasetDict({**train, **scored})

    def _load_named(
        self, dataset: str, config: str | None, revision: str | None, data_dir: str | None, columns: list[str],
        listed: list[str],
    ) -> DatasetDict:  # fmt: skip
        """The source's splits under their `split_names`; only the listed ones, when some are (a Hub copy or a
        corpus folder then reads no other)."""
        hp = self.hparams
        renames = dict(hp.split_names or {})
        found = source_splits(dataset, config, revision, data_dir) if listed and not hp.resplit else None
        wanted = None
        if found is not None:
            present = {renames.get(k, k): k for k in found}
            missing = [n for n in listed if n not in present]
            if missing:
                raise ValueError(
                    f"data split(s) {missing} are not in the source, whose splits are {list(present)} ({dataset}"
                    f"{f', {config}' if config else ''}): set data.train_splits, data.val_splits and data.test_splits "
                    "to some of those (data.split_names renames a source's splits)"
                )
            wanted = [present[n] for n in listed]
        ds = load_source(dataset, config, revision, data_dir, hp.cache_dir, hp.audio_column, columns, wanted)
        return DatasetDict({renames.get(k, k): v for k, v in ds.items()})

    def _streamed_splits(self) -> tuple[dict[str, dict[str, Dataset]], dict[str, dict[str, list[str]]]]:
        """Validation and test sets read whole from the stream (map-style, exact); train kept as `self.stream`."""
        hp = self.hparams
        columns = [hp.text_column, *self.metadata_columns, *(c for c in (hp.id_column,) if c)]
        trainer = self.trainer
        shards = max(hp.num_workers, 1) * (trainer.world_size if trainer else 1)
        streams = load_stream_source(
            hp.dataset, hp.config, hp.revision, hp.data_dir, hp.cache_dir, hp.audio_column, columns, shards
        )
        streams = {(hp.split_names or {}).get(k, k): v for k, v in streams.items()}
        given = {"train": hp.train_splits, "validation": hp.val_splits, "test": hp.test_splits}
        roles = {r: list(n) if n is not None else [k for k in streams if SPLIT_ALIASES.get(k) == r]
                 for r, n in given.items()}  # fmt: skip
        missing = [n for names in roles.values() for n in names if n not in streams]
        if len(roles["train"]) != 1 or not roles["validation"] or not roles["test"] or missing:
            raise ValueError(
                f"data.streaming=true needs a source with its own train split and validation and test sets; "
                f"{hp.dataset} has {list(streams)}: name them (data.train_splits: one, data.val_splits, "
                "data.test_splits), or index it instead (data.streaming=false), which can split one pool"
            )
        self.split_source = "predefined"
        train = streams[roles["train"][0]]
        self.stream = train.take(hp.max_samples) if hp.max_samples else train
        raw: dict[str, dict[str, Dataset]] = {"train": {roles["train"][0]: Dataset.from_dict(
            {hp.audio_column: [], hp.text_column: []})}}  # fmt: skip
        ids: dict[str, dict[str, list[str]]] = {"train": {roles["train"][0]: []}}
        for role in ("validation", "test"):
            raw[role], ids[role] = {}, {}
            for name in roles[role]:
                # the audio as a plain (bytes, path) struct: datasets 5 would encode an Audio column with torchcodec
                features = datasets.Features(streams[name].features)
                features[hp.audio_column] = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
                ds = Dataset.from_generator(_rows, gen_kwargs={"stream": streams[name]}, features=features,
                                            cache_dir=hp.cache_dir)  # fmt: skip
                raw[role][name] = head(ds, hp.max_samples).cast_column(hp.audio_column, datasets.Audio(decode=False))
                ids[role][name] = clip_ids(raw[role][name], hp.id_column, hp.audio_column, hp.data_dir)
        return raw, ids

    def _stream_loader(self) -> StreamingLoader:
        hp, trainer = self.hparams, self.trainer
        if trainer is not None and trainer.max_steps < 1:
            raise ValueError("data.streaming=true trains by steps: set trainer.max_steps (a stream has no epochs)")
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        stream = self.stream.shuffle(seed=hp.seed, buffer_size=hp.stream_buffer_clips)
        text_kwargs = {
            "chars_to_ignore": hp.chars_to_ignore, "vocab_json": json.dumps(self.vocab, sort_keys=True),
            "fe_json": self.feature_extractor.to_json_string(), "config_json": geometry_json(self.frontend.config),
            "min_samples": int(hp.min_duration_s * self.frontend.sampling_rate),
            "max_samples": int(hp.max_duration_s * self.frontend.sampling_rate),
        }  # fmt: skip
        clips = StreamingClips(
            split_dataset_by_node(stream, rank=rank, world_size=world), hp.audio_column, hp.text_column,
            hp.id_column, text_kwargs, self.frontend, self.collator, hp.max_batch_seconds, hp.batch_size,
            buffer_clips=hp.stream_buffer_clips, augmenter=self.augmenter, seed=hp.seed, rank=rank,
        )  # fmt: skip
        pin = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return StreamingLoader(clips, num_workers=hp.num_workers, pin_memory=pin)

    def _split(self, ds: DatasetDict) -> tuple[dict[str, dict[str, Dataset]], dict[str, dict[str, list[str]]]]:
        """Each role's sets and the ids of their rows; an id in two sets is an error (a test clip in training)."""
        hp = self.hparams
        named = {"train": hp.train_splits, "validation": hp.val_splits, "test": hp.test_splits}
        sets, ids, self.split_meta = split_sets(
            ds, lambda d: clip_ids(d, hp.id_column, hp.audio_column, hp.data_dir), named, hp.resplit, hp.max_samples,
            hp.splits_file, Holdout(hp.val_fraction, hp.test_fraction, hp.split_seed, hp.group_column),
        )  # fmt: skip
        self.split_source = self.split_meta["source"]
        seen: dict[str, str] = {}
        for parts in ids.values():
            for name, keys in parts.items():
                for k in keys:
                    other = seen.setdefault(k, name)
                    if other != name:
                        raise ValueError(
                            f"clip id {k!r} is in both {other} and {name}: the sets overlap (or data.id_column does "
                            "not identify clips); a clip scored after training on it would flatter the model"
                        )
        for role, parts in sets.items():
            if len(parts) > 1 or role != "train":
                log.info("%s: %s", role, ", ".join(f"{n} ({len(d)} rows)" for n, d in parts.items()) or "none")
        return sets, ids

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

    def _index_role(self, role: str, parts: dict[str, Dataset], ids: dict[str, list[str]]) -> None:
        """Index each of the role's sets, then keep them as one index (a `set` column names each row's set) over
        their sources one after another; the report sums them and keeps each set's counts."""
        kept, sources, reports = [], [], {}
        self.metadata[role] = {}
        for name, raw in parts.items():
            index, raw, reports[name] = self._index(role, name, raw, ids[name])
            kept.append(index)
            sources.append(raw)
        if len(kept) == 1:
            self.splits[role], self.sources[role] = kept[0], sources[0]
        else:  # the rows of set k point into the k-th source, which now follows the sets before it
            offsets = np.cumsum([0, *(len(r) for r in sources[:-1])])
            rows = np.concatenate([np.asarray(k["row"], dtype=np.int64) + o
                                   for k, o in zip(kept, offsets, strict=True)])  # fmt: skip
            names = [n for n, k in zip(parts, kept, strict=True) for _ in range(len(k))]
            index = datasets.concatenate_datasets(kept).remove_columns("row")
            self.splits[role] = index.add_column("row", rows.tolist()).add_column("set", names)
            audio = [self.hparams.audio_column, "_id"]
            self.sources[role] = datasets.concatenate_datasets([r.select_columns(audio) for r in sources])
        report = {k: sum(r[k] for r in reports.values()) for k in ("rows", "kept")}
        report["hours"] = round(sum(r["hours"] for r in reports.values()), 4)
        report["skipped"] = {k: sum(r["skipped"][k] for r in reports.values()) for k in SKIP_REASONS}
        report["skipped_ids"] = {k: [i for r in reports.values() for i in r["skipped_ids"].get(k, [])]
                                 for k in SKIP_REASONS if report["skipped"][k]}  # fmt: skip
        chars = sum((Counter(r.get("oov_chars", {})) for r in reports.values()), Counter())
        total = sum(r.get("chars", 0) for r in reports.values())
        report["oov_char_rate"] = round(sum(chars.values()) / total, 6) if total else 0.0
        report["oov_chars"] = dict(chars.most_common())
        report["sets"] = reports
        self.report[role] = report
        if role == "train" and report["kept"] == 0 and not self.hparams.streaming:
            raise ValueError(f"no usable training clips in {self.hparams.dataset}: see the skip counts above")

    def _index(self, role: str, name: str, raw: Dataset, ids: list[str]) -> tuple[Dataset, Dataset, dict[str, Any]]:
        """A set's index (`index.py`): the audio pass (cached apart), then the text pass; its kept rows, its source
        rows (with their ids) and its report."""
        hp = self.hparams
        if len(raw) == 0:  # e.g. test_fraction=0
            features = datasets.Features({k: v for k, v in INDEX.items() if k not in ("skip", "error")})
            empty = {"rows": 0, "kept": 0, "hours": 0.0, "skipped": dict.fromkeys(SKIP_REASONS, 0), "skipped_ids": {},
                     "oov_char_rate": 0.0, "oov_chars": {}, "chars": 0}  # fmt: skip
            return Dataset.from_dict({k: [] for k in features}, features=features), raw, empty
        columns = {c: readable(raw, c) for c in self.metadata_columns}
        self.metadata[role] |= {k: {c: v[i] for c, v in columns.items()} for i, k in enumerate(ids)}
        raw = raw.add_column("_id", ids) if "_id" not in raw.column_names else raw
        num_proc = hp.num_proc if hp.num_proc > 1 else None
        audio = raw.map(
            index_audio,
            with_indices=True,
            fn_kwargs={
                "audio_column": hp.audio_column,
                "text_column": hp.text_column,
                "sampling_rate": self.feature_extractor.sampling_rate,
                "validate_audio": hp.validate_audio,
                "split": name,
                "on_bad_audio": hp.on_bad_audio,  # in the cache key: a strict run must not reuse a skipping one
            },  # fmt: skip
            remove_columns=raw.column_names,
            features=AUDIO_INDEX,
            num_proc=num_proc,
            desc=f"index audio of {name}",
        )
        ds = audio.map(
            index_text,
            fn_kwargs={
                "chars_to_ignore": hp.chars_to_ignore,
                "vocab_json": json.dumps(self.vocab, sort_keys=True),
                "fe_json": self.feature_extractor.to_json_string(),
                "config_json": geometry_json(self.frontend.config),
                "min_samples": int(hp.min_duration_s * self.feature_extractor.sampling_rate),
                "max_samples": int(hp.max_duration_s * self.feature_extractor.sampling_rate),
                "split": role,  # the role decides the filters (train drops what the vocab cannot spell)
            },
            remove_columns=audio.column_names,
            features=INDEX,
            num_proc=num_proc,
            desc=f"index text of {name}",
        )
        skips, errors = ds["skip"], ds["error"]
        counts = Counter(s for s in skips if s)
        skipped_ids = {r: [ids[i] for i, s in enumerate(skips) if s == r] for r in SKIP_REASONS if counts[r]}
        for i, reason in enumerate(skips):
            if reason in (*AUDIO_ERROR_REASONS, "silent"):
                log.warning("%s: skipped %s (%s): %s", name, ids[i], reason, errors[i])
        kept = ds.select([i for i, s in enumerate(skips) if not s]).remove_columns(["skip", "error"])
        texts = kept["text"]
        rate, missing = oov_stats(texts, self.vocab)
        seconds = float(np.sum(kept["input_length"])) / self.feature_extractor.sampling_rate if len(kept) else 0.0
        report = {
            "rows": len(raw),
            "kept": len(kept),
            "skipped": {r: counts.get(r, 0) for r in SKIP_REASONS},
            "skipped_ids": skipped_ids,
            "hours": round(seconds / 3600, 4),
            "oov_char_rate": round(rate, 6),
            "oov_chars": dict(missing.most_common()),
            "chars": sum(len(t) for t in texts),
        }
        log.info(
            "%s: %d/%d clips kept (%.2f h); skipped %s; out-of-vocabulary characters %.3f%%",
            name, len(kept), len(raw), seconds / 3600, {r: counts[r] for r in skipped_ids} or "none", 100 * rate,
        )  # fmt: skip
        return kept, raw, report

    def _write_outputs(self, ids: dict[str, dict[str, list[str]]]) -> None:
        if not self.hparams.output_dir:
            return
        out = Path(self.hparams.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        # each role's ids (its sets one after another, as `splits_file` reads them back), and each set's own
        splits: dict[str, Any] = {s: [k for part in ids.get(s, {}).values() for k in part] for s in SPLITS}
        splits["sets"] = ids
        splits["_meta"] = {
            "dataset": self.hparams.dataset, "config": self.hparams.config, "revision": self.hparams.revision,
            "eval_dataset": self.hparams.eval_dataset, "eval_config": self.hparams.eval_config,
            "split_seed": self.hparams.split_seed, "source": self.split_source, **self.split_meta,
            "val_fraction": self.hparams.val_fraction, "test_fraction": self.hparams.test_fraction,
            "group_column": self.hparams.group_column, "max_samples": self.hparams.max_samples,
        }  # fmt: skip
        (out / "splits.json").write_text(json.dumps(splits, indent=1))
        (out / "vocab.json").write_text(json.dumps(self.vocab, indent=1, ensure_ascii=False))
        (out / "data_report.json").write_text(json.dumps(self.report, indent=1, ensure_ascii=False))

    def dataset(self, split: str, augment: bool = False) -> ClipDataset:
        """The split's clips as the loaders read them: decoded in the workers, (augmented,) normalised."""
        hp = self.hparams
        return ClipDataset(
            self.splits[split], self.sources[split], hp.audio_column, self.frontend,
            augmenter=self.augmenter if augment else None, seed=hp.seed,
        )  # fmt: skip

    def batch_sampler(self, split: str, num_replicas: int | None = None, rank: int | None = None) -> EpochBatchSampler:
        """The batches of `split` on one rank (default: the trainer's; `num_replicas` for a dry run's count)."""
        shuffle = split == "train"
        hp, trainer = self.hparams, self.trainer
        lengths = ClipDataset.index_lengths(self.splits[split])
        factors = self.augmenter.speed_perturb or ()
        if shuffle and self.augmenter.enabled and factors:  # batches hold the longest a clip can become (speed < 1)
            lengths = [max(self.augmenter.perturbed_length(n, f) for f in factors) for n in lengths]
        ddp = {"num_replicas": num_replicas or (trainer.world_size if trainer else 1),
               "rank": rank if rank is not None else (trainer.global_rank if trainer else 0)}  # fmt: skip
        batch_size = hp.batch_size if shuffle else hp.eval_batch_size
        sampler: EpochBatchSampler
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
        sampler.tag_epoch = shuffle  # (epoch, clip) keys: the workers seed each clip's augmentation with them
        return sampler

    def _loader(self, split: str) -> DataLoader:
        shuffle = split == "train"
        ds = self.dataset(split, augment=shuffle)
        sampler = self.batch_sampler(split)
        hp, trainer = self.hparams, self.trainer
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


def set_keys(names: list[str], role: str) -> list[str | None]:
    """Each set's metric infix (`val/<set>/wer`), or None for a set that is its role: the only one, or one named
    like the role. The first set is also the role's own keys (`val/wer`) either way."""
    if len(names) <= 1:
        return [None] * len(names)
    return [None if n in (role, ROLE_PREFIX[role]) else n for n in names]


def _rows(stream: Any) -> Any:
    yield from stream
