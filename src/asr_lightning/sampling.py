# pytest tests/test_sampling.py
"""Length-grouped, DDP-aware batch samplers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """What both samplers share: an order fixed by seed and epoch, DDP slicing, and resuming mid-epoch.

    Subclasses set `rank`, `num_replicas` and `epoch`, and build all ranks' batches in `_batches()`.
    """

    rank: int
    num_replicas: int
    epoch: int
    _skip: int = 0
    # yield (epoch, index) pairs instead of indices: the dataset seeds each clip's augmentation with them
    tag_epoch: bool = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> EpochBatchSampler:
        # Lightning calls `set_epoch` on `loader.sampler` and `loader.batch_sampler.sampler`, never on the
        # batch sampler itself (torch's BatchSampler wraps an index sampler): without this, every epoch
        # would repeat the first epoch's batches
        return self

    def resume(self, epoch: int, batches_done: int) -> None:
        """Make the next pass `epoch`'s batches after the first `batches_done` (of this rank).

        The batches are those of an uninterrupted run: the order depends only on seed and epoch, so a run
        resumed from a mid-epoch checkpoint sees exactly the batches it had not trained on yet.
        """
        self.epoch, self._skip = epoch, batches_done

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0  # only the first pass after `resume` starts part-way
        batches = self._batches()[self.rank :: self.num_replicas][skip:]
        if not self.tag_epoch:
            yield from batches
            return
        for batch in batches:
            yield [(self.epoch, i) for i in batch]

    def _batches(self) -> list[list[int]]:
        raise NotImplementedError


class ResumableDataLoader(DataLoader):
    """A training DataLoader whose place in the epoch goes into Lightning checkpoints.

    Lightning stores `state_dict()` of a training loader that has one and hands it back to `load_state_dict`
    on resume, before iterating; without it a mid-epoch resume replays the epoch from its first batch.

    Args:
        batches_done: returns how many of this epoch's batches the loop has trained on (Lightning's
            `fit_loop.epoch_loop.batch_progress.current.processed`: a batch whose step crashed is redone).
        *args, **kwargs: `DataLoader`'s, with `batch_sampler` an `EpochBatchSampler`.
    """

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.batch_sampler, EpochBatchSampler):
            raise TypeError(f"ResumableDataLoader needs an EpochBatchSampler, got {type(self.batch_sampler)}")
        self.batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.epoch, "batches_done": int(self.batches_done())}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.batch_sampler.resume(state_dict["epoch"], state_dict["batches_done"])


class LengthGroupedBatchSampler(EpochBatchSampler):
    """Batches of similar-length examples.

    Evaluation (`shuffle=False`): examples sorted longest first, so a batch holds near-equal lengths
    and padding (which changes a group-norm encoder's outputs) is minimal. Training (`shuffle=True`):
    the HF `group_by_length` scheme: shuffle, sort inside mega-batches of `mega_batch` batches, shuffle
    the batches; the order depends only on `seed` and the epoch (`set_epoch`).

    Under DDP each rank takes every `num_replicas`-th batch. In training the batch count is cut to a
    multiple of `num_replicas` so all ranks step together; in evaluation no example is dropped or repeated.

    Args:
        lengths: length of each example (samples).
        batch_size: examples per batch.
        shuffle: training order (True) or sorted evaluation order (False).
        group_by_length: when shuffling, group similar lengths (False: plain random batches).
        seed: base seed of the shuffle.
        num_replicas: DDP world size.
        rank: this process's DDP rank.
        mega_batch: batches per sorting window when shuffling.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool,
        group_by_length: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        mega_batch: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.mega_batch = mega_batch
        self.epoch = 0

    def __len__(self) -> int:
        n_batches = -(-len(self.lengths) // self.batch_size)
        if self.shuffle:
            return n_batches // self.num_replicas
        return len(range(self.rank, n_batches, self.num_replicas))

    def _batches(self) -> list[list[int]]:
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        if self.group_by_length:
            window = self.batch_size * self.mega_batch
            chunks = [order[i : i + window] for i in range(0, len(order), window)]
            order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches[: len(batches) // self.num_replicas * self.num_replicas]


class DurationBatchSampler(EpochBatchSampler):
    """Batches filled up to a budget of padded audio seconds, from length buckets.

    Examples are split into `num_buckets` length buckets of near-equal count (quantiles), so a batch holds
    near-equal lengths and little padding. Training (`shuffle=True`): each epoch orders every bucket by
    length with +-5% random jitter (batch composition changes between epochs), packs it greedily into
    batches whose padded size (clips x longest clip) stays within `max_batch_seconds`, and shuffles the
    batches; the order depends only on `seed` and the epoch (`set_epoch`). Evaluation (`shuffle=False`):
    sorted longest first and packed; nothing dropped.

    The budget counts padded audio because activation memory grows with the padded batch, not the real one
    (fairseq's `max_tokens`; 200 s is its wav2vec2-base fine-tuning value per GPU).

    Under DDP each rank takes every `num_replicas`-th batch. In training the batch list is cut to a multiple
    of `num_replicas`, so ranks get distinct batches and the same number of them (DDP steps together).

    Args:
        lengths: length of each example (samples).
        max_batch_seconds: padded audio per batch (per device).
        sampling_rate: samples per second of `lengths`.
        shuffle: training order (True) or sorted evaluation order (False).
        num_buckets: length buckets (more: less padding, less randomness in batch composition); fewer
            when the corpus holds under two batches' worth of audio per bucket.
        seed: base seed of the shuffle.
        num_replicas: DDP world size.
        rank: this process's DDP rank.

    Raises:
        ValueError: a clip longer than the whole budget (it could never be batched).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_batch_seconds: float,
        sampling_rate: int,
        shuffle: bool,
        num_buckets: int = 30,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.budget = int(max_batch_seconds * sampling_rate)  # padded samples per batch
        if len(self.lengths) and self.lengths.max() > self.budget:
            raise ValueError(
                f"data.max_batch_seconds={max_batch_seconds} is shorter than the longest clip "
                f"({self.lengths.max() / sampling_rate:.2f} s): raise it, or lower data.max_duration_s"
            )
        if num_buckets < 1:
            raise ValueError(f"data.num_buckets must be >= 1, got {num_buckets}")
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        # equal-count buckets: bucket b holds the examples ranked [edges[b], edges[b + 1]) by length
        order = np.argsort(self.lengths, kind="stable")
        # at least ~2 full batches per bucket, so a small corpus still gets batches that vary by epoch
        batches_of_audio = int(self.lengths.sum() // self.budget) if self.budget else 0
        self.num_buckets = max(1, min(num_buckets, batches_of_audio // 2, len(order)))
        edges = np.linspace(0, len(order), self.num_buckets + 1).round().astype(int)
        self.buckets = [order[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
        self._cache: tuple[int, list[list[int]]] | None = None

    def __len__(self) -> int:
        return len(range(self.rank, len(self._batches()), self.num_replicas))

    def padding_efficiency(self) -> float:
        """Real samples / padded samples over this epoch's batches (all ranks)."""
        batches = self._batches()
        real = sum(int(self.lengths[b].sum()) for b in batches)
        padded = sum(len(b) * int(self.lengths[b].max()) for b in batches)
        return real / padded if padded else 1.0

    def _batches(self) -> list[list[int]]:
        # batch count varies with the epoch's packing: computed once per epoch, for __len__ and __iter__
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._pack())
        return self._cache[1]

    def _pack(self) -> list[list[int]]:
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return self._fill(order)
        rng = np.random.default_rng((self.seed, self.epoch))
        batches = [b for bucket in self.buckets for b in self._fill(self._jittered_sort(bucket, rng))]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches[: len(batches) // self.num_replicas * self.num_replicas]

    def _jittered_sort(self, bucket: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # sorted by length with +-5% noise ("sort with noise"): neighbours differ each epoch, while a batch
        # still holds near-equal lengths even in the wide buckets of a small corpus
        shuffled = rng.permutation(bucket)
        keys = self.lengths[shuffled] * rng.uniform(0.95, 1.05, len(shuffled))
        return shuffled[np.argsort(keys, kind="stable")]

    def _fill(self, order: np.ndarray) -> list[list[int]]:
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        for i in order.tolist():
            n = int(self.lengths[i])
            if batch and max(longest, n) * (len(batch) + 1) > self.budget:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(i)
            longest = max(longest, n)
        if batch:
            batches.append(batch)
        return batches
