# pytest tests/test_predict.py
"""predict.py: transcribe files and folders with a checkpoint or an exported model; bad files get errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_folders_and_globs_expand_recursively(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.wav", "a/b/y.flac", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [u.path.name for u in expand_inputs([tmp_path / "a"])] == ["y.flac", "x.wav"]
    assert [u.path.name for u in expand_inputs([f"{tmp_path}/a/**/*.flac"])] == ["y.flac"]


def test_manifests_bring_ids_and_normalised_references(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text('file_name,transcription,id\naudio/a.flac,"hello, world!",u1\n')
    (tmp_path / "nemo.jsonl").write_text('{"audio_filepath": "b.wav", "text": "good day", "duration": 1.0}\n')
    utts = expand_inputs([tmp_path / "metadata.csv", tmp_path / "nemo.jsonl"])
    assert [(u.path, u.id, u.reference) for u in utts] == [
        (tmp_path / "audio" / "a.flac", "u1", "HELLO WORLD"),
        (tmp_path / "b.wav", "b.wav", "GOOD DAY"),
    ]


def test_batches_capped_by_seconds_give_the_same_text(trained_run: Path) -> None:
    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:8]
    model, processor = load_model(trained_run / "hf_model")
    one = transcribe(model, processor, files, batch_size=1)
    capped = transcribe(model, processor, files, max_batch_seconds=6.0)
    assert [r["text"] for r in one] == [r["text"] for r in capped]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "txt"])
def test_cli_scores_a_manifest_in_every_format(trained_run: Path, tmp_path: Path, fmt: str) -> None:
    import csv

    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:5]
    manifest = tmp_path / "test.jsonl"
    lines = [{"audio_filepath": str(DEMO_DIR / r["file_name"]), "text": r["transcription"], "id": r["id"]}
             for r in rows]  # fmt: skip
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / f"pred.{fmt}"
    proc = subprocess.run(
        [sys.executable, "predict.py", f"ckpt_path={trained_run / 'hf_model'}", f"inputs=[{manifest}]",
         f"output={out}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "real-time factor" in proc.stderr and "WER" in proc.stderr
    if fmt == "jsonl":
        got = read_jsonl(out)
        assert [r["id"] for r in got] == [r["id"] for r in rows]
        assert all({"reference", "text", "wer", "cer", "duration_s"} <= set(r) for r in got)
        assert json.loads((tmp_path / "pred.analysis.json").read_text())["totals"]["utterances"] == 5
    elif fmt == "csv":
        with open(out, newline="") as f:
            assert [r["id"] for r in csv.DictReader(f)] == [r["id"] for r in rows]
    else:
        assert len(out.read_text().splitlines()) == 5


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


def test_cli_scores_a_data_config_split_as_the_test_stage_did(trained_run: Path, tmp_path: Path, cache_dir: Path):
    from conftest import FAST

    data = [o for o in FAST if o.startswith(("experiment", "data."))]
    data = ["data=demo", *[o for o in data if o.startswith("data.")], f"data.cache_dir={cache_dir}"]
    out = tmp_path / "test.jsonl"
    proc = subprocess.run(
        [sys.executable, "predict.py", f"ckpt_path={trained_run / 'hf_model'}", *data, "split=test",
         f"output={out}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = {r["id"]: r for r in read_jsonl(trained_run / "predictions" / "test.jsonl")}
    got = read_jsonl(out)
    assert sorted(r["id"] for r in got) == sorted(expected)
    for r in got:
        assert (r["text"], r["reference"], r["intent_class"]) == (
            expected[r["id"]]["hypothesis"],
            expected[r["id"]]["reference"],
            expected[r["id"]]["intent_class"],
        )
    assert json.loads((tmp_path / "test.analysis.json").read_text())["by_intent_class"]
