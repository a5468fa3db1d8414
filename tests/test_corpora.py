# pytest tests/test_corpora.py
"""Corpus download layouts (LibriSpeech, Libri-light, Common Voice) read as `DatasetDict`s, against small
stand-ins, and the Hub-shaped parquet stand-ins (`openslr/librispeech_asr`, `google/fleurs`)."""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path

import datasets
import pytest
import soundfile as sf
from helpers.corpora import (
    COMMON_VOICE_SENTENCES,
    HUB_SPLITS,
    LIBRISPEECH_SPLITS,
    SR,
    common_voice_folder,
    fleurs_parquet,
    librilight_folder,
    librispeech_folder,
    librispeech_hub_parquet,
    tone,
)

from asr_lightning.audio import load_audio
from asr_lightning.corpora import (
    LAYOUTS,
    MANIFEST_FOLDER,
    corpus_splits,
    load_common_voice,
    load_librilight,
    load_librispeech_folder,
)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The stand-ins, built once and only read (a test that changes one builds its own)."""
    root = tmp_path_factory.mktemp("corpora")
    return {
        "librispeech": librispeech_folder(root / "ls"),
        "hub": librispeech_hub_parquet(root / "hub"),
        "librilight": librilight_folder(root / "ll"),
        "common_voice": common_voice_folder(root / "cv"),
        "fleurs": fleurs_parquet(root / "fleurs"),
    }


def not_audio(ds: datasets.Dataset) -> dict:
    return {c: f for c, f in ds.features.items() if c != "audio"}


def test_librispeech_folder_splits_have_the_hub_columns_and_dtypes(corpora: dict[str, Path], tmp_path: Path) -> None:
    ds = load_librispeech_folder(corpora["librispeech"], cache_dir=str(tmp_path))
    hub = datasets.load_dataset(str(corpora["hub"]), name="all", cache_dir=str(tmp_path))
    assert sorted(ds) == sorted(LIBRISPEECH_SPLITS)
    for split, hub_split in HUB_SPLITS.items():
        assert ds[split].column_names == hub[hub_split].column_names
        assert not_audio(ds[split]) == not_audio(hub[hub_split])
        assert ds[split]["id"] == hub[hub_split]["id"]
        assert ds[split]["text"] == hub[hub_split]["text"]
    assert ds["dev-clean"].features["audio"] == datasets.Audio(decode=False)


def test_librispeech_rows_point_at_their_flac_and_take_speaker_and_chapter_from_the_id(
    corpora: dict[str, Path], tmp_path: Path
) -> None:
    ds = load_librispeech_folder(corpora["librispeech"], cache_dir=str(tmp_path))["train-clean-100"]
    assert ds["id"] == sorted(ds["id"])
    for row in ds:
        speaker, chapter, _ = row["id"].split("-")
        assert row["audio"] == {"bytes": None, "path": row["file"]}
        assert Path(row["file"]) == corpora["librispeech"] / "train-clean-100" / speaker / chapter / f"{row['id']}.flac"
        assert Path(row["file"]).is_file()
        assert (row["speaker_id"], row["chapter_id"]) == (int(speaker), int(chapter))


def test_librispeech_ids_are_unique_across_splits(corpora: dict[str, Path], tmp_path: Path) -> None:
    ds = load_librispeech_folder(corpora["librispeech"], cache_dir=str(tmp_path))
    ids = [i for split in ds.values() for i in split["id"]]
    assert len(ids) == len(set(ids)) == 4 * len(LIBRISPEECH_SPLITS)


def test_librispeech_root_may_be_the_folder_that_holds_it(corpora: dict[str, Path], tmp_path: Path) -> None:
    parent = corpora["librispeech"].parent
    assert corpus_splits("librispeech", parent) == corpus_splits("librispeech", corpora["librispeech"])
    ds = load_librispeech_folder(parent, splits=["dev-clean"], cache_dir=str(tmp_path))
    assert ds["dev-clean"]["file"][0].startswith(str(corpora["librispeech"]))


def test_only_the_named_splits_are_loaded_and_an_unknown_one_names_those_found(
    corpora: dict[str, Path], tmp_path: Path
) -> None:
    ds = load_librispeech_folder(corpora["librispeech"], splits=["test-other", "dev-clean"], cache_dir=str(tmp_path))
    assert list(ds) == ["test-other", "dev-clean"]
    assert sorted(corpus_splits("librispeech", corpora["librispeech"])) == sorted(LIBRISPEECH_SPLITS)
    with pytest.raises(KeyError) as err:
        load_librispeech_folder(corpora["librispeech"], splits=["train-other-500"], cache_dir=str(tmp_path))
    message = err.value.args[0]
    assert "train-other-500" in message and "dev-clean" in message and str(corpora["librispeech"]) in message


def test_a_flac_without_a_transcript_line_is_left_out_and_a_line_without_its_flac_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = librispeech_folder(tmp_path / "ls", splits=("dev-clean", "test-clean"))
    chapter = next((folder / "dev-clean").glob("*/*/"))
    first = sorted(chapter.glob("*.flac"))[0]
    first.unlink()
    for split in ("dev-clean", "test-clean"):
        orphan = next((folder / split).glob("*/*/")) / "9999-9999-9999.flac"
        sf.write(orphan, tone(99), SR, format="FLAC")
    with caplog.at_level(logging.WARNING, logger="asr_lightning.corpora"):
        ds = load_librispeech_folder(folder, cache_dir=str(tmp_path / "cache"))
    assert first.stem in ds["dev-clean"]["id"]
    assert not Path(ds["dev-clean"]["file"][ds["dev-clean"]["id"].index(first.stem)]).exists()
    assert all("9999-9999-9999" not in split["id"] for split in ds.values())
    assert [len(split) for split in ds.values()] == [4, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("1 flac file(s) have no transcript line" in w for w in warnings)


def test_a_folder_without_splits_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no splits"):
        load_librispeech_folder(tmp_path / "empty", cache_dir=str(tmp_path / "cache"))
    assert corpus_splits("librispeech", tmp_path / "empty") == []


def test_librilight_10m_sets_are_1h_k_clean_and_other_together_and_9h_is_its_own(
    corpora: dict[str, Path], tmp_path: Path
) -> None:
    folder = corpora["librilight"]
    ds = load_librilight(folder.parent, cache_dir=str(tmp_path))
    assert list(ds) == [*(f"10m-{k}" for k in range(6)), "9h"] == corpus_splits("librilight", folder)
    for split, subsets in [(f"10m-{k}", [f"1h/{k}/clean", f"1h/{k}/other"]) for k in range(6)] + [
        ("9h", ["9h/clean", "9h/other"])
    ]:
        ids = sorted(p.stem for sub in subsets for p in (folder / sub).glob("*/*/*.flac"))
        assert ds[split]["id"] == ids
        assert {Path(f).relative_to(folder).parts[:-3] for f in ds[split]["file"]} == {
            tuple(s.split("/")) for s in subsets
        }
    assert not_audio(ds["10m-0"]) == not_audio(
        load_librispeech_folder(corpora["librispeech"], cache_dir=str(tmp_path))["dev-clean"]
    )


def test_common_voice_splits_are_the_tsvs_with_path_and_sentence(corpora: dict[str, Path]) -> None:
    folder = corpora["common_voice"]
    assert (folder / "clip_durations.tsv").is_file() and (folder / "reported.tsv").is_file()
    assert corpus_splits("common_voice", folder) == ["dev", "test", "train", "validated"]


def test_common_voice_sentences_are_read_verbatim(corpora: dict[str, Path], tmp_path: Path) -> None:
    ds = load_common_voice(corpora["common_voice"], cache_dir=str(tmp_path))
    for split, sentences in COMMON_VOICE_SENTENCES.items():
        assert ds[split]["sentence"] == sentences  # the lone `"` swallows no line, the quoted word keeps its quotes
    assert len(ds["validated"]) == sum(len(s) for s in COMMON_VOICE_SENTENCES.values())
    assert ds["train"].column_names == [
        "client_id", "path", "audio", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "locale",
    ]  # fmt: skip
    assert all(f == datasets.Value("string") for f in not_audio(ds["train"]).values())


def test_common_voice_cells_such_as_na_or_null_stay_strings(tmp_path: Path) -> None:
    folder = common_voice_folder(tmp_path / "cv")
    lines = (folder / "dev.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    odd = ["NA", "null", "None", "", "nan", "#N/A"]
    rows = []
    for line, sentence in zip(lines[1:] * 2, odd, strict=False):
        cells = line.split("\t")
        cells[header.index("sentence")] = sentence
        cells[header.index("up_votes")] = "NA"
        rows.append("\t".join(cells))
    (folder / "other.tsv").write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    other = load_common_voice(folder, splits=["other"], cache_dir=str(tmp_path / "cache"))["other"]
    assert other["sentence"] == odd
    assert other["up_votes"] == ["NA"] * len(odd)


def test_an_older_release_accent_column_is_read_as_accents(tmp_path: Path) -> None:
    folder = common_voice_folder(tmp_path / "cv")
    tsv = folder / "train.tsv"
    tsv.write_text(tsv.read_text(encoding="utf-8").replace("\taccents\t", "\taccent\t", 1), encoding="utf-8")
    ds = load_common_voice(folder, cache_dir=str(tmp_path / "cache"))
    assert "accent" not in ds["train"].column_names
    assert ds["train"]["accents"] == ds["validated"]["accents"][: len(ds["train"])]
    assert "England English" in ds["train"]["accents"]


def test_an_empty_split_tsv_is_an_empty_split_with_the_columns(tmp_path: Path) -> None:
    folder = common_voice_folder(tmp_path / "cv")
    (folder / "invalidated.tsv").write_text((folder / "dev.tsv").read_text(encoding="utf-8").splitlines()[0] + "\n")
    ds = load_common_voice(folder, cache_dir=str(tmp_path / "cache"))
    assert len(ds["invalidated"]) == 0
    assert ds["invalidated"].features == ds["dev"].features


def test_a_one_locale_corpus_folder_is_accepted_and_a_two_locale_one_is_refused_naming_them(tmp_path: Path) -> None:
    locale = common_voice_folder(tmp_path / "cv")
    corpus = locale.parent
    assert corpus.name.startswith("cv-corpus-")
    ds = load_common_voice(corpus, splits=["test"], cache_dir=str(tmp_path / "cache"))
    assert Path(ds["test"]["audio"][0]["path"]).parent == locale / "clips"
    common_voice_folder(tmp_path / "cv", locale="cy")
    with pytest.raises(ValueError, match=r"2 Common Voice locales \['cy', 'en'\]: point data.data_dir at one"):
        load_common_voice(corpus, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="'cy', 'en'"):
        corpus_splits("common_voice", corpus)


def test_common_voice_mp3_clips_decode_to_their_duration_at_16k(corpora: dict[str, Path], tmp_path: Path) -> None:
    folder = corpora["common_voice"]
    durations = dict(
        line.split("\t") for line in (folder / "clip_durations.tsv").read_text().splitlines()[1:]
    )  # clip -> milliseconds
    ds = load_common_voice(folder, splits=["dev"], cache_dir=str(tmp_path))["dev"]
    for path, cell in zip(ds["path"], ds["audio"], strict=True):
        assert cell == {"bytes": None, "path": str(folder / "clips" / path)}
        audio = load_audio(cell["path"], 16_000)
        assert audio.ndim == 1 and abs(len(audio) - 16 * int(durations[path])) <= 16


def test_an_unchanged_folder_loads_with_the_same_fingerprints_from_arrow_files(tmp_path: Path) -> None:
    folder = librispeech_folder(tmp_path / "ls", splits=("dev-clean", "test-clean"))
    first = load_librispeech_folder(folder, cache_dir=str(tmp_path / "cache"))
    manifests = sorted((tmp_path / "cache" / MANIFEST_FOLDER).glob("*/*.jsonl"))
    mtimes = [os.stat(m).st_mtime_ns for m in manifests]
    again = load_librispeech_folder(folder, cache_dir=str(tmp_path / "cache"))
    assert {k: v._fingerprint for k, v in first.items()} == {k: v._fingerprint for k, v in again.items()}
    assert [os.stat(m).st_mtime_ns for m in manifests] == mtimes
    assert len(manifests) == 2
    assert all(split.cache_files for split in again.values())  # on disk, so a `map` over it is cached


def test_a_new_transcript_line_changes_that_splits_fingerprint_only(tmp_path: Path) -> None:
    folder = librispeech_folder(tmp_path / "ls", splits=("dev-clean", "test-clean"))
    before = load_librispeech_folder(folder, cache_dir=str(tmp_path / "cache"))
    trans = next((folder / "dev-clean").glob("*/*/*.trans.txt"))
    speaker, chapter = trans.name.removesuffix(".trans.txt").split("-")
    trans.write_text(trans.read_text() + f"{speaker}-{chapter}-0099 A NEW LINE\n")
    after = load_librispeech_folder(folder, cache_dir=str(tmp_path / "cache"))
    assert after["dev-clean"]._fingerprint != before["dev-clean"]._fingerprint
    assert f"{speaker}-{chapter}-0099" in after["dev-clean"]["id"]
    assert after["test-clean"]._fingerprint == before["test-clean"]._fingerprint


def test_the_same_folder_in_two_places_gets_two_manifests(tmp_path: Path) -> None:
    folder = librispeech_folder(tmp_path / "a", splits=("dev-clean",))
    shutil.copytree(folder, tmp_path / "b" / "LibriSpeech")
    a = load_librispeech_folder(folder, cache_dir=str(tmp_path / "cache"))["dev-clean"]
    b = load_librispeech_folder(tmp_path / "b", cache_dir=str(tmp_path / "cache"))["dev-clean"]
    assert a["id"] == b["id"] and a["file"] != b["file"]
    assert len(list((tmp_path / "cache" / MANIFEST_FOLDER).iterdir())) == 2


def test_the_hub_stand_ins_load_with_the_hub_split_names_and_columns(corpora: dict[str, Path], tmp_path: Path) -> None:
    hub = datasets.load_dataset(str(corpora["hub"]), name="all", cache_dir=str(tmp_path))
    assert list(hub) == ["train.clean.100", "validation.clean", "validation.other", "test.clean", "test.other"]
    assert hub["test.clean"].column_names == ["file", "audio", "text", "speaker_id", "chapter_id", "id"]
    assert hub["test.clean"].features["audio"] == datasets.Audio(sampling_rate=16_000)
    cell = hub["test.clean"].cast_column("audio", datasets.Audio(decode=False))[0]["audio"]
    assert sf.info(io.BytesIO(cell["bytes"])).format == "FLAC"

    fleurs = datasets.load_dataset(str(corpora["fleurs"]), name="en_us", cache_dir=str(tmp_path))
    assert list(fleurs) == ["train", "validation", "test"]
    train = fleurs["train"]
    assert train.column_names == [
        "id", "num_samples", "path", "audio", "transcription", "raw_transcription", "gender", "lang_id",
        "language", "lang_group_id",
    ]  # fmt: skip
    assert train.features["id"] == datasets.Value("int32")
    assert train.features["gender"].names == ["male", "female", "other"]
    assert len(set(train["id"])) < len(train) and len(set(train["path"])) == len(train)  # a sentence, two readers
    assert train.features["lang_id"].int2str(train["lang_id"][0]) == "en_us"
    assert all(t == t.lower() and "," not in t and "." not in t for t in train["transcription"])


def test_layouts_name_each_loader_and_an_unknown_layout_is_refused(corpora: dict[str, Path]) -> None:
    assert LAYOUTS == {
        "librispeech": load_librispeech_folder,
        "librilight": load_librilight,
        "common_voice": load_common_voice,
    }
    with pytest.raises(ValueError, match="common_voice"):
        corpus_splits("voxpopuli", corpora["librispeech"])
