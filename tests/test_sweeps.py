# pytest tests/test_sweeps.py
"""Hydra multiruns through train.py as users launch them: dirs, W&B runs, failures, optuna, DDP, the report."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.config import FAST, ROOT
from helpers.wandb_log import summarize_run

import train
from asr_lightning import report
from asr_lightning.scoring import read_jsonl

T_975_DF1 = 12.706204736174707  # t-distribution 97.5% quantile, 1 degree of freedom (tables)


def multirun(sweep_dir: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = os.environ | {"WANDB_MODE": "offline"} | {
        v: str(sweep_dir.parent / "wandb_home") for v in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR",
                                                          "WANDB_CONFIG_DIR")
    }  # fmt: skip
    cmd = [sys.executable, "train.py", "-m", *FAST, *overrides, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit()), key=lambda p: int(p.name.split("_")[0])
    )


@pytest.fixture(scope="module")
def sweep_2x2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep = tmp_path_factory.mktemp("sweep") / "lr_sweep"
    proc = multirun(sweep, "trainer.max_steps=6", "logger=many", "model.lr=1e-3,3e-3", "seed=1,2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep


def test_2x2_multirun_gives_4_named_run_dirs(sweep_2x2: Path) -> None:
    jobs = job_dirs(sweep_2x2)
    assert [p.name for p in jobs] == [
        "0_model.lr=0.001,seed=1", "1_model.lr=0.001,seed=2", "2_model.lr=0.003,seed=1", "3_model.lr=0.003,seed=2",
    ]  # fmt: skip
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert {"test/wer", "val/wer_best", "train_time_s"} <= set(metrics)
        assert (job / ".hydra" / "overrides.yaml").exists() and (job / "csv" / "metrics.csv").exists()
        assert (job / "provenance.json").exists() and (job / "analysis" / "test.md").exists()
    seeds = [json.loads((j / "metrics.json").read_text())["seed"] for j in jobs]
    assert seeds == [1, 2, 1, 2]


def test_each_job_is_its_own_wandb_run_grouped_by_the_sweep(sweep_2x2: Path) -> None:
    runs = [summarize_run(job) for job in job_dirs(sweep_2x2)]
    assert len({r["id"] for r in runs}) == 4 and all(r["exit"] == 0 for r in runs)
    assert len({r["group"] for r in runs}) == 1 and runs[0]["group"] == "train-lr_sweep"
    assert [r["name"] for r in runs] == [j.name for j in job_dirs(sweep_2x2)]
    assert [r["config"]["model"]["lr"] for r in runs] == [1e-3, 1e-3, 3e-3, 3e-3]


def test_report_numbers_match_a_hand_computation(sweep_2x2: Path, tmp_path: Path) -> None:
    result = report.report([sweep_2x2], out=tmp_path / "report")
    assert {f.name for f in result["files"]} >= {"report.md", "report.tex", "report.csv", "val_wer.png",
                                                 "wer_by_intent_class.png", "wer_by_speaker.png"}  # fmt: skip
    with (tmp_path / "report" / "report.csv").open() as f:
        rows = {(r["group"], r["metric"]): r for r in csv.DictReader(f)}
    for lr, jobs in (("0.001", job_dirs(sweep_2x2)[:2]), ("0.003", job_dirs(sweep_2x2)[2:])):
        a, b = (json.loads((j / "metrics.json").read_text())["test/cer"] for j in jobs)
        mean, std = (a + b) / 2, abs(a - b) / math.sqrt(2)  # sample std of two values
        half = T_975_DF1 * std / math.sqrt(2)
        row = rows[(f"model.lr={lr}", "test/cer")]
        assert int(row["n"]) == 2
        assert float(row["mean"]) == pytest.approx(mean) and float(row["std"]) == pytest.approx(std)
        assert float(row["ci_low"]) == pytest.approx(mean - half) and float(row["ci_high"]) == pytest.approx(
            mean + half
        )
    md = (tmp_path / "report" / "report.md").read_text()
    assert "### test/wer" in md and "| model.lr=0.001 | 2 |" in md and "4 runs (0 failed) in 2 settings" in md
    tex = (tmp_path / "report" / "report.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"test/wer" in tex
    assert r"model.lr=0.001 & 2 &" in tex


def test_report_cli_and_bootstrap_between_two_runs(sweep_2x2: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "asr_lightning.report", str(sweep_2x2), "--out", str(tmp_path),
                           "--no-plots"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0 and "| model.lr=0.003 | 2 |" in proc.stdout, proc.stderr
    a, b = job_dirs(sweep_2x2)[0], job_dirs(sweep_2x2)[2]
    proc = subprocess.run([sys.executable, "-m", "asr_lightning.report", "bootstrap", str(a), str(b), "--n", "500"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    wer = [json.loads((d / "metrics.json").read_text())["test/wer"] for d in (a, b)]
    assert result["diff"] == pytest.approx(wer[1] - wer[0], abs=1e-6) and 0 < result["p_value"] <= 1


def test_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = multirun(sweep, "trainer.max_steps=2", "model.lr=1e-3,-1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ok, failed = job_dirs(sweep)
    assert (ok / "metrics.json").exists() and not (ok / "failed.json").exists()
    record = json.loads((failed / "failed.json").read_text())
    assert record["error"] == "ConfigError" and "model.lr=-1 must be > 0" in record["message"]  # a ValueError
    assert "model.lr=-1" in record["overrides"] and "Traceback" in record["traceback"]
    result = report.report([sweep], out=tmp_path / "report", plots=False)
    assert "1 failed" in result["markdown"] and "model.lr=-1 must be" in result["markdown"]


def test_optuna_search_minimises_val_wer(tmp_path: Path) -> None:
    sweep = tmp_path / "optuna"
    proc = multirun(sweep, "hparams_search=minds14_optuna", "hydra.sweeper.n_trials=2", "trainer.max_steps=6",
                    "hydra.sweeper.sampler.n_startup_trials=2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_dirs(sweep)
    assert len(jobs) == 2
    values = [json.loads((j / "metrics.json").read_text())["val/wer_best"] for j in jobs]
    lrs = [json.loads((j / "metrics.json").read_text())["provenance"] and _override(j, "model.lr") for j in jobs]
    assert all(1e-5 <= float(lr) <= 3e-4 for lr in lrs)
    import yaml

    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(values))


def _override(job: Path, key: str) -> str:
    overrides = json.loads((job / "metrics.json").read_text())["overrides"]
    return next(o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}="))


@pytest.mark.slow
def test_ddp_jobs_in_a_multirun_do_not_re_enter_the_sweep(tmp_path: Path) -> None:
    """Lightning starts rank 1 by re-running the command line; under -m that would be the whole sweep."""
    sweep = tmp_path / "ddp"
    proc = multirun(sweep, "trainer=ddp_cpu", "trainer.max_steps=2", "seed=1,2", "data.eval_batch_size=4", timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank-1 processes share our output: without the fix, each re-launches the sweep (3 launches here)
    assert (proc.stdout + proc.stderr).count("Launching 2 jobs") == 1, proc.stdout[-3000:]
    jobs = job_dirs(sweep)
    assert [j.name for j in jobs] == ["0_seed=1", "1_seed=2"]
    assert sorted(p.name for p in sweep.iterdir()) == ["0_seed=1", "1_seed=2", "multirun.yaml"]
    for job in jobs:
        ids = [r["id"] for r in read_jsonl(job / "predictions" / "test.jsonl")]
        assert sorted(ids) == sorted(json.loads((job / "splits.json").read_text())["test"])


def test_same_seed_same_metrics_on_cpu(demo_cfg) -> None:
    """seed drives init, dropout and shuffling; trainer.deterministic makes kernels deterministic too."""
    keys = ("train/loss", "val/wer", "val/cer", "test/wer", "test/cer")
    runs = [train.train(demo_cfg("trainer.max_steps=6", f"seed={s}", "trainer.deterministic=true")) for s in (7, 7, 8)]
    assert [runs[0][k] for k in keys] == [runs[1][k] for k in keys]
    assert runs[0]["train/loss"] != runs[2]["train/loss"]
