# pytest tests/test_predict.py
"""predict.py: transcribe files and folders with a checkpoint or an exported model; bad files get errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest
import torch
from helpers.config import DEMO_DIR, ROOT, compose_cfg

import predict
from asr_lightning.scoring import read_jsonl
from asr_lightning.transcribe import load_model, transcribe


def test_ckpt_and_hf_model_give_the_same_text(trained_run: Path) -> None:
    best = json.loads((trained_run / "metrics.json").read_text())["best_checkpoint"]
    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:6]
    texts = [
        [r["text"] for r in transcribe(*load_model(p), files, batch_size=4)] for p in (best, trained_run / "hf_model")
    ]
    assert texts[0] == texts[1]


@pytest.fixture(scope="module")
def talkative_model(trained_run: Path) -> tuple:
    """A random-init model of the demo's architecture, with its processor: it spells a character on most frames,
    padding frames included, so a frame that batching adds or changes shows in the text. (The 12-step model
    spells next to nothing.)"""
    from transformers import Wav2Vec2ForCTC

    model, processor = load_model(trained_run / "hf_model")
    torch.manual_seed(0)
    return Wav2Vec2ForCTC(model.config).eval(), processor


@pytest.mark.parametrize("batching", [{"batch_size": 8}, {"max_batch_seconds": 6.0}], ids=["8_clips", "6_seconds"])
def test_batching_does_not_change_transcripts(talkative_model: tuple, batching: dict) -> None:
    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:8]  # 1.2 to 1.6 s: a batch pads all but its longest clip
    one = transcribe(*talkative_model, files, batch_size=1)
    assert all(len(r["text"]) > 10 for r in one)
    assert [r["text"] for r in transcribe(*talkative_model, files, **batching)] == [r["text"] for r in one]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "txt"])
def test_scores_a_manifest_in_every_format(
    trained_run: Path, tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    import csv

    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:5]
    manifest = tmp_path / "test.jsonl"
    lines = [{"audio_filepath": str(DEMO_DIR / r["file_name"]), "text": r["transcription"], "id": r["id"]}
             for r in rows]  # fmt: skip
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / f"pred.{fmt}"
    with caplog.at_level("INFO"):
        predict_here(tmp_path, f"ckpt_path={trained_run / 'hf_model'}", f"inputs=[{manifest}]", f"output={out}")
    assert "real-time factor" in caplog.text and "WER" in caplog.text
    if fmt == "jsonl":
        got = read_jsonl(out)
        assert [r["id"] for r in got] == [r["id"] for r in rows]
        assert all({"reference", "text", "wer", "cer", "duration_s", "confidence"} <= set(r) for r in got)
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
    from helpers.config import FAST

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


def test_long_audio_option_leaves_short_clips_exactly_as_they_were(trained_run: Path) -> None:
    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:4]
    model, processor = load_model(trained_run / "hf_model")
    whole = transcribe(model, processor, files, chunk_s=None)
    assert transcribe(model, processor, files, chunk_s=30.0) == whole
    assert all(0 <= r["confidence"] <= 1 for r in whole)


def test_timestamps_lie_inside_each_clip(trained_run: Path) -> None:
    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:4]
    model, processor = load_model(trained_run / "hf_model")
    for r in transcribe(model, processor, files, timestamps=True):
        assert [w["word"] for w in r["words"]] == r["text"].split()
        assert all(0 <= w["start"] < w["end"] <= r["duration_s"] for w in r["words"])
        assert all(a["end"] <= b["start"] for a, b in zip(r["words"], r["words"][1:], strict=False))


def test_mixed_precision_runs_and_bad_precision_is_refused(trained_run: Path) -> None:
    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:2]
    model, processor = load_model(trained_run / "hf_model")
    rows = transcribe(model, processor, files, precision="bf16-mixed")  # autocast; CPU here, GPU in use
    assert all("text" in r and 0 <= r["confidence"] <= 1 for r in rows)
    with pytest.raises(ValueError, match="precision='bf16'"):
        transcribe(model, processor, files, precision="bf16")


def run_predict(tmp_path: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "predict.py", *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def test_hub_model_id_fails_fast_offline(tmp_path: Path) -> None:
    import os

    clip = sorted((DEMO_DIR / "audio").glob("*.flac"))[0]
    # an empty cache and a Hub endpoint that refuses connections: as on a machine without the Hub
    env = os.environ | {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    proc = run_predict(tmp_path, "ckpt_path=facebook/wav2vec2-base-960h", f"inputs=[{clip}]", env=env)
    assert proc.returncode != 0
    # fast: the probe switched the Hub libraries to cache-only mode, so no download was retried (no timing asserted)
    assert "unreachable" in proc.stderr and "using the local cache only" in proc.stderr
    assert "facebook/wav2vec2-base-960h" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_beam_decoder_without_its_package_says_how_to_install(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra.errors import InstantiationException

    monkeypatch.setitem(sys.modules, "flashlight.lib.text.decoder", None)  # as if not installed: importing it fails
    clip = sorted((DEMO_DIR / "audio").glob("*.flac"))[0]
    with pytest.raises(InstantiationException, match="pip install flashlight-text"):
        predict_here(tmp_path, f"ckpt_path={trained_run / 'hf_model'}", f"inputs=[{clip}]", "decoder=beam")


def test_tuning_the_lm_on_test_or_without_an_lm_is_refused_before_loading(tmp_path: Path) -> None:
    lm = "decoder.lm_path=lm.arpa"  # none of these is read: the checks come first
    with pytest.raises(ValueError, match="validation split only"):
        predict_here(tmp_path, "ckpt_path=unused", "data=demo", "split=test", "tune_lm=true", "decoder=beam", lm)
    with pytest.raises(ValueError, match="decoder.lm_path"):
        predict_here(tmp_path, "ckpt_path=unused", "data=demo", "split=validation", "tune_lm=true", "decoder=beam")


def test_beam_search_with_timestamps_to_csv(
    trained_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import csv

    files = sorted((DEMO_DIR / "audio").glob("*.flac"))[:3]
    out = tmp_path / "beam.csv"
    with caplog.at_level("INFO"):
        predict_here(tmp_path, f"ckpt_path={trained_run / 'hf_model'}", f"inputs=[{','.join(map(str, files))}]",
                     "decoder=beam", "decoder.beam_width=8", "decoder.hotwords=[balance]", "timestamps=true",
                     f"output={out}")  # fmt: skip
    assert "BeamDecoder decoding" in caplog.text
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == list(map(str, files))
    for r in rows:
        assert [w["word"] for w in json.loads(r["words"])] == r["text"].split()


def test_tunes_lm_weights_on_validation(
    trained_run: Path, tmp_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import csv

    from helpers.config import FAST

    from asr_lightning.arpa import write_arpa

    with open(DEMO_DIR / "metadata.csv", newline="") as f:
        arpa = write_arpa([r["transcription"] for r in csv.DictReader(f)], tmp_path / "demo.arpa")
    data = ["data=demo", *[o for o in FAST if o.startswith("data.")]]
    out = tmp_path / "validation.jsonl"
    with caplog.at_level("INFO"):
        predict_here(tmp_path, f"ckpt_path={trained_run / 'hf_model'}", *data, "split=validation", "tune_lm=true",
                     "decoder=beam", "decoder.beam_width=8", f"decoder.lm_path={arpa}", "lm_grid.alpha=[0,0.5]",
                     "lm_grid.beta=[0,1,2]", f"output={out}", cache_dir=cache_dir)  # fmt: skip
    grid = json.loads((tmp_path / "validation.lm_grid.json").read_text())
    assert [(r["alpha"], r["beta"]) for r in grid["results"]] == [(a, b) for a in (0, 0.5) for b in (0, 1, 2)]
    assert grid["utterances"] == len(json.loads((trained_run / "splits.json").read_text())["validation"])
    assert (tmp_path / "validation.lm_grid.png").exists()
    best = grid["best"]
    assert f"best decoder.alpha={best['alpha']} decoder.beta={best['beta']}" in caplog.text
    rows = read_jsonl(out)  # decoded with the best setting: its WER
    assert jiwer.wer([r["reference"] for r in rows], [r["text"] for r in rows]) == pytest.approx(best["wer"])


def predict_here(tmp_path: Path, *overrides: str, cache_dir: Path | None = None) -> list[dict]:
    """predict.py's work in this process (no interpreter start-up), on a config composed as its command line would."""
    return predict.predict(compose_cfg("predict", list(overrides), tmp_path / "run", cache_dir))


def test_two_manifests_naming_the_same_file_keep_their_own_records(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    clips = sorted((DEMO_DIR / "audio").glob("*.flac"))[:2]
    for name, clip, text in [("a", clips[0], "right words"), ("b", clips[1], "other words")]:
        (tmp_path / name / "audio").mkdir(parents=True)
        shutil.copy(clip, tmp_path / name / "audio" / "clip.flac")  # the same relative file_name, and so id
        (tmp_path / name / "metadata.csv").write_text(f"file_name,transcription\naudio/clip.flac,{text}\n")
    out = tmp_path / "pred.jsonl"
    manifests = f"inputs=[{tmp_path / 'a' / 'metadata.csv'},{tmp_path / 'b' / 'metadata.csv'}]"
    predict_here(tmp_path, f"ckpt_path={trained_run / 'hf_model'}", manifests, f"output={out}")
    rows = read_jsonl(out)
    assert [(r["id"], r["reference"]) for r in rows] == [
        ("audio/clip.flac", "RIGHT WORDS"),
        ("audio/clip.flac", "OTHER WORDS"),
    ]
    for r in rows:
        assert r["wer"] == jiwer.wer(r["reference"], r["text"])  # each scored against its own reference


def test_a_clip_shorter_than_the_receptive_field_is_an_error_entry(trained_run: Path, tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, np.full(200, 0.1, dtype=np.float32), 16000)  # 12.5 ms: no logit frame
    good = sorted((DEMO_DIR / "audio").glob("*.flac"))[:2]
    out = tmp_path / "pred.jsonl"
    predict_here(tmp_path, f"ckpt_path={trained_run / 'hf_model'}", f"inputs=[{good[0]},{tiny},{good[1]}]",
                 "batch_size=1", f"output={out}")  # fmt: skip
    rows = read_jsonl(out)
    assert "text" in rows[0] and "text" in rows[2]
    assert rows[1]["reason"] == "too_short" and "tiny.wav" in rows[1]["error"]


def test_a_wav_cut_short_mid_data_is_a_truncated_entry(trained_run: Path, tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    cut = tmp_path / "cut.wav"
    sf.write(cut, np.full(16000, 0.1, dtype=np.float32), 16000)
    cut.write_bytes(cut.read_bytes()[:20000])  # the header still promises 1 s
    good = sorted((DEMO_DIR / "audio").glob("*.flac"))[0]
    out = tmp_path / "pred.jsonl"
    predict_here(tmp_path, f"ckpt_path={trained_run / 'hf_model'}", f"inputs=[{cut},{good}]", f"output={out}")
    rows = read_jsonl(out)
    assert rows[0]["reason"] == "truncated" and "text" not in rows[0]
    assert "cut.wav is truncated: its header promises 16000 frames, the file holds 9978" in rows[0]["error"]
    assert "text" in rows[1]


def test_analysis_breaks_wer_down_by_metadata_only(trained_run: Path, tmp_path: Path) -> None:
    clips = sorted((DEMO_DIR / "audio").glob("*.flac"))[:3]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(c), "text": "x"}) + "\n" for c in clips))
    predict_here(
        tmp_path, f"ckpt_path={trained_run / 'hf_model'}", f"inputs=[{manifest}]", f"output={tmp_path / 'p.jsonl'}"
    )
    analysis = json.loads((tmp_path / "p.analysis.json").read_text())
    assert [k for k in analysis if k.startswith("by_")] == []  # not by text, confidence or duration: one row each


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("batch_size=0", "batch_size=0: must be a number >= 1"),
        ("chunk_s=-1", "chunk_s=-1: must be a number >= 1e-09"),
        ("format=xml", "format='xml'"),
        ("precision=bf17", "precision='bf17'"),
        ("output=/dev/null/x.jsonl", "cannot be written"),
    ],
)
def test_bad_settings_are_refused_before_loading(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):  # the model (`unused`) is never loaded
        predict_here(tmp_path, "ckpt_path=unused", "inputs=[x.wav]", override)


def test_a_bad_setting_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    proc = run_predict(tmp_path, "ckpt_path=unused", "inputs=[x.wav]", "batch_size=0")
    assert proc.returncode != 0 and proc.stderr.strip() == "error: batch_size=0: must be a number >= 1"


def test_output_that_is_a_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a folder: give a file"):
        predict_here(tmp_path, "ckpt_path=unused", "inputs=[x.wav]", f"output={tmp_path}")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("missing.ckpt", r"ckpt_path=missing.ckpt: no such file"),
        ("cut.ckpt", r"ckpt_path=.*cut.ckpt does not load \(.*\): the file is cut short"),
        ("run", r"ckpt_path=.*run is a directory without a model .*: use .*run/hf_model"),
        ("./no_model", r"ckpt_path=./no_model: no such directory"),
    ],
)
def test_a_missing_or_corrupt_model_is_a_config_error(trained_run: Path, tmp_path: Path, given: str, message: str):
    from asr_lightning.errors import ConfigError

    ckpt = next((trained_run / "checkpoints").glob("*.ckpt"))
    (tmp_path / "cut.ckpt").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a save cut short
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)  # a run dir given instead of its hf_model
    path = given if given.startswith(("missing", "./")) else str(tmp_path / given)
    with pytest.raises(ConfigError, match=message) as info:
        load_model(path)
    assert "weights_only" not in str(info.value)


def test_a_cut_short_checkpoint_is_one_line_on_the_command_line(trained_run: Path, tmp_path: Path) -> None:
    ckpt = next((trained_run / "checkpoints").glob("*.ckpt"))
    (tmp_path / "cut.ckpt").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    clip = sorted((DEMO_DIR / "audio").glob("*.flac"))[0]
    proc = run_predict(tmp_path, f"ckpt_path={tmp_path / 'cut.ckpt'}", f"inputs=[{clip}]")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "weights_only" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(f"error: ckpt_path={tmp_path}")


def test_an_unknown_split_is_an_input_error(trained_run: Path, tmp_path: Path, cache_dir: Path) -> None:
    from helpers.config import FAST

    from asr_lightning.inputs import InputError

    data = ["data=demo", *[o for o in FAST if o.startswith("data.")]]
    with pytest.raises(InputError, match="split='bogus' is not one of"):
        predict_here(tmp_path, f"ckpt_path={trained_run / 'hf_model'}", *data, "split=bogus", cache_dir=cache_dir)
