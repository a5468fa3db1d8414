# pytest tests/test_predict.py
"""predict.py: transcribe files and folders with a checkpoint or an exported model; bad files get errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import DEMO_DIR, ROOT, read_jsonl

from asr_lightning.transcribe import expand_inputs, load_model, transcribe


def test_ckpt_and_hf_model_give_the_same_text(trained_run: Path) -> None:
    best = json.loads((trained_run / "metrics.json").read_text())["best_checkpoint"]
    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:6]
    texts = [
        [r["text"] for r in transcribe(*load_model(p), files, batch_size=4)] for p in (best, trained_run / "hf_model")
    ]
    assert texts[0] == texts[1]


def test_batch_size_does_not_change_transcripts(trained_run: Path) -> None:
    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:8]
    model, processor = load_model(trained_run / "hf_model")
    one = transcribe(model, processor, files, batch_size=1)
    eight = transcribe(model, processor, files, batch_size=8)
    assert [r["text"] for r in one] == [r["text"] for r in eight]


def test_folders_expand_recursively(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.wav", "a/b/y.flac", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in expand_inputs([tmp_path / "a"])] == ["y.flac", "x.wav"]


def test_cli_transcribes_and_reports_bad_files(trained_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav")
    missing = tmp_path / "missing.wav"
    good = sorted((DEMO_DIR / "audio").glob("*.flac"))[:2]
    out = tmp_path / "pred.jsonl"
    proc = subprocess.run(
        [sys.executable, "predict.py", f"ckpt_path={trained_run / 'hf_model'}",
         f"inputs=[{good[0]},{good[1]},{bad},{missing}]", f"output={out}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_jsonl(out)
    assert [r["path"] for r in rows] == [str(good[0]), str(good[1]), str(bad), str(missing)]
    assert "text" in rows[0] and "text" in rows[1]
    assert "broken.wav" in rows[2]["error"] and rows[2]["reason"] == "undecodable"
    assert "missing.wav" in rows[3]["error"] and rows[3]["reason"] == "missing_file"
    assert len(proc.stdout.strip().splitlines()) == 4


def test_cli_fails_when_nothing_can_be_transcribed(trained_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"nope")
    proc = subprocess.run(
        [sys.executable, "predict.py", f"ckpt_path={trained_run / 'hf_model'}", f"inputs=[{bad}]",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "no input could be transcribed" in proc.stderr
