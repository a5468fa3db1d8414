# pytest tests/test_stream.py
"""A local dataset shaped like a Hub parquet conversion (train/validation/test, train in shards), and a callback
that records which clips each rank trained on."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import datasets
import lightning as L
import soundfile as sf

from helpers.config import DEMO_DIR


def write_parquet_dataset(root: Path, sizes: dict[str, int], train_shards: int = 4, empty_texts: int = 0) -> Path:
    """Demo clips as FLAC bytes in `<root>/data/<split>-0000i-of-0000n.parquet` (the Hub's file names), with a
    README `configs:` card; the first `empty_texts` train rows have no transcript."""
    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        demo = list(csv.DictReader(f))
    features = datasets.Features(
        {"id": datasets.Value("string"), "audio": datasets.Audio(), "text": datasets.Value("string")}
    )
    (root / "data").mkdir(parents=True)
    start = 0
    for split, n in sizes.items():
        rows = demo[start : start + n]
        start += n
        cells = []
        for r in rows:
            buf = io.BytesIO()
            audio, sr = sf.read(DEMO_DIR / r["file_name"])
            sf.write(buf, audio, sr, format="FLAC")
            cells.append({"bytes": buf.getvalue(), "path": Path(r["file_name"]).name})
        texts = [r["transcription"] for r in rows]
        if split == "train":
            texts[:empty_texts] = [""] * empty_texts
        ds = datasets.Dataset.from_dict({"id": [r["id"] for r in rows], "audio": cells, "text": texts})
        ds = ds.cast(features)
        shards = train_shards if split == "train" else 1
        for i in range(shards):
            ds.shard(shards, i, contiguous=True).to_parquet(root / "data" / f"{split}-{i:05d}-of-{shards:05d}.parquet")
    files = "".join(f"  - split: {s}\n    path: data/{s}-*\n" for s in sizes)
    (root / "README.md").write_text(f"---\nconfigs:\n- config_name: default\n  data_files:\n{files}---\n# stand-in\n")
    return root


class RecordTrainIds(L.Callback):
    """Write `train_ids.rank<r>.json` (the ids of every clip this rank trained on) into the run dir."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict, *_: object) -> None:
        self.ids += list(batch["ids"])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = Path(trainer.default_root_dir) / f"train_ids.rank{trainer.global_rank}.json"
        path.write_text(json.dumps(self.ids))
