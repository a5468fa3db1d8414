# pytest tests/test_tracking.py tests/test_sweeps.py
"""Read an offline W&B run back from its transaction log (no network, no account)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from google.protobuf.message import DecodeError


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
