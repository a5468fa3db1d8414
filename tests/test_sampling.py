# pytest tests/test_sampling.py
"""LengthGroupedBatchSampler: evaluation order, seeded training order and DDP sharding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from asr_lightning.sampling import DurationBatchSampler, LengthGroupedBatchSampler


def make_lengths(n: int = 103, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(1000, 200_000, n).tolist()


def flatten(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


# ---------------------------------------------------------------- evaluation


def test_eval_yields_every_index_once_longest_first() -> None:
    lengths = make_lengths()
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, shuffle=False)
    batches = list(sampler)
    flat = flatten(batches)
    assert sorted(flat) == list(range(len(lengths)))
    assert len(batches) == len(sampler) == 13  # ceil(103 / 8)
    assert [len(b) for b in batches] == [8] * 12 + [7]
    seen = [lengths[i] for i in flat]
    assert seen == sorted(lengths, reverse=True)


def test_eval_ignores_epoch_and_seed() -> None:
    lengths = make_lengths()
    a = LengthGroupedBatchSampler(lengths, batch_size=8, shuffle=False, seed=1)
    b = LengthGroupedBatchSampler(lengths, batch_size=8, shuffle=False, seed=2)
    b.set_epoch(5)
    assert list(a) == list(b)


# ---------------------------------------------------------------- training


def test_train_is_deterministic_for_seed_and_epoch() -> None:
    lengths = make_lengths()
    a = list(LengthGroupedBatchSampler(lengths, batch_size=8, shuffle=True, seed=3, mega_batch=4))
    b = list(LengthGroupedBatchSampler(lengths, batch_size=8, shuffle=True, seed=3, mega_batch=4))
    assert a == b
    c = list(LengthGroupedBatchSampler(lengths, batch_size=8, shuffle=True, seed=4, mega_batch=4))
    assert a != c


def test_train_order_changes_with_epoch() -> None:
    sampler = LengthGroupedBatchSampler(make_lengths(), batch_size=8, shuffle=True, seed=3, mega_batch=4)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 != epoch1
    assert sorted(flatten(epoch0)) == sorted(flatten(epoch1))
    sampler.set_epoch(0)
    assert list(sampler) == epoch0


@pytest.mark.parametrize("group_by_length", [True, False])
def test_train_single_replica_covers_all_indices(group_by_length: bool) -> None:
    lengths = make_lengths()
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, shuffle=True, group_by_length=group_by_length)
    batches = list(sampler)
    assert sorted(flatten(batches)) == list(range(len(lengths)))  # the last partial batch is kept
    assert len(batches) == len(sampler) == 13
    assert sorted(len(b) for b in batches) == [7] + [8] * 12


def test_train_groups_similar_lengths() -> None:
    lengths = list(range(100))  # distinct lengths: a grouped batch is a run of consecutive values
    sampler = LengthGroupedBatchSampler(lengths, batch_size=10, shuffle=True, mega_batch=10)
    batches = list(sampler)
    for b in batches:
        values = sorted(lengths[i] for i in b)
        assert values == list(range(values[0], values[0] + 10))
    # the batches themselves are shuffled, not in length order
    assert [max(lengths[i] for i in b) for b in batches] != sorted(
        (max(lengths[i] for i in b) for b in batches), reverse=True
    )


# ---------------------------------------------------------------- DDP


def shards(lengths: list[int], shuffle: bool, batch_size: int = 8) -> tuple[list[list[int]], list[list[int]]]:
    out = []
    for rank in (0, 1):
        sampler = LengthGroupedBatchSampler(
            lengths, batch_size=batch_size, shuffle=shuffle, seed=7, num_replicas=2, rank=rank
        )
        batches = list(sampler)
        assert len(batches) == len(sampler)
        out.append(batches)
    return out[0], out[1]


def test_ddp_train_ranks_disjoint_and_equal() -> None:
    lengths = make_lengths()  # 13 batches: one is dropped so both ranks step 6 times
    r0, r1 = shards(lengths, shuffle=True)
    assert len(r0) == len(r1) == 6
    assert not set(flatten(r0)) & set(flatten(r1))
    assert len(set(flatten(r0) + flatten(r1))) == len(flatten(r0)) + len(flatten(r1))


def test_ddp_eval_union_is_every_index_once() -> None:
    lengths = make_lengths()
    r0, r1 = shards(lengths, shuffle=False)
    assert (len(r0), len(r1)) == (7, 6)
    counts = Counter(flatten(r0) + flatten(r1))
    assert sorted(counts) == list(range(len(lengths)))
    assert set(counts.values()) == {1}


def test_ddp_eval_fewer_batches_than_ranks() -> None:
    r0, r1 = shards([5, 4, 3], shuffle=False, batch_size=8)
    assert r0 == [[0, 1, 2]]
    assert r1 == []


@pytest.mark.parametrize("batch_size", [0, -1])
def test_batch_size_below_one_raises(batch_size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LengthGroupedBatchSampler([1, 2, 3], batch_size=batch_size, shuffle=False)


# ---------------------------------------------------------------- duration batching

SR = 16000


def clip_lengths(n: int = 400, seed: int = 0) -> list[int]:
    """MInDS-14-like clips: 2-15 s at 16 kHz."""
    return (np.random.default_rng(seed).uniform(2, 15, n) * SR).astype(int).tolist()


def duration_sampler(lengths: list[int], **kwargs) -> DurationBatchSampler:
    return DurationBatchSampler(lengths, **{"max_batch_seconds": 60.0, "sampling_rate": SR, "shuffle": True, **kwargs})


def test_duration_batches_stay_within_the_padded_budget() -> None:
    lengths = clip_lengths()
    for shuffle in (True, False):
        batches = list(duration_sampler(lengths, shuffle=shuffle))
        assert all(len(b) * max(lengths[i] for i in b) <= 60 * SR for b in batches)
        assert len({len(b) for b in batches}) > 1  # short clips come many to a batch, long ones few


def test_duration_training_epoch_uses_every_clip_once() -> None:
    lengths = clip_lengths()
    flat = flatten(list(duration_sampler(lengths)))
    assert sorted(flat) == list(range(len(lengths)))


def test_duration_eval_is_sorted_and_complete() -> None:
    lengths = clip_lengths(101)
    for rank in range(3):
        sampler = duration_sampler(lengths, shuffle=False, num_replicas=3, rank=rank)
        assert len(list(sampler)) == len(sampler)
    flat = flatten(list(duration_sampler(lengths, shuffle=False)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    shards = [flatten(list(duration_sampler(lengths, shuffle=False, num_replicas=3, rank=r))) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(101))


def test_duration_order_is_seeded_and_changes_per_epoch() -> None:
    lengths = clip_lengths()
    assert list(duration_sampler(lengths, seed=1)) == list(duration_sampler(lengths, seed=1))
    assert list(duration_sampler(lengths, seed=1)) != list(duration_sampler(lengths, seed=2))
    sampler = duration_sampler(lengths, seed=1)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    assert len(list(sampler)) == len(sampler)
    assert list(sampler) != epoch0
    sampler.set_epoch(0)
    assert list(sampler) == epoch0


def test_duration_ddp_ranks_get_distinct_batches_of_equal_count() -> None:
    lengths = clip_lengths(397)
    for epoch in range(4):
        shards = []
        for rank in range(4):
            sampler = duration_sampler(lengths, seed=5, num_replicas=4, rank=rank)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            assert len(shards[-1]) == len(sampler)
        assert len({len(s) for s in shards}) == 1
        flat = [i for s in shards for i in flatten(s)]
        assert len(flat) == len(set(flat))
        # only whole batches beyond a multiple of 4 are left out
        single = duration_sampler(lengths, seed=5)
        single.set_epoch(epoch)
        assert len(single) - 4 < sum(len(s) for s in shards) <= len(single)


def test_duration_buckets_keep_padding_low() -> None:
    lengths = clip_lengths(2000)
    sampler = duration_sampler(lengths, max_batch_seconds=200.0)
    assert sampler.padding_efficiency() >= 0.95
    batches = list(sampler)
    real = sum(sum(lengths[i] for i in b) for b in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert sampler.padding_efficiency() == pytest.approx(real / padded)
    # against random batches of the same mean size
    size = round(len(lengths) / len(batches))
    plain = LengthGroupedBatchSampler(lengths, batch_size=size, shuffle=True, group_by_length=False)
    plain_padded = sum(len(b) * max(lengths[i] for i in b) for b in plain)
    assert real / padded > sum(lengths) / plain_padded + 0.2


def test_duration_budget_below_the_longest_clip_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"data.max_batch_seconds=10.0 is shorter than the longest clip \(15"):
        duration_sampler([15 * SR, 3 * SR], max_batch_seconds=10.0)


def test_small_corpora_get_fewer_buckets_and_full_batches() -> None:
    lengths = clip_lengths(28)  # ~240 s of audio: 6 batches of 40 s
    sampler = duration_sampler(lengths, max_batch_seconds=40.0, num_buckets=30)
    assert sampler.num_buckets == 3
    assert np.mean([len(b) for b in sampler]) > 2  # one clip per batch with a bucket per clip


def test_small_corpus_batches_stay_tight_and_vary_by_epoch() -> None:
    lengths = clip_lengths(200)  # ~30 min: 4 wide buckets (random order inside them gave 0.86)
    sampler = duration_sampler(lengths, max_batch_seconds=200.0)
    assert sampler.num_buckets < 10 and sampler.padding_efficiency() >= 0.9
    epoch0 = {tuple(sorted(b)) for b in sampler}
    sampler.set_epoch(1)
    assert {tuple(sorted(b)) for b in sampler} != epoch0


# ---------------------------------------------------------------- Lightning epochs and resuming


def both_samplers(lengths: list[int]) -> list:
    return [
        LengthGroupedBatchSampler(lengths, batch_size=8, shuffle=True, seed=3),
        DurationBatchSampler(lengths, max_batch_seconds=40, sampling_rate=16000, shuffle=True, seed=3),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_lightning_sets_the_epoch_of_our_batch_samplers(index: int) -> None:
    """Lightning calls `set_epoch` on `loader.sampler` and `loader.batch_sampler.sampler` only."""
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    sampler = both_samplers(make_lengths())[index]
    _set_sampler_epoch(DataLoader(range(103), batch_sampler=sampler), 3)
    assert sampler.epoch == 3


@pytest.mark.parametrize("index", [0, 1])
def test_resumed_loader_yields_the_rest_of_the_epoch_then_whole_epochs(index: int) -> None:
    from torch.utils.data import DataLoader

    from asr_lightning.sampling import ResumableDataLoader

    lengths = make_lengths()
    reference = both_samplers(lengths)[index]
    reference.set_epoch(2)
    epoch2 = list(reference)
    reference.set_epoch(3)
    epoch3 = list(reference)

    done = {"n": 5}
    saved = ResumableDataLoader(range(103), batch_sampler=reference, batches_done=lambda: done["n"])
    reference.set_epoch(2)
    state = saved.state_dict()
    assert state == {"epoch": 2, "batches_done": 5}

    fresh = both_samplers(lengths)[index]  # a new process: the sampler is built again
    loader = ResumableDataLoader(range(103), batch_sampler=fresh, batches_done=lambda: 0, collate_fn=list)
    loader.load_state_dict(state)
    assert [list(b) for b in loader] == epoch2[5:]
    fresh.set_epoch(3)
    assert [list(b) for b in loader] == epoch3
    with pytest.raises(TypeError, match="EpochBatchSampler"):
        ResumableDataLoader(range(4), batch_sampler=DataLoader(range(4), batch_size=2).batch_sampler, batches_done=int)
