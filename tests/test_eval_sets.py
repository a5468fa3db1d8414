# pytest tests/test_eval_sets.py
"""Named splits and several evaluation sets: each corpus layout's sets are the splits it names, training reads only
the train sets, and each validation and test set is scored, written and reported apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
from helpers.config import ROOT, compose_cfg
from helpers.corpora import (
    common_voice_folder,
    fleurs_parquet,
    librilight_folder,
    librispeech_folder,
    librispeech_hub_parquet,
)

import train
from asr_lightning import report
from asr_lightning.data import ASRDataModule
from asr_lightning.scoring import read_jsonl

# the tiny random-init model on a corpus config: few steps, no workers
TINY = [
    "experiment=demo",
    "data.num_proc=1",
    "data.num_workers=0",
    "data.max_batch_seconds=null",
    "data.batch_size=4",
    "data.eval_batch_size=4",
    "data.min_duration_s=0.1",
    "trainer.max_steps=2",
    "trainer.max_epochs=-1",
    "trainer.check_val_every_n_epoch=1",
    "trainer.log_every_n_steps=1",
    "callbacks.progress_bar.refresh_rate=0",
    "trainer.enable_model_summary=false",
]


def _datamodule(overrides: list[str], tmp_path: Path, cache_dir: Path) -> ASRDataModule:
    cfg = compose_cfg("train", [*TINY, *overrides], tmp_path / "run", cache_dir)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return librispeech_folder(tmp_path_factory.mktemp("openslr"))


def test_the_hub_copy_of_librispeech_is_split_by_its_names_never_pooled(tmp_path: Path, cache_dir: Path) -> None:
    hub = librispeech_hub_parquet(tmp_path / "hub")
    dm = _datamodule(["data=librispeech", f"data.dataset={hub}"], tmp_path, cache_dir)
    assert dm.sets == {"train": ["train-clean-100"], "validation": ["dev-clean", "dev-other"],
                       "test": ["test-clean", "test-other"]}  # fmt: skip
    assert dm.split_source == "predefined"
    saved = json.loads((tmp_path / "run" / "splits.json").read_text())
    test_ids = {k for ids in saved["sets"]["test"].values() for k in ids}
    assert test_ids and not test_ids & set(dm.splits["train"]["id"])
    # splits.json: the source split of every id
    assert set(saved["sets"]["validation"]) == {"dev-clean", "dev-other"}
    assert sorted(saved["test"]) == sorted(test_ids)
    assert set(dm.splits["test"]["set"]) == {"test-clean", "test-other"}


def test_split_names_that_match_nothing_fail_naming_them(tmp_path: Path, cache_dir: Path) -> None:
    hub = librispeech_hub_parquet(tmp_path / "hub")
    with pytest.raises(ValueError, match=r"train\.clean\.100.*name no train split.*data\.resplit=true"):
        _datamodule(["data=minds14", f"data.dataset={hub}", "data.config=all", "data.text_column=text",
                     "data.id_column=id", "data.metadata_columns=[]"], tmp_path, cache_dir)  # fmt: skip
    with pytest.raises(ValueError, match=r"\['dev-typo'\] are not in the source, whose splits are"):
        _datamodule(["data=librispeech", f"data.dataset={hub}", "data.val_splits=[dev-typo]"], tmp_path, cache_dir)


def test_resplit_pools_the_named_splits_only_when_asked(tmp_path: Path, cache_dir: Path) -> None:
    hub = librispeech_hub_parquet(tmp_path / "hub")
    dm = _datamodule(["data=librispeech", f"data.dataset={hub}", "data.resplit=true", "data.val_fraction=0.2",
                      "data.test_fraction=0.2"], tmp_path, cache_dir)  # fmt: skip
    assert dm.split_source == "random" and dm.sets["test"] == ["test"]
    assert json.loads((tmp_path / "run" / "splits.json").read_text())["_meta"]["pooled"] == [
        "train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"]  # fmt: skip


def test_a_split_named_for_two_roles_is_refused(tmp_path: Path, cache_dir: Path, librispeech: Path) -> None:
    with pytest.raises(ValueError, match="named for two"):
        _datamodule(["data=librispeech", f"data.data_dir={librispeech}", "data.test_splits=[test-clean,dev-clean]"],
                    tmp_path, cache_dir)  # fmt: skip


def test_the_openslr_folder_gives_the_hub_copys_set_names(tmp_path: Path, cache_dir: Path, librispeech: Path) -> None:
    dm = _datamodule(["data=librispeech", f"data.data_dir={librispeech}"], tmp_path, cache_dir)
    assert dm.eval_sets == {"validation": ["dev-clean", "dev-other"], "test": ["test-clean", "test-other"]}
    assert dm.identity["dataset"] == "openslr/librispeech_asr" and dm.identity["data_dir"] == str(librispeech)
    report = dm.report["test"]
    assert set(report["sets"]) == {"test-clean", "test-other"}
    assert report["kept"] == sum(s["kept"] for s in report["sets"].values()) == len(dm.splits["test"])
    # each clip's row points into the role's sources, set after set: the audio a clip is read from is its own
    clips = dm.dataset("test")
    for i in range(len(clips)):
        item = clips[i]
        assert item["set"] == dm.splits["test"]["set"][i]
        assert dm.sources["test"][int(dm.splits["test"]["row"][i])]["_id"] == item["id"]


def test_librilight_trains_on_its_lists_and_scores_on_librispeech(
    tmp_path: Path, cache_dir: Path, librispeech: Path
) -> None:
    lists = librilight_folder(tmp_path / "ll")
    dm = _datamodule(["data=librilight", f"data.data_dir={lists}", f"data.eval_data_dir={librispeech}",
                      "data.train_splits=[10m-0,10m-1]"], tmp_path, cache_dir)  # fmt: skip
    assert dm.sets["train"] == ["10m-0", "10m-1"] and dm.eval_sets["validation"] == ["dev-other", "dev-clean"]
    train_ids = set(dm.splits["train"]["id"])
    paths = [Path(a["path"]) for a in dm.sources["train"]["audio"]]  # 1h/<k>/<clean|other>/<spk>/<chap>/<utt>.flac
    assert paths and all(p.parts[-6:-3] in {("1h", k, c) for k in "01" for c in ("clean", "other")} for p in paths)
    assert not train_ids & set(dm.splits["test"]["id"]) and not train_ids & set(dm.splits["validation"]["id"])


def test_common_voice_sentences_are_normalised_and_mp3s_decoded(tmp_path: Path, cache_dir: Path) -> None:
    cv = common_voice_folder(tmp_path / "cv")
    dm = _datamodule(["data=common_voice", f"data.data_dir={cv}"], tmp_path, cache_dir)
    assert dm.sets == {"train": ["train"], "validation": ["dev"], "test": ["test"]}
    texts = [t for s in ("train", "validation", "test") for t in dm.splits[s]["text"]]
    assert texts and all(t == t.upper() and not set(t) & set(',.!?"“”’¿¡«»') for t in texts), texts
    raw = [r for s in dm.sources.values() for r in s["sentence"]]
    if any("’" in r for r in raw):  # "Don’t" is one word with an apostrophe, not "DON T"
        assert any("'" in t for t in texts)
    assert dm.report["train"]["skipped"]["undecodable"] == 0  # soundfile decodes every MP3


def test_fleurs_ids_are_clip_paths_not_its_repeated_sentence_ids(tmp_path: Path, cache_dir: Path) -> None:
    fleurs = fleurs_parquet(tmp_path / "fleurs")
    dm = _datamodule(["data=fleurs", f"data.dataset={fleurs}"], tmp_path, cache_dir)
    assert dm.sets == {"train": ["train"], "validation": ["validation"], "test": ["test"]}
    assert dm.metadata_columns == ["gender"] and len(set(dm.splits["train"]["id"])) == len(dm.splits["train"])


@pytest.mark.slow
def test_each_test_set_is_scored_and_written_apart(tmp_path: Path, cache_dir: Path, librispeech: Path) -> None:
    run = tmp_path / "run"
    cfg = compose_cfg("train", [*TINY, "data=librispeech", f"data.data_dir={librispeech}", "validate=true"], run,
                      cache_dir)  # fmt: skip
    metrics = train.train(cfg)
    assert metrics["eval_sets"] == {"validation": ["dev-clean", "dev-other"], "test": ["test-clean", "test-other"]}
    for stage, sets in (("val", ["dev-clean", "dev-other"]), ("test", ["test-clean", "test-other"])):
        for name in sets:
            for m in ("wer", "cer", "loss"):
                assert f"{stage}/{name}/{m}" in metrics
        for m in ("wer", "cer", "loss"):  # the role's own keys are its first set's
            assert metrics[f"{stage}/{m}"] == metrics[f"{stage}/{sets[0]}/{m}"]
    rows = read_jsonl(run / "predictions" / "test.jsonl")
    assert {r["set"] for r in rows} == {"test-clean", "test-other"}
    for name in ("test-clean", "test-other"):
        mine = read_jsonl(run / "predictions" / "test" / f"{name}.jsonl")
        assert mine == [r for r in rows if r["set"] == name]
        errors = sum(r["substitutions"] + r["deletions"] + r["insertions"] for r in mine)
        assert metrics[f"test/{name}/wer"] == pytest.approx(errors / sum(r["ref_words"] for r in mine), abs=1e-6)
        assert (run / "analysis" / "test" / f"{name}.json").exists()
    assert set(json.loads((run / "analysis" / "test.json").read_text())["by_set"]) == {"test-clean", "test-other"}


@pytest.mark.slow
def test_ddp_scores_each_set_exactly_as_one_process(tmp_path: Path, cache_dir: Path, librispeech: Path) -> None:
    run = tmp_path / "ddp"
    # batches of 1: the 4 train clips make 2 steps on each of the 2 ranks
    overrides = [
        *TINY,
        "data=librispeech",
        f"data.data_dir={librispeech}",
        f"data.cache_dir={cache_dir}",
        "data.batch_size=1",
    ]
    proc = subprocess.run([sys.executable, "train.py", *overrides, "trainer=ddp_cpu", f"hydra.run.dir={run}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((run / "metrics.json").read_text())
    single = tmp_path / "single"
    one = train.train(compose_cfg("train", [*overrides, "train=false", f"ckpt_path={ddp['best_checkpoint']}"], single))
    for name in ("test-clean", "test-other"):
        assert ddp[f"test/{name}/wer"] == one[f"test/{name}/wer"]
        assert ddp[f"test/{name}/cer"] == one[f"test/{name}/cer"]
        assert ddp[f"test/{name}/loss"] == pytest.approx(one[f"test/{name}/loss"], rel=1e-5)
    assert read_jsonl(run / "predictions" / "test.jsonl") == read_jsonl(single / "predictions" / "test.jsonl")


@pytest.mark.slow
def test_a_two_set_sweep_reports_and_bootstraps_per_set(tmp_path: Path, cache_dir: Path, librispeech: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", *TINY, "data=librispeech", f"data.data_dir={librispeech}",
         f"data.cache_dir={cache_dir}", "model.lr=1e-3,3e-3", "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = report.report([sweep], tmp_path / "report", plots=False)
    assert [r["metric"] for r in result["rows"]][:4] == ["test/test-clean/wer", "test/test-clean/cer",
                                                         "test/test-other/wer", "test/test-other/cer"]  # fmt: skip
    assert "test-clean WER" in result["markdown"] and "test-other WER" in result["markdown"]
    runs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(runs) == 2
    out = subprocess.run([sys.executable, "-m", "asr_lightning.report", "bootstrap", str(runs[0]), str(runs[1]),
                          "--set", "test-other", "--n", "200"], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    other = json.loads(out.stdout[: out.stdout.rindex("}") + 1])
    assert other["set"] == "test-other"
    assert other["n_utterances"] == len(read_jsonl(runs[0] / "predictions" / "test" / "test-other.jsonl"))


def test_a_dry_run_accounts_for_every_set_and_the_schedule_then_stops(
    tmp_path: Path, cache_dir: Path, librispeech: Path
) -> None:
    run = tmp_path / "run"
    overrides = [*TINY, "data=librispeech", f"data.data_dir={librispeech}", "dry_run=true", "trainer.max_steps=10",
                 "trainer.accumulate_grad_batches=2", "data.batch_size=2"]  # fmt: skip
    metrics = train.train(compose_cfg("train", overrides, run, cache_dir))
    plan = json.loads((run / "dry_run.json").read_text())
    assert metrics["dry_run"] == plan
    assert set(plan["sets"]["test"]) == {"test-clean", "test-other"}
    assert set(plan["sets"]["train"]) == {"train-clean-100"}
    train_set = plan["sets"]["train"]["train-clean-100"]
    assert train_set["kept"] == 4 and train_set["hours"] > 0 and "oov_char_rate" in train_set
    # 4 clips in batches of 2: 2 batches per epoch, 1 update (2 accumulated); 10 steps are 10 epochs
    assert (plan["batches_per_epoch_per_device"], plan["updates_per_epoch"], plan["epochs"]) == (2, 1, 10.0)
    assert plan["batch"] == {"devices": 1, "accumulate_grad_batches": 2, "per_device_clips": 2, "per_update_clips": 4}
    assert plan["vocab"]["<pad>"] == 0
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()  # nothing was trained


def test_predict_reads_one_set_of_a_role(tmp_path: Path, cache_dir: Path, librispeech: Path) -> None:
    from asr_lightning.inputs import InputError, dataset_inputs

    dm = _datamodule(["data=librispeech", f"data.data_dir={librispeech}"], tmp_path, cache_dir)
    whole = dataset_inputs(dm, "test")
    other = dataset_inputs(dm, "test-other")
    ids = dict(zip(dm.splits["test"]["id"], dm.splits["test"]["set"], strict=True))
    assert {u.id for u in other} == {i for i, s in ids.items() if s == "test-other"}
    assert len(whole) == len(ids) > len(other) > 0
    with pytest.raises(InputError, match="test-typo.*test-other"):
        dataset_inputs(dm, "test-typo")


def test_training_batches_hold_only_train_set_clips(tmp_path: Path, cache_dir: Path, librispeech: Path) -> None:
    dm = _datamodule(["data=librispeech", f"data.data_dir={librispeech}"], tmp_path, cache_dir)
    saved = json.loads((tmp_path / "run" / "splits.json").read_text())
    seen = {i for batch in dm.train_dataloader() for i in batch["ids"]}
    assert seen == set(saved["sets"]["train"]["train-clean-100"])
    scored = {i for batch in dm.test_dataloader() for i in batch["ids"]}
    assert scored == {i for ids in saved["sets"]["test"].values() for i in ids}


@pytest.mark.slow
def test_wandb_gets_a_table_per_test_set(
    tmp_path: Path, cache_dir: Path, librispeech: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.wandb_log import summarize_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))
    run = tmp_path / "run"
    cfg = compose_cfg("train", [*TINY, "data=librispeech", f"data.data_dir={librispeech}", "logger=wandb",
                                "callbacks.prediction_tables.num_samples=2"], run, cache_dir)  # fmt: skip
    metrics = train.train(cfg)
    logged = summarize_run(run)
    for name in ("test-clean", "test-other"):
        table = json.loads(logged["tables"][f"test/{name}/predictions"][0].read_text())
        assert len(table["data"]) == metrics["data"]["test"]["sets"][name]["kept"]
        assert logged["history"][f"test/{name}/wer"] == [pytest.approx(metrics[f"test/{name}/wer"])]
    val = json.loads(logged["tables"]["val/predictions"][0].read_text())
    assert "set" in val["columns"]


def test_a_corpus_folder_streams_from_the_folder_not_the_hub(librispeech: Path, cache_dir: Path) -> None:
    from asr_lightning.sources import load_stream_source

    streams = load_stream_source("openslr/librispeech_asr", "all", None, str(librispeech), str(cache_dir), "audio",
                                 ["text", "id"], num_shards=2)  # fmt: skip
    assert "test-other" in streams and "validation.other" not in streams
    rows = list(streams["test-other"])
    assert rows and all(Path(r["audio"]["path"]).is_relative_to(librispeech) for r in rows)
