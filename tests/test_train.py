# pytest tests/test_train.py
"""train.py end to end on the demo corpus: smoke run, run-dir outputs, export, eval invariance, offline error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from helpers.config import FAST, ROOT, compose_cfg

import train
from asr_lightning.audio import load_audio
from asr_lightning.module import ASRModule
from asr_lightning.scoring import read_jsonl


def test_fast_dev_run(demo_cfg, tmp_path: Path) -> None:
    metrics = train.train(demo_cfg("debug=fdr"))
    assert {"train/loss", "val/wer", "test/wer", "test/cer"} <= set(metrics)
    assert (tmp_path / "run" / "metrics.json").exists()


def test_run_dir_outputs(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for key in ("val/wer", "val/cer", "val/wer_best", "test/wer", "test/cer", "best_checkpoint"):
        assert key in metrics
    assert Path(metrics["best_checkpoint"]).exists() and (trained_run / "checkpoints" / "last.ckpt").exists()
    rows = read_jsonl(trained_run / "predictions" / "test.jsonl")
    assert len(rows) == metrics["data"]["test"]["kept"]
    assert {"id", "reference", "hypothesis", "wer", "intent_class", "speaker"} <= set(rows[0])
    for name in ("splits.json", "vocab.json", "data_report.json", "hf_model/config.json"):
        assert (trained_run / name).exists(), name


def test_test_metrics_match_the_predictions_file(trained_run: Path) -> None:
    import jiwer

    metrics = json.loads((trained_run / "metrics.json").read_text())
    rows = read_jsonl(trained_run / "predictions" / "test.jsonl")
    corpus_wer = jiwer.wer([r["reference"] for r in rows], [r["hypothesis"] for r in rows])
    assert corpus_wer == pytest.approx(metrics["test/wer"], abs=1e-5)


def test_exported_model_runs_in_transformers_pipeline(trained_run: Path) -> None:
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(trained_run / "hf_model"), device="cpu")
    row = read_jsonl(trained_run / "predictions" / "test.jsonl")[0]
    clip = ROOT / "data" / "demo" / "audio" / f"{row['id']}.flac"
    out = asr({"raw": load_audio(clip, 16000), "sampling_rate": 16000})  # 16 kHz: no torchaudio resampling
    assert out["text"] == row["hypothesis"]


def test_eval_wer_does_not_depend_on_batch_size(trained_run: Path, demo_cfg) -> None:
    best = json.loads((trained_run / "metrics.json").read_text())["best_checkpoint"]
    results = {}
    for bs in (1, 8):
        dm = hydra.utils.instantiate(demo_cfg(f"data.eval_batch_size={bs}").data)
        dm.setup()
        module = ASRModule.from_checkpoint(best)
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
        metrics = trainer.test(module, datamodule=dm, verbose=False)[0]
        hyps = sorted((r["id"], r["hypothesis"]) for r in module.test_records)
        results[bs] = (metrics["test/wer"], metrics["test/cer"], hyps)
    assert results[1] == results[8]


def test_padding_does_not_change_outputs(trained_run: Path, demo_cfg) -> None:
    """Per-clip log-probs in a padded, masked batch equal those of the clip alone (the basis of the above)."""
    dm = hydra.utils.instantiate(demo_cfg("data.eval_batch_size=8").data)
    dm.setup()
    module = ASRModule.from_checkpoint(json.loads((trained_run / "metrics.json").read_text())["best_checkpoint"])
    module.eval()
    batch = next(iter(dm.val_dataloader()))
    assert "attention_mask" in batch and batch["input_lengths"].unique().numel() > 1
    with torch.no_grad():
        batched = module(batch).log_softmax(-1)  # (batch, frames, vocab)
        for i, n in enumerate(batch["input_lengths"].tolist()):
            alone = module({"input_values": batch["input_values"][i : i + 1, :n]}).log_softmax(-1)[0]
            assert torch.allclose(batched[i, : alone.shape[0]], alone, atol=1e-4)


def test_offline_hub_fails_fast_with_advice(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens on port 9
    proc = subprocess.run(
        [sys.executable, "train.py", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    for needle in ("PolyAI/minds14", "HF_HUB_OFFLINE", "data=audiofolder", "experiment=demo"):
        assert needle in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    # what makes it fast (9 s measured, README), not a timing: the probe switched to cache-only mode
    # instead of letting each Hub call retry for ~25 s
    assert "using the local cache only" in proc.stderr


def test_checkpoints_hold_primitives_only(trained_run: Path) -> None:
    best = json.loads((trained_run / "metrics.json").read_text())["best_checkpoint"]
    ckpt = torch.load(best, map_location="cpu", weights_only=True)  # fails on pickled Hydra/OmegaConf objects
    assert ckpt["hyper_parameters"]["vocab"] and "hf_config" in ckpt


@pytest.mark.slow
def test_ddp_cpu_scores_exactly_as_one_process(tmp_path: Path, cache_dir: Path) -> None:
    """2 gloo processes train, validate and test; one process scoring the same checkpoint agrees exactly:
    every utterance scored once (no sampler padding), identical WER/CER and identical predictions files."""
    run = tmp_path / "ddp"
    overrides = [*FAST, "trainer.max_steps=2", "validate=true", "data.eval_batch_size=4", f"data.cache_dir={cache_dir}"]
    proc = subprocess.run(
        [sys.executable, "train.py", *overrides, "trainer=ddp_cpu", f"hydra.run.dir={run}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((run / "metrics.json").read_text())

    single = tmp_path / "single"
    cfg = compose_cfg("train", [*overrides, "train=false", f"ckpt_path={ddp['best_checkpoint']}"], single)
    one = train.train(cfg)
    for key in ("val/wer", "val/cer", "test/wer", "test/cer"):
        assert ddp[key] == one[key], key
    for key in ("val/loss", "test/loss"):  # summed in another order across ranks
        assert ddp[key] == pytest.approx(one[key], rel=1e-5), key
    for split in ("validation", "test"):
        rows = read_jsonl(run / "predictions" / f"{split}.jsonl")
        assert rows == read_jsonl(single / "predictions" / f"{split}.jsonl")
        assert sorted(r["id"] for r in rows) == sorted(json.loads((run / "splits.json").read_text())[split])
