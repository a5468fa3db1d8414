# python train.py ckpt_path=last   (resumes the newest run; see README "Reliability")
"""A run dir's checkpoints and layout: the latest checkpoint, the overrides and W&B run to resume with, the run
to resume. (`callbacks.ExceptionCheckpoint` writes the checkpoint of a crash.)"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

log = logging.getLogger(__name__)

# what `ckpt_path=last` resumes from: every checkpoint of the run (`last.ckpt`, every validation and every N steps;
# the best; the one written on an exception or SIGTERM) and Lightning's SLURM auto-requeue checkpoints (SIGUSR1,
# in the run dir itself)
RESUMABLE = ("checkpoints/*.ckpt", "hpc_ckpt_*.ckpt")
LOCK = ".run.lock"


class RunDirError(RuntimeError):
    """A run dir that cannot be used as asked (nothing loadable to resume, held by another run, finished)."""


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint `ckpt_path=last` resumes: of the run's checkpoints that load, the furthest by global step
    (ties: `last.ckpt`, then the newest); None when the run has none.

    A checkpoint that does not load (cut short by a full disk or a kill, 0 bytes) is logged and passed over,
    never resumed: the run goes on from the furthest one that loads.

    Raises:
        RunDirError: the run has checkpoints but none loads. A fresh start would overwrite them, so it is
            refused; the message names each file and why.
    """
    steps, broken = {}, {}
    for path in _checkpoint_files(run_dir):
        try:
            steps[path] = checkpoint_step(path)
        except Exception as err:  # torch reports a cut-short zip, a 0-byte file or garbage in many ways
            broken[path] = f"{type(err).__name__}: {str(err)[:120]}"
    for path, why in broken.items():
        log.warning("not resumable, passed over: %s (%s)", path, why)
    if broken and not steps:
        listed = "; ".join(f"{p} ({why})" for p, why in broken.items())
        raise RunDirError(
            f"no checkpoint of {run_dir} loads: {listed}. Resume from a checkpoint that loads (ckpt_path=<file>),"
            " or start afresh in a new run dir (drop ckpt_path; a fresh start here would overwrite them)"
        )
    if not steps:
        return None
    return max(steps, key=lambda p: (steps[p], p.name == "last.ckpt", p.stat().st_mtime))


def checkpoint_step(path: str | Path) -> int:
    """The global step a Lightning checkpoint was saved at; raises if the file does not load."""
    # mmap: the tensors are not read, only the file's structure and the small entries
    return int(torch.load(path, map_location="cpu", mmap=True, weights_only=False)["global_step"])


def latest_run(runs_dir: str | Path) -> Path | None:
    """The run dir under `runs_dir` with the newest checkpoint file, or None."""
    candidates = [
        (max(p.stat().st_mtime for p in files), d) for d in Path(runs_dir).glob("*") if (files := _checkpoint_files(d))
    ]
    return max(candidates)[1] if candidates else None


@contextlib.contextmanager
def claim(run_dir: str | Path, resuming: bool) -> Iterator[None]:
    """Hold `run_dir` for one run: a second run into it is refused at once, naming the holder.

    The lock is a file (`.run.lock`: pid, host, start time) created exclusively; one left by a process that
    no longer runs on this host is taken over with a warning. A new (not resuming) run into a dir that holds a
    finished run (`metrics.json`) is refused too: it would replace that run's results.

    Raises:
        RunDirError: the dir is held by a live run, or holds a finished run and this is not a resume.
    """
    run_dir = Path(run_dir)
    if not resuming and (run_dir / "metrics.json").exists():
        raise RunDirError(
            f"{run_dir} holds a finished run (metrics.json): a new run there would replace its results. Use a new"
            " run dir (leave hydra.run.dir to its default), or resume it with ckpt_path=last to train further"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            with open(lock, "x", encoding="utf-8") as f:
                json.dump(record, f)
            break
        except FileExistsError:
            holder = _read_lock(lock)
            if _alive(holder, lock):
                raise RunDirError(
                    f"{run_dir} is in use by another run (pid {holder.get('pid')} on {holder.get('host')}, since"
                    f" {holder.get('started')}): one run at a time per run dir; wait for it, or use another dir"
                ) from None
            log.warning("taking over %s from a run that no longer runs (%s)", lock, holder)
            lock.unlink(missing_ok=True)
    try:
        yield
    finally:
        if _read_lock(lock).get("pid") == os.getpid():
            lock.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written whole or not at all: into a temporary file beside the target (the same filesystem),
    flushed to disk, then renamed over it. A full disk or a kill mid-write leaves the previous checkpoint as it
    was, instead of a cut-short file where it stood."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def run_dir_of(checkpoint: str | Path) -> Path | None:
    """The run dir a checkpoint was written in (`<run dir>/checkpoints/*.ckpt`), or None for one from elsewhere."""
    ckpt = Path(checkpoint).resolve()
    run = ckpt.parent.parent
    return run if ckpt.parent.name == "checkpoints" and (run / ".hydra" / "overrides.yaml").is_file() else None


def run_overrides(run_dir: str | Path) -> list[str]:
    """The command-line overrides a run was started with (`.hydra/overrides.yaml`)."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.exists():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def override_key(override: str) -> str:
    """`model.lr` of `model.lr=3e-5`, `+model.lr=...` or `~model.lr`."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(previous: Sequence[str], current: Sequence[str]) -> list[str]:
    """A run's earlier overrides, then the current ones; a key given now replaces its earlier value."""
    given = {override_key(o) for o in current}
    return [o for o in previous if override_key(o) not in given] + list(current)


def wandb_run_id(run_dir: str | Path) -> str | None:
    """The id of the W&B run logged in `<run dir>/wandb` (online or offline), so a resumed run continues it."""
    runs = sorted((Path(run_dir) / "wandb").glob("*run-*"), key=lambda p: p.stat().st_mtime)
    ids = [m.group(1) for p in runs if (m := re.fullmatch(r"(?:offline-)?run-\d{8}_\d{6}-(\w+)", p.name))]
    return ids[-1] if ids else None


def _checkpoint_files(run_dir: str | Path) -> list[Path]:
    return [p for pattern in RESUMABLE for p in Path(run_dir).glob(pattern) if p.is_file()]


def _read_lock(lock: Path) -> dict[str, Any]:
    try:
        return json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # gone, or being written
        return {}


def _alive(holder: dict[str, Any], lock: Path) -> bool:
    """Whether the lock's process still runs (a holder on another host is assumed to)."""
    if not holder:  # being written right now, or left empty by a crash long ago
        return lock.exists() and time.time() - lock.stat().st_mtime < 60
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True
