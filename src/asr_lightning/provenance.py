# pytest tests/test_provenance.py
"""What produced a run: code version, packages, data identity and hardware, for run dirs, metrics and W&B."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = (
    "asr-lightning", "torch", "lightning", "transformers", "datasets", "torchmetrics", "jiwer", "hydra-core",
    "omegaconf", "wandb", "soundfile", "soxr", "numpy",
)  # fmt: skip


def collect(
    repo_dir: str | Path, data: dict[str, Any] | None = None, splits_file: str | Path | None = None
) -> dict[str, Any]:
    """Provenance of a run.

    Args:
        repo_dir: the source checkout (its git commit and dirty flag are recorded).
        data: dataset identity (name, config, revision, per-split fingerprints) from the data module.
        splits_file: the run's `splits.json`, recorded by SHA-256 so two runs can prove they share a split.
    """
    out: dict[str, Any] = {"git": git_state(repo_dir), "packages": package_versions(), "hardware": hardware()}
    out["data"] = dict(data or {})
    if splits_file is not None and Path(splits_file).exists():
        out["data"]["splits_sha256"] = file_sha256(splits_file)
    out["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    return out


def git_state(repo_dir: str | Path) -> dict[str, Any]:
    """Commit and dirty flag (tracked files only); `None` fields outside a git checkout."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "branch": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["cuda"] = torch.version.cuda
    versions["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    return versions


def hardware() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
