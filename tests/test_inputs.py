# pytest tests/test_inputs.py
"""inputs.py: what predict.py is given (folders, globs, manifests) becomes ordered, named inputs with references."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr_lightning.inputs import InputError, expand_inputs


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


def test_one_input_without_brackets_is_one_input_not_its_characters(tmp_path: Path) -> None:
    clip = tmp_path / "x.wav"
    clip.write_bytes(b"")
    assert [u.path for u in expand_inputs(str(clip))] == [clip]  # `inputs=/path/x.wav` on the command line


def test_manifest_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"audio_filepath": "a.wav", "text": "hi"}\n{"audio_filepath": "b.wav", "text": \n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not valid JSON"):
        expand_inputs([bad_json])
    no_path = tmp_path / "nopath.jsonl"
    no_path.write_text('{"audio_filepath": "a.wav"}\n{"text": "no file"}\n')
    with pytest.raises(InputError, match=r"nopath\.jsonl:2: no 'audio_filepath'"):
        expand_inputs([no_path])
    comma = tmp_path / "comma" / "metadata.csv"
    comma.parent.mkdir()
    comma.write_text("file_name,transcription\na.wav,hello\nb.wav,hello, world\n")  # unquoted comma: cut silently
    with pytest.raises(InputError, match=r"metadata\.csv:3: more cells than the header's 2 columns"):
        expand_inputs([comma])


def test_a_missing_transcript_cell_is_no_reference_and_a_bom_is_read(tmp_path: Path) -> None:
    manifest = tmp_path / "metadata.csv"
    manifest.write_text("\ufefffile_name,transcription\na.wav,hello\nb.wav\n", encoding="utf-8")
    assert [(u.path.name, u.reference) for u in expand_inputs([manifest])] == [("a.wav", "HELLO"), ("b.wav", None)]


def test_broken_links_linked_folders_and_empty_globs_are_not_dropped(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.wav").write_bytes(b"")
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "linked").symlink_to(real, target_is_directory=True)
    (calls / "loop").symlink_to(calls, target_is_directory=True)  # followed once, not forever
    (calls / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    assert [u.path for u in expand_inputs([calls])] == [calls / "gone.wav", calls / "linked" / "a.wav"]
    (unmatched,) = expand_inputs([f"{tmp_path}/nothing/*.flac"])
    assert unmatched.id == f"{tmp_path}/nothing/*.flac"  # reading it fails: an error entry that names the glob
