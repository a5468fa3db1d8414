# pytest tests/test_provenance.py
"""Provenance: git state, packages, hardware and data identity, in the run dir and metrics.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from asr_lightning import provenance


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-qm", "x")
    state = provenance.git_state(tmp_path)
    assert state["commit"] == git(tmp_path, "rev-parse", "HEAD") and state["dirty"] is False
    (tmp_path / "untracked.txt").write_text("ignored: only tracked changes make a checkout dirty")
    assert provenance.git_state(tmp_path)["dirty"] is False
    (tmp_path / "a.txt").write_text("2")
    assert provenance.git_state(tmp_path)["dirty"] is True


def test_outside_git_is_recorded_as_unknown(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None, "branch": None}


def test_collect_hashes_the_split_and_lists_packages(tmp_path: Path) -> None:
    splits = tmp_path / "splits.json"
    splits.write_text('{"train": ["a"]}')
    p = provenance.collect(tmp_path, {"dataset": "x"}, splits)
    assert p["data"] == {"dataset": "x", "splits_sha256": provenance.file_sha256(splits)}
    assert p["packages"]["torch"] and p["packages"]["lightning"] and p["hardware"]["cpu_count"] >= 1


def test_run_dir_holds_provenance(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    prov = json.loads((trained_run / "provenance.json").read_text())
    assert metrics["provenance"] == prov
    assert prov["data"]["splits_sha256"] == provenance.file_sha256(trained_run / "splits.json")
    assert prov["data"]["dataset"] == "audiofolder" and set(prov["data"]["fingerprints"]) == {
        "train", "validation", "test"
    }  # fmt: skip
    assert len(prov["git"]["commit"] or "") == 40 and isinstance(prov["git"]["dirty"], bool)
    assert {"torch", "transformers", "datasets", "lightning"} <= set(prov["packages"])
    resolved = (trained_run / "config_resolved.yaml").read_text()
    assert "${" not in resolved and yaml.safe_load(resolved)["seed"] == metrics["seed"]
