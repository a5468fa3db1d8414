# pytest tests/test_stream.py
"""data.streaming=true: the train split read as a stream, filtered and bucketed in the workers, per DDP rank."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.config import FAST, ROOT, compose_cfg
from helpers.streaming import write_parquet_dataset

import train

SIZES = {"train": 64, "validation": 8, "test": 8}
STREAM = ["data.data_dir=null", "data.streaming=true", "data.id_column=id", "data.text_column=text",
          "data.metadata_columns=[]", "data.group_column=null", "data.stream_buffer_clips=16"]  # fmt: skip


@pytest.fixture(scope="module")
def parquet_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet_dataset(tmp_path_factory.mktemp("parquet"), SIZES, train_shards=4, empty_texts=3)


@pytest.mark.slow
def test_streaming_trains_by_steps_and_counts_what_it_skips(parquet_dataset: Path, tmp_path: Path) -> None:
    # 61 usable clips in buffers of 16, batches of 8: 8 batches a pass over the stream; 16 steps = two passes
    args = [*FAST, f"data.dataset={parquet_dataset}", *STREAM, "trainer.max_steps=16", "data.max_samples=null"]
    metrics = train.train(compose_cfg("train", args, tmp_path / "run"))
    assert np.isfinite(metrics["train/loss"]) and "test/wer" in metrics
    assert metrics["train/skipped_clips"] == 2 * 3  # the empty transcripts, counted each time they are read
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert splits["train"] == [] and len(splits["test"]) == SIZES["test"]  # evaluation stays indexed and exact


def test_streaming_needs_the_sources_own_splits(tmp_path: Path, demo_cfg) -> None:
    with pytest.raises(ValueError, match="own train split and validation and test sets"):
        train.train(demo_cfg("data.streaming=true"))  # the demo is one pool, split by speaker


@pytest.mark.slow
def test_streaming_under_ddp_gives_each_rank_its_own_clips(parquet_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    args = [*FAST, f"data.dataset={parquet_dataset}", *STREAM, "trainer.max_steps=3", "data.max_samples=null",
            "+callbacks.record._target_=helpers.streaming.RecordTrainIds", "trainer=ddp_cpu", "test=false",
            "data.eval_batch_size=4",
            f"hydra.run.dir={run}"]  # fmt: skip
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [set(json.loads((run / f"train_ids.rank{r}.json").read_text())) for r in (0, 1)]
    assert ranks[0] and ranks[1] and not ranks[0] & ranks[1]


def test_a_resumed_stream_goes_on_from_each_workers_position(parquet_dataset: Path, tmp_path: Path) -> None:
    """The loader's state is each worker's stream position: a resumed loader repeats no clip it had batched,
    and loses at most the rest of the buffer it was batching (stream.py says so)."""
    import hydra

    args = [*FAST, f"data.dataset={parquet_dataset}", *STREAM, "data.max_samples=null"]
    dm = hydra.utils.instantiate(compose_cfg("train", args, tmp_path / "run").data)
    dm.setup()
    everything = [i for b in dm.train_dataloader() for i in b["ids"]]
    loader = dm.train_dataloader()
    seen: list[str] = []
    for batch in loader:
        seen += batch["ids"]
        if len(seen) >= 24:  # three batches of 8: into the second buffer of 16
            break
    resumed = dm.train_dataloader()
    resumed.load_state_dict(loader.state_dict())
    rest = [i for b in resumed for i in b["ids"]]
    assert not set(rest) & set(seen)
    lost = set(everything) - set(seen) - set(rest)
    assert len(lost) <= dm.hparams.stream_buffer_clips and len(set(everything)) == SIZES["train"] - 3
    again = [i for b in resumed for i in b["ids"]]  # the next pass: the whole stream, in a new order
    assert sorted(again) == sorted(everything) and again != everything
