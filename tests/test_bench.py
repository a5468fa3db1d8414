# pytest tests/test_bench.py
"""The benchmarks' CPU smoke modes run end to end and write their results (no figures asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.config import ROOT


def run_bench(module: str, out: Path, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--out", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_train_speed_smoke(tmp_path: Path) -> None:
    results = run_bench("bench.train_speed", tmp_path / "train.json", "--workdir", str(tmp_path / "work"))
    assert set(results["variants"]) == {"guide", "ours", "ours_guide"}
    guide, ours = results["variants"]["guide"], results["variants"]["ours"]
    assert guide["gradient_checkpointing"] and guide["feature_encoder_trained"]
    assert not ours["gradient_checkpointing"] and not ours["feature_encoder_trained"]
    assert guide["lengths_seen_by_group_by_length"] == [1]  # the guide's grouping is a no-op
    assert all(0 < v["padding_efficiency"] <= 1 and v["timed_batches"] > 0 for v in results["variants"].values())


def test_infer_and_data_speed_smoke(tmp_path: Path) -> None:
    infer = run_bench("bench.infer_speed", tmp_path / "infer.json", "--variants", "fp32,int8")
    assert set(infer["variants"]) == {"fp32", "int8"} and all(v["rtf"] > 0 for v in infer["variants"].values())
    data = run_bench("bench.data_speed", tmp_path / "data.json", "--num-proc", "1", "--workdir", str(tmp_path / "d"))
    assert data["per_clip"]["pipeline"] > 0 and data["data_module"]["num_proc=1"] > 0


@pytest.mark.slow
def test_data_scale_smoke(tmp_path: Path) -> None:
    results = run_bench("bench.data_scale", tmp_path / "scale.json", "--workdir", str(tmp_path / "work"))
    assert {"command", "machine", "versions", "settings", "targets", "corpora", "summary"} <= set(results)
    assert {"cpu", "cores", "ram_gib"} <= set(results["machine"])
    assert {"python", "torch", "datasets", "soundfile", "soxr"} <= set(results["versions"])
    (corpus,) = results["corpora"]
    assert {"clips", "hours", "source_mb_per_hour"} <= set(corpus["corpus"])
    new = corpus["new"]
    for setup in ("setup_first", "setup_cached", "setup_header_only"):
        assert {"setup_s_per_hour", "peak_rss_mb"} <= set(new[setup])
    assert new["cache_mb_per_hour"] > 0 and new["setup_cached"]["first_batch_s"] > 0
    assert {(r["workers"], r["augment"]) for r in new["setup_cached"]["loaders"]} == {(1, False), (1, True)}
    assert all(r["audio_s_per_s_per_worker"] > 0 for r in new["setup_cached"]["loaders"])
    # the old pipeline needs the repository's history (a shallow clone says why it was not measured)
    assert "not_measured" in corpus["old"] or corpus["old"]["cache_mb_per_hour"] > 0
    assert "measured" in corpus["streaming"]
