# python train.py experiment=librilight_10h data.data_dir=... dry_run=true
"""What a run will do, before it does it: the effective batch (and the gradient accumulation that keeps a recipe's
batch on any GPU count), and the dry run's account of the data: hours, kept and skipped clips and out-of-vocabulary
characters per set, the vocabulary, steps per epoch and the epochs the run will take.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from asr_lightning.errors import ConfigError

log = logging.getLogger(__name__)


def world_size(trainer: DictConfig) -> int:
    """Processes a trainer config runs: its devices (a count, a list, or `auto`/-1: the GPUs here, else 1) times
    its nodes."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if devices in ("auto", -1):
        import torch

        devices = torch.cuda.device_count() if trainer.get("accelerator") in ("auto", "gpu", "cuda") else 1
    elif not isinstance(devices, int):
        devices = len(list(devices))
    return max(int(devices), 1) * int(trainer.get("num_nodes") or 1)


def accumulation(slots: int, *, _root_: DictConfig) -> int:
    """`${accumulation:8}`: the gradient accumulation that makes `slots` device-batches per update on this run's
    devices (fairseq's `distributed_world_size x update_freq`: 2 GPUs x 4 = 8 on 1, 2, 4 or 8 GPUs).

    Raises:
        ConfigError: a device count that does not divide `slots`.
    """
    world = world_size(_root_.trainer)
    if int(slots) % world:
        raise ConfigError(
            f"the recipe's effective batch is {slots} device-batches per update, which {world} devices cannot split "
            f"evenly: use a device count that divides {slots}, or set trainer.accumulate_grad_batches yourself"
        )
    return int(slots) // world


def updates(n: int, *, _root_: DictConfig) -> int:
    """`${updates:1000}`: the training batches of `n` optimiser updates (Lightning's `val_check_interval` counts
    batches, and each update takes `accumulate_grad_batches` of them)."""
    return int(n) * int(_root_.trainer.get("accumulate_grad_batches") or 1)


def effective_batch(cfg: DictConfig) -> dict[str, Any]:
    """Audio (or clips) per optimiser update: the per-device batch x devices x accumulation."""
    world, accumulate = world_size(cfg.trainer), int(cfg.trainer.get("accumulate_grad_batches") or 1)
    seconds = cfg.data.get("max_batch_seconds")
    out = {"devices": world, "accumulate_grad_batches": accumulate}
    if seconds is not None:
        out |= {"per_device_s": float(seconds), "per_update_s": float(seconds) * world * accumulate}
    else:
        out |= {"per_device_clips": int(cfg.data.batch_size), "per_update_clips": int(cfg.data.batch_size) * world *
                accumulate}  # fmt: skip
    return out


def describe_batch(batch: dict[str, Any]) -> str:
    unit, per = ("s of audio", "per_device_s") if "per_device_s" in batch else ("clips", "per_device_clips")
    total = batch["per_update_s"] if "per_device_s" in batch else batch["per_update_clips"]
    return (f"effective batch: {batch[per]:g} {unit} per device x {batch['devices']} device(s) x "
            f"{batch['accumulate_grad_batches']} accumulation = {total:,.0f} {unit} per update")  # fmt: skip


def dry_run(cfg: DictConfig, datamodule: Any, out_dir: Path) -> dict[str, Any]:
    """The data a run would train and score on, and how long it would train, without building the model:
    logged as a table and written to `dry_run.json`."""
    batch = effective_batch(cfg)
    world = batch["devices"]
    batches = len(datamodule.batch_sampler("train", num_replicas=world, rank=0))  # per device, one epoch
    updates = math.ceil(batches / batch["accumulate_grad_batches"]) if batches else 0
    max_steps = int(cfg.trainer.get("max_steps") or -1)
    plan = {
        "sets": {role: report.get("sets", {}) for role, report in datamodule.report.items()},
        "vocab": datamodule.vocab,
        "vocab_source": datamodule.vocab_source,
        "batch": batch,
        "batches_per_epoch_per_device": batches,
        "updates_per_epoch": updates,
        "max_steps": max_steps,
        "epochs": round(max_steps / updates, 2) if updates and max_steps > 0 else None,
    }
    lines = ["dry run: the data is loaded and indexed; nothing is trained", "",
             f"{'role':<11} {'set':<24} {'hours':>8} {'kept':>8} {'rows':>8}  {'OOV chars':>9}  skipped"]  # fmt: skip
    for role, sets in plan["sets"].items():
        for name, r in sets.items():
            skipped = ", ".join(f"{k} {v}" for k, v in r["skipped"].items() if v) or "none"
            lines.append(f"{role:<11} {name:<24} {r['hours']:>8.2f} {r['kept']:>8,} {r['rows']:>8,}  "
                         f"{100 * r.get('oov_char_rate', 0.0):>8.3f}%  {skipped}")  # fmt: skip
    tokens = [t for t in datamodule.vocab if len(t) == 1]
    lines += [
        "",
        f"vocabulary: {len(datamodule.vocab)} tokens ({datamodule.vocab_source}): {''.join(tokens)}",
        describe_batch(batch),
        f"steps: {batches:,} batches per device per epoch = {updates:,} updates per epoch; "
        + (f"max_steps {max_steps:,} = {plan['epochs']} epochs" if plan["epochs"] else "no max_steps"),
    ]
    log.info("\n".join(lines))
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "dry_run.json").write_text(json.dumps(plan, indent=1, ensure_ascii=False))
    return {"dry_run": plan}
