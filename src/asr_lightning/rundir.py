# python train.py ckpt_path=last   (resumes the newest run; see README "Reliability")
"""A run dir's checkpoints and layout: the latest checkpoint, the overrides and W&B run to resume with, the run
to resume. (`callbacks.ExceptionCheckpoint` writes the checkpoint of a crash.)"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

# what `ckpt_path=last` resumes from: `last.ckpt` (every validation and every N steps), the checkpoint written on
# an exception or SIGTERM, and Lightning's SLURM auto-requeue checkpoints (SIGUSR1, in the run dir itself)
RESUMABLE = ("checkpoints/last.ckpt", "checkpoints/on_exception.ckpt", "hpc_ckpt_*.ckpt")


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest of the run's resumable checkpoints (`RESUMABLE`), or None."""
    found = [p for pattern in RESUMABLE for p in Path(run_dir).glob(pattern) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def latest_run(runs_dir: str | Path) -> Path | None:
    """The run dir under `runs_dir` whose latest checkpoint is the newest, or None."""
    candidates = [(ckpt, d) for d in Path(runs_dir).glob("*") if (ckpt := latest_checkpoint(d)) is not None]
    return max(candidates, key=lambda c: c[0].stat().st_mtime)[1] if candidates else None


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
