# pytest tests/test_synthetic.py
import csv
import hashlib
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from asr_lightning.synthetic import INTENTS, generate, make_speakers, make_utterances

DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"
COLUMNS = ["file_name", "id", "transcription", "intent_class", "speaker"]


def test_intents_are_minds14():
    assert len(INTENTS) == 14
    assert INTENTS[0] == "abroad" and INTENTS[9] == "freeze" and INTENTS[13] == "pay_bill"


def test_make_utterances_deterministic():
    first, again, other = (
        make_utterances(50, seed=0),
        make_utterances(50, seed=0),
        make_utterances(50, seed=1),
    )
    assert first == again
    assert [u.text for u in first] != [u.text for u in other]


def test_make_speakers_distinct():
    speakers = make_speakers(30, seed=0)
    assert [s.name for s in speakers] == [f"spk{i:02d}" for i in range(30)]
    assert len({s.espeak_voice for s in speakers}) == 30
    assert all(140 <= s.rate <= 190 and 0 <= s.pitch <= 99 for s in speakers)


def test_utterances_cover_intents_and_balance_speakers():
    utterances = make_utterances(600, seed=0)
    per_intent = Counter(u.intent_class for u in utterances)
    per_speaker = Counter(u.speaker.name for u in utterances)
    assert sorted(per_intent) == list(range(14))
    assert max(per_intent.values()) - min(per_intent.values()) <= 1
    assert len(per_speaker) == 30 and set(per_speaker.values()) == {20}


def test_transcripts_are_spoken_words_only():
    for utt in make_utterances(600, seed=0):
        assert re.fullmatch(r"[a-z']+( [a-z']+)*", utt.text), utt.text
        assert 2 <= len(utt.text.split()) <= 14, utt.text


def test_committed_demo_corpus():
    with (DEMO_DIR / "metadata.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == COLUMNS
    assert len(rows) == 600
    assert [row["transcription"] for row in rows] == [u.text for u in make_utterances(600, seed=0)]
    for row in rows:
        assert row["file_name"] == f"audio/{row['id']}.flac"
        assert (DEMO_DIR / row["file_name"]).is_file()
        assert 0 <= int(row["intent_class"]) < len(INTENTS)
    for row in rows[:3]:
        audio, sample_rate = sf.read(DEMO_DIR / row["file_name"])
        assert sample_rate == 8000 and audio.ndim == 1 and len(audio) > 4000
    assert sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file()) <= 10_000_000


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_generate_is_reproducible(tmp_path):
    generate(tmp_path / "a", n=3, seed=0, num_workers=1)
    generate(tmp_path / "b", n=3, seed=0, num_workers=2)
    for name in ["metadata.csv", "audio/demo-00000.flac", "audio/demo-00002.flac"]:
        digests = {hashlib.md5((tmp_path / d / name).read_bytes()).hexdigest() for d in "ab"}
        assert len(digests) == 1, name
    info = sf.info(tmp_path / "a" / "audio" / "demo-00001.flac")
    assert info.samplerate == 8000 and info.channels == 1 and info.subtype == "PCM_16"
