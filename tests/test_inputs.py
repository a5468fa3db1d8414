# pytest tests/test_inputs.py
"""inputs.py: what predict.py is given (folders, globs, manifests) becomes ordered, named inputs with references."""

from __future__ import annotations

from pathlib import Path

from asr_lightning.inputs import expand_inputs


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
