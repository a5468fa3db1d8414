# pytest tests/test_stream.py
"""Training on corpora that do not fit: the train split read as a `datasets.IterableDataset`.

Each DDP rank reads its own part of the stream (`split_dataset_by_node`), each DataLoader worker its own shards.
A worker decodes and filters clips as they come (the index's own checks: `index.index_text`), fills a bounded
buffer and cuts it into length-sorted batches by padded duration, as Lhotse's `DynamicBucketingSampler` does;
memory is bounded by the buffer, and the first batch comes after one buffer, whatever the corpus size.

Resume: every batch carries its worker's stream position (`IterableDataset.state_dict()`: shard and offset), and
`StreamingLoader.state_dict()` keeps each worker's latest one. A resumed run reads each worker's stream on from
there. It does not replay the clips that were in a worker's buffer at the checkpoint (at most `buffer_clips` per
worker, and the batches prefetched but not trained on), so a resumed streaming run sees almost, not exactly, the
clips of an uninterrupted one. Validation and test stay map-style and exact.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from datasets import IterableDataset
from torch.utils.data import DataLoader, get_worker_info

from asr_lightning.audio import AudioError, audio_source, load_audio
from asr_lightning.collate import CTCCollator
from asr_lightning.index import index_text

log = logging.getLogger(__name__)


class StreamingClips(torch.utils.data.IterableDataset):
    """Batches of a streamed train split, filtered and bucketed on the fly in each worker.

    Args:
        source: this rank's part of the stream (`split_dataset_by_node`), its audio column undecoded.
        audio_column, text_column, id_column: its columns (`id_column` None: the audio path is the id).
        text_kwargs: `index.index_text`'s settings (vocabulary, normalisation, durations, frame geometry).
        frontend: the model's input (`Frontend`).
        collator: pads a batch.
        max_batch_seconds: padded audio per batch; None: `batch_size` clips.
        batch_size: clips per batch when `max_batch_seconds` is None.
        buffer_clips: clips read before a buffer is sorted and cut into batches.
        augmenter: training augmentation, or None.
        seed: seeds the batch order and augmentation, with the rank, worker and position in the stream.
        rank: this DDP rank.
    """

    def __init__(
        self,
        source: IterableDataset,
        audio_column: str,
        text_column: str,
        id_column: str | None,
        text_kwargs: dict[str, Any],
        frontend: Any,
        collator: CTCCollator,
        max_batch_seconds: float | None,
        batch_size: int,
        buffer_clips: int = 2000,
        augmenter: Any | None = None,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        self.source = source
        self.audio_column, self.text_column, self.id_column = audio_column, text_column, id_column
        self.text_kwargs = text_kwargs
        self.frontend, self.collator = frontend, collator
        self.max_batch_seconds, self.batch_size, self.buffer_clips = max_batch_seconds, batch_size, buffer_clips
        self.augmenter = augmenter if augmenter is not None and augmenter.enabled else None
        self.seed, self.rank = seed, rank
        self.epoch = 0
        self.resume_states: dict[int, dict] = {}  # worker id -> its stream position (StreamingLoader.load_state_dict)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        stream = copy.deepcopy(self.source)
        stream.set_epoch(self.epoch)
        if worker in self.resume_states:
            stream.load_state_dict(self.resume_states[worker])
        skipped: Counter[str] = Counter()
        buffer: list[dict[str, Any]] = []
        position = 0
        for example in stream:
            position += 1
            clip = self._clip(example, skipped, rng=np.random.default_rng([self.seed, self.rank, worker, position]))
            if clip is not None:
                buffer.append(clip)
            if len(buffer) >= self.buffer_clips:
                yield from self._batches(buffer, skipped, worker, stream.state_dict(), position)
                buffer, skipped = [], Counter()
        if buffer:  # skips after the last batch of the stream go uncounted
            yield from self._batches(buffer, skipped, worker, stream.state_dict(), position)

    def _clip(self, example: dict[str, Any], skipped: Counter[str], rng: np.random.Generator) -> dict[str, Any] | None:
        cell = example[self.audio_column]
        clip_id = str(example[self.id_column]) if self.id_column else str(cell.get("path"))
        sr = self.frontend.sampling_rate
        try:
            audio = load_audio(audio_source(cell), sr)  # (samples,)
        except AudioError as err:
            skipped[err.reason] += 1
            log.warning("stream: skipped %s (%s): %s", clip_id, err.reason, err)
            return None
        row = {"id": clip_id, "row": -1, "transcript": example[self.text_column] or "", "input_length": len(audio),
               "peak": float(np.abs(audio).max()), "skip": "", "error": ""}  # fmt: skip
        row = index_text(row, **self.text_kwargs, split="train")
        if row["skip"]:
            skipped[row["skip"]] += 1
            return None
        if self.augmenter is not None:
            audio = self.augmenter(audio, rng)
        name = self.frontend.input_name
        return {name: self.frontend.features(audio), "input_length": len(audio), "labels": row["labels"],
                "id": clip_id, "text": row["text"]}  # fmt: skip

    def _batches(
        self, buffer: list[dict[str, Any]], skipped: Counter[str], worker: int, state: dict, position: int
    ) -> Iterator[dict[str, Any]]:
        buffer = sorted(buffer, key=lambda c: c["input_length"], reverse=True)  # length-sorted: little padding
        groups: list[list[dict[str, Any]]] = []
        budget = None if self.max_batch_seconds is None else self.max_batch_seconds * self.frontend.sampling_rate
        for clip in buffer:
            group = groups[-1] if groups else None
            # longest first: the group's first clip is its longest, so its padded size is len x that length
            fits = group is not None and (
                len(group) < self.batch_size
                if budget is None
                else (len(group) + 1) * group[0]["input_length"] <= budget
            )
            if fits:
                group.append(clip)
            else:
                groups.append([clip])
        order = np.random.default_rng([self.seed, self.rank, worker, position, 1]).permutation(len(groups))
        for n, i in enumerate(order):
            batch = self.collator(groups[i])
            batch["skipped"] = dict(skipped) if n == 0 else {}  # counted once, with the buffer's first batch
            batch["stream_state"] = (worker, state)
            yield batch


class StreamingLoader(DataLoader):
    """The DataLoader of `StreamingClips` (whole batches from the workers), whose stream positions go into
    Lightning checkpoints (`state_dict`) and come back on resume (`load_state_dict`)."""

    def __init__(self, dataset: StreamingClips, num_workers: int = 0, pin_memory: bool = False) -> None:
        super().__init__(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory)
        self.states: dict[int, dict] = dict(dataset.resume_states)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Lightning sets no epoch on an iterable dataset: each full pass over the stream is the next epoch (a new
        # shuffle), and only the first pass after a resume starts at the saved positions
        for batch in super().__iter__():
            worker, state = batch.pop("stream_state")
            self.states[worker] = state
            yield batch
        self.dataset.epoch += 1
        self.dataset.resume_states, self.states = {}, {}

    def state_dict(self) -> dict[str, Any]:
        return {"stream_states": {str(k): v for k, v in self.states.items()}, "epoch": self.dataset.epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.states = {int(k): v for k, v in state_dict.get("stream_states", {}).items()}
        self.dataset.resume_states = dict(self.states)
        self.dataset.epoch = state_dict.get("epoch", 0)
