# pytest tests/test_sampling.py
"""Length-grouped, DDP-aware batch samplers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()[self.rank :: self.num_replicas]

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
