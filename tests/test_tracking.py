# pytest tests/test_tracking.py
"""W&B for real, offline: train, then read the run's transaction log back (no network, no account)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError

import train


def read_wandb_log(path: Path) -> list:
    """Records of an offline run's `.wandb` file (W&B's LevelDB-style log: 32 KiB blocks, 7-byte headers)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, chunks, out = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:  # full record
            out.append(chunk)
        elif kind in (2, 3):  # first / middle fragment
            chunks = chunk if kind == 2 else chunks + chunk
        elif kind == 4:  # last fragment
            out.append(chunks + chunk)
    return [pb.Record.FromString(r) for r in out]


def summarize_run(run_dir: Path) -> dict:
    """The run's config, logged scalars, table files and group/name, from its offline log."""
    (log_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    out: dict = {"config": {}, "history": {}, "tables": {}, "exit": None, "dir": log_file.parent}
    for _ in range(20):  # W&B's service process may still be writing the log's last block when finish() returns
        try:
            records = read_wandb_log(log_file)
            if any(r.WhichOneof("record_type") == "exit" for r in records):
                break
        except DecodeError:
            pass
        time.sleep(0.5)
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out |= {"group": rec.run.run_group, "name": rec.run.display_name, "id": rec.run.run_id}
            out["config"] |= {i.key: json.loads(i.value_json) for i in rec.run.config.update}
        elif kind == "config":
            out["config"] |= {i.key: json.loads(i.value_json) for i in rec.config.update if i.key}
        elif kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
            for k, v in items.items():
                if k.endswith("/path") and str(v).endswith(".table.json"):
                    out["tables"].setdefault(k[: -len("/path")], []).append(log_file.parent / "files" / v)
                else:
                    out["history"].setdefault(k, []).append(v)
        elif kind == "exit":
            out["exit"] = rec.exit.exit_code
    return out


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))


@pytest.mark.usefixtures("offline_wandb")
def test_wandb_offline_run_has_metrics_config_and_tables(demo_cfg, tmp_path: Path) -> None:
    import wandb

    cfg = demo_cfg("logger=wandb", "trainer.max_steps=6", "callbacks.prediction_tables.num_samples=3")
    metrics = train.train(cfg)
    assert wandb.run is None  # finished, so the next job of a multirun gets a run of its own
    run = summarize_run(tmp_path / "run")
    assert run["exit"] == 0 and run["name"] == "run" and run["group"] == ""  # single runs: no sweep group

    # the resolved Hydra config (no interpolations left) plus provenance
    assert run["config"]["model"]["lr"] == cfg.model.lr and run["config"]["seed"] == cfg.seed
    assert run["config"]["logger"]["wandb"]["save_dir"] == str(tmp_path / "run")
    assert run["config"]["provenance"]["data"]["splits_sha256"]
    assert "api_key" not in json.dumps(run["config"]).lower()

    assert run["history"]["test/wer"] == [pytest.approx(metrics["test/wer"])]
    assert "val/wer" in run["history"] and "train/loss" in run["history"]

    val = json.loads(run["tables"]["val/predictions"][0].read_text())
    assert val["columns"][:5] == ["id", "audio", "reference", "hypothesis", "wer"]
    assert "intent_class" in val["columns"] and len(val["data"]) == 3
    test = json.loads(run["tables"]["test/predictions"][0].read_text())
    assert len(test["data"]) == metrics["data"]["test"]["kept"]
    assert "test/wer_by_intent_class" in run["tables"]


@pytest.mark.usefixtures("offline_wandb")
def test_failed_run_is_finished_as_failed(demo_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    from asr_lightning.module import ASRModule

    def broken(self, batch, batch_idx):
        raise RuntimeError("a bug in the training step")

    monkeypatch.setattr(ASRModule, "training_step", broken)
    with pytest.raises(RuntimeError, match="training step"):
        train.train(demo_cfg("logger=wandb"))
    assert wandb.run is None and summarize_run(tmp_path / "run")["exit"] == 1


@pytest.mark.usefixtures("offline_wandb")
def test_resumed_run_continues_its_wandb_run(demo_cfg, tmp_path: Path) -> None:
    every2 = "callbacks.periodic_checkpoint.every_n_train_steps=2"
    train.train(demo_cfg("logger=wandb", "trainer.max_steps=2", "test=false", every2))
    metrics = train.train(demo_cfg("logger=wandb", "trainer.max_steps=4", "test=false", every2, "ckpt_path=last"))
    assert "before_resume" in metrics["provenance"]  # it did resume
    runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and len({r.name.rsplit("-", 1)[1] for r in runs}) == 1  # two parts, one run id
