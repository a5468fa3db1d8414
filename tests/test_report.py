# pytest tests/test_report.py
"""The report tool on constructed run dirs: grouping, the numbers, the three formats, failures, bad paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from asr_lightning import report


def make_run(root: Path, name: str, overrides: list[str], **metrics: float) -> Path:
    run = root / name
    run.mkdir(parents=True)
    seed = int(next(o.split("=")[1] for o in overrides if o.startswith("seed=")))
    (run / "metrics.json").write_text(json.dumps({**metrics, "seed": seed, "overrides": overrides}))
    return run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    for i, wer in enumerate([0.30, 0.32, 0.34]):
        make_run(sweep, f"{i}_a", ["experiment=demo", "model.lr=1e-3", f"seed={i}", "data.num_proc=4"],
                 **{"test/wer": wer, "val/wer_best": 0.5})  # fmt: skip
    make_run(sweep, "3_b", ["experiment=demo", "model.lr=3e-3", "seed=0"], **{"test/wer": 0.25, "val/wer_best": 0.4})
    failed = sweep / "4_c"
    failed.mkdir()
    record = {
        "error": "ValueError",
        "message": "boom & co",
        "overrides": ["experiment=demo", "model.lr=3e-3", "seed=1"],
    }
    (failed / "failed.json").write_text(json.dumps(record))
    return sweep


def test_groups_ignore_seed_and_housekeeping_overrides(runs: Path) -> None:
    groups = report.group_runs(report.find_runs([runs]))
    assert {k: len(v) for k, v in groups.items()} == {"model.lr=1e-3": 3, "model.lr=3e-3": 2}


def test_tables_match_hand_computation(runs: Path, tmp_path: Path) -> None:
    result = report.report([runs], out=tmp_path / "out", metrics=["test/wer", "val/wer_best"], plots=False)
    with (tmp_path / "out" / "report.csv").open() as f:
        rows = {(r["group"], r["metric"]): r for r in csv.DictReader(f)}
    a = rows[("model.lr=1e-3", "test/wer")]
    half = 4.302652729911275 * 0.02 / 3**0.5  # t(0.975, df=2) * std / sqrt(n)
    assert (int(a["n"]), float(a["mean"]), float(a["std"])) == (3, pytest.approx(0.32), pytest.approx(0.02))
    assert float(a["ci_high"]) == pytest.approx(0.32 + half)
    b = rows[("model.lr=3e-3", "test/wer")]
    assert int(b["n"]) == 1 and int(b["failed"]) == 1 and b["std"] == "nan"
    md = result["markdown"]
    assert "5 runs (1 failed) in 2 settings" in md and "| model.lr=1e-3 | 3 | 0.3200 | 0.0200 |" in md
    assert "| 4_c | ValueError: boom & co |" in md
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert rf"model.lr=1e-3 & 3 & 0.3200 $\pm$ {half:.4f} & 0.5000 $\pm$ 0.0000 \\" in tex
    assert r"val/wer\_best" in tex and r"model.lr=3e-3 & 1 & 0.2500 & 0.4000 \\" in tex


def test_missing_paths_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.find_runs([tmp_path / "nope"])
    with pytest.raises(FileNotFoundError, match="no runs"):
        report.find_runs([tmp_path])
    with pytest.raises(SystemExit, match="error: .*does not exist"):
        report.main([str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="predictions/test.jsonl"):
        report.main(["bootstrap", str(tmp_path), str(tmp_path)])


def test_plots_drawn_from_run_curves_and_predictions(runs: Path, tmp_path: Path) -> None:
    result = report.report([runs], out=tmp_path / "none", metrics=["test/wer"], by=["intent_class"])
    assert [f.name for f in result["files"]] == ["report.md", "report.tex", "report.csv"]  # nothing to draw
    for i, run in enumerate(sorted(runs.glob("[0-3]_*"))):
        (run / "csv").mkdir()
        (run / "csv" / "metrics.csv").write_text("step,val/wer,train/loss\n10,0.9,\n10,,2.0\n20,0.8,\n")
        (run / "predictions").mkdir()
        row = {"id": "u", "reference": "PAY MY BILL", "hypothesis": "PAY MY BELL" if i else "PAY MY BILL"}
        (run / "predictions" / "test.jsonl").write_text(json.dumps({**row, "intent_class": "pay"}) + "\n")
    result = report.report([runs], out=tmp_path / "out", metrics=["test/wer"], by=["intent_class"])
    png = {f.name: f.read_bytes()[:8] for f in result["files"] if f.suffix == ".png"}
    assert png == {"val_wer.png": b"\x89PNG\r\n\x1a\n", "wer_by_intent_class.png": b"\x89PNG\r\n\x1a\n"}


def test_bootstrap_names_the_line_of_a_bad_predictions_file(tmp_path: Path) -> None:
    good = tmp_path / "a.jsonl"
    good.write_text(json.dumps({"id": "u", "reference": "A B", "hypothesis": "A"}) + "\n")
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"id": "u", "reference": "A B", "hypothesis": "A B"}) + "\n{not json\n")
    with pytest.raises(SystemExit, match=r"error: .*b\.jsonl:2: "):
        report.main(["bootstrap", str(good), str(bad)])


def make_job(root: Path, name: str, overrides: list[str], data_dir: str, test_clips: int, wer: float) -> Path:
    """A sweep job as train.py leaves it: Hydra's overrides, provenance with the data identity, test predictions."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    fingerprints = {"train": f"tr{test_clips}", "validation": f"va{test_clips}", "test": f"te{test_clips}"}
    data = {"dataset": "audiofolder", "config": None, "data_dir": data_dir, "fingerprints": fingerprints,
            "splits_sha256": f"sha{test_clips}"}  # fmt: skip
    prov = {"git": {"commit": "abc", "dirty": False}, "data": data}
    (run / "provenance.json").write_text(json.dumps(prov))
    counts = {"test": {"rows": test_clips, "kept": test_clips, "hours": test_clips / 1000, "skipped": 0}}
    metrics = {"test/wer": wer, "seed": 0, "overrides": overrides, "data": counts, "provenance": prov}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "predictions").mkdir()
    row = {"id": "u", "reference": "PAY MY BILL", "hypothesis": "PAY MY BILL"}
    (run / "predictions" / "test.jsonl").write_text(json.dumps(row) + "\n")
    return run


def test_runs_on_different_data_are_never_averaged(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    make_job(sweep, "0", ["model.lr=1e-3", "seed=0", "paths.data_dir=/corpus/small"], "/corpus/small", 41, 0.30)
    make_job(sweep, "1", ["model.lr=1e-3", "seed=1", "paths.data_dir=/corpus/full"], "/corpus/full", 120, 0.50)
    make_job(sweep, "2", ["model.lr=1e-3", "seed=2", "paths.data_dir=/corpus/full"], "/corpus/full", 120, 0.52)
    groups = report.group_runs(report.find_runs([sweep]))
    assert {k: [r.dir.name for r in v] for k, v in groups.items()} == {
        "model.lr=1e-3 [data 1]": ["0"], "model.lr=1e-3 [data 2]": ["1", "2"],
    }  # fmt: skip
    result = report.report([sweep], out=tmp_path / "out", metrics=["test/wer"], plots=False)
    means = {r["group"]: (r["n"], r["mean"]) for r in result["rows"]}
    assert means == {"model.lr=1e-3 [data 1]": (1, 0.30), "model.lr=1e-3 [data 2]": (2, pytest.approx(0.51))}
    [warning] = result["warnings"]
    assert "model.lr=1e-3 saw 2 different data sets" in warning
    assert "data.test.kept" in warning and "provenance.data.fingerprints.test" in warning
    assert warning in result["markdown"]


def test_same_data_from_another_dir_and_unknown_data_stay_in_one_group(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    make_job(sweep, "0", ["model.lr=1e-3", "seed=0"], "/mnt/a/corpus", 41, 0.30)
    make_job(sweep, "1", ["model.lr=1e-3", "seed=1"], "/mnt/b/corpus", 41, 0.32)
    make_run(sweep, "2", ["model.lr=1e-3", "seed=2"], **{"test/wer": 0.34})  # from before provenance
    result = report.report([sweep], out=tmp_path / "out", metrics=["test/wer"], plots=False)
    assert [(r["group"], r["n"]) for r in result["rows"]] == [("model.lr=1e-3", 3)] and result["warnings"] == []


def test_killed_and_unreadable_jobs_are_listed_not_dropped(runs: Path, tmp_path: Path) -> None:
    killed = runs / "5_killed"
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "overrides.yaml").write_text("- experiment=demo\n- model.lr=3e-3\n- seed=2\n")
    empty = runs / "6_empty"
    (empty / ".hydra").mkdir(parents=True)
    (empty / ".hydra" / "overrides.yaml").write_text("- experiment=demo\n- model.lr=3e-3\n- seed=3\n")
    (empty / "metrics.json").write_text("")
    statuses = {r.dir.name: r.status for r in report.find_runs([runs])}
    assert statuses == {"0_a": "complete", "1_a": "complete", "2_a": "complete", "3_b": "complete",
                        "4_c": "failed", "5_killed": "incomplete", "6_empty": "unreadable"}  # fmt: skip
    result = report.report([runs], out=tmp_path / "out", metrics=["test/wer"], plots=False)
    md = result["markdown"]
    assert "7 runs (1 failed, 1 incomplete, 1 unreadable) in 2 settings; 4 complete." in md
    assert f"| 5_killed | {killed.resolve()} |" in md
    assert f"| 6_empty | {(empty / 'metrics.json').resolve()}: empty file |" in md
    b = next(r for r in result["rows"] if r["group"] == "model.lr=3e-3")
    assert (b["n"], b["failed"]) == (1, 3)  # the killed and unreadable jobs count against the setting too


def test_a_sweep_dir_with_its_own_hydra_dir_is_not_a_killed_job(runs: Path) -> None:
    (runs / ".hydra").mkdir()
    assert runs.resolve() not in {r.dir for r in report.find_runs([runs])}


def test_a_metric_no_run_has_is_a_one_line_error_with_a_suggestion(runs: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        report.main([str(runs), "--out", str(tmp_path / "out"), "--no-plots", "--metrics", "test/wr"])
    message = str(exc.value.code)
    assert message.startswith("error: no run has metric 'test/wr' (did you mean 'test/wer'?)")
    assert "test/wer, val/wer_best" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_default_metrics_are_those_the_runs_have(runs: Path, tmp_path: Path) -> None:
    result = report.report([runs], out=tmp_path / "out", plots=False)
    assert list(dict.fromkeys(r["metric"] for r in result["rows"])) == ["test/wer", "val/wer_best"]


def test_bootstrap_reads_predict_outputs_with_text_as_the_hypothesis(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    refs = {"u1": "PAY MY BILL", "u2": "CHECK MY BALANCE"}
    a.write_text("".join(json.dumps({"id": i, "path": f"{i}.wav", "reference": r, "text": r}) + "\n"
                         for i, r in refs.items()))  # fmt: skip
    b.write_text("".join(json.dumps({"id": i, "path": f"{i}.wav", "reference": r, "text": "PAY MY BELL"}) + "\n"
                         for i, r in refs.items()))  # fmt: skip
    report.main(["bootstrap", str(a), str(b), "--n", "200"])  # 1 + 2 substitutions in 6 reference words
    result = json.loads(capsys.readouterr().out)
    assert (result["wer_a"], result["wer_b"]) == (0.0, pytest.approx(3 / 6)) and result["n_resamples"] == 200
    for n in ("0", "-5"):
        with pytest.raises(SystemExit, match=rf"^error: --n {n}: the number of bootstrap resamples must be"):
            report.main(["bootstrap", str(a), str(b), "--n", n])
