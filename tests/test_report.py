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


# ---------------------------------------------------------------- several evaluation sets per run

SETS = {"validation": ["dev-clean", "dev-other"], "test": ["test-clean", "test-other"]}


def make_two_set_run(root: Path, name: str, overrides: list[str], clean: float, other: float) -> Path:
    """A run that scored LibriSpeech's two test sets: per-set keys, `test/wer` = the first set, `eval_sets`."""
    per_set = {}
    for role, prefix, shift in (("test", "test", 0.0), ("validation", "val", 0.01)):
        for s, wer in zip(SETS[role], (clean, other), strict=True):
            per_set |= {f"{prefix}/{s}/wer": wer + shift, f"{prefix}/{s}/cer": (wer + shift) / 2,
                        f"{prefix}/{s}/loss": 1.0}  # fmt: skip
    metrics = {"test/wer": clean, "test/cer": clean / 2, "test/loss": 1.0, "val/wer_best": clean + 0.01,
               "train_time_s": 60.0, "eval_sets": SETS, "metadata_columns": []}  # fmt: skip
    return make_run(root, name, overrides, **metrics, **per_set)


@pytest.fixture
def two_sets(tmp_path: Path) -> Path:
    sweep = tmp_path / "libri"
    for seed in (0, 1):
        d = 0.02 * seed
        make_two_set_run(sweep, f"{seed}_a", ["model.lr=1e-3", f"seed={seed}"], 0.10 + d, 0.20 + d)
        make_two_set_run(sweep, f"{seed}_b", ["model.lr=3e-3", f"seed={seed}"], 0.08 + d, 0.18 + d)
    return sweep


def test_several_test_sets_make_the_default_metrics_a_wer_and_cer_per_set(two_sets: Path, tmp_path: Path) -> None:
    result = report.report([two_sets], out=tmp_path / "out", plots=False)
    per_set = ["test/test-clean/wer", "test/test-clean/cer", "test/test-other/wer", "test/test-other/cer"]
    assert list(dict.fromkeys(r["metric"] for r in result["rows"])) == [*per_set, "val/wer_best", "train_time_s"]
    with (tmp_path / "out" / "report.csv").open() as f:
        rows = {(r["group"], r["metric"]): r for r in csv.DictReader(f)}
    other = rows[("model.lr=1e-3", "test/test-other/wer")]
    assert (int(other["n"]), float(other["mean"])) == (2, pytest.approx(0.21))
    assert float(rows[("model.lr=3e-3", "test/test-clean/wer")]["mean"]) == pytest.approx(0.09)


def test_markdown_summary_has_a_wer_and_cer_column_per_test_set(two_sets: Path, tmp_path: Path) -> None:
    md = report.report([two_sets], out=tmp_path / "out", plots=False)["markdown"]
    head = "| setting | n | test-clean WER | test-clean CER | test-other WER | test-other CER | val/wer_best |"
    assert head in md and md.index(head) < md.index("### test/test-clean/wer")  # the wide table first
    half = 12.706204736174707 * 0.02 / 2**0.5 / 2**0.5  # t(0.975, df=1) * std / sqrt(n), std of (0.08, 0.10)
    row = next(line for line in md.splitlines() if line.startswith("| model.lr=3e-3 | 2 | 0.0900"))
    assert row.split(" | ")[2:5] == [f"0.0900 ± {half:.4f}", f"0.0450 ± {half / 2:.4f}", f"0.1900 ± {half:.4f}"]


def test_latex_groups_each_test_set_under_a_multicolumn_with_all_columns_in_every_row(
    two_sets: Path, tmp_path: Path
) -> None:
    report.report([two_sets], out=tmp_path / "out", plots=False)
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert r" &  & \multicolumn{2}{c}{test-clean} & \multicolumn{2}{c}{test-other} &  &  \\" in tex
    assert r"\cmidrule(lr){3-4} \cmidrule(lr){5-6}" in tex
    assert r"Setting & $n$ & WER & CER & WER & CER & val/wer\_best & train\_time\_s \\" in tex
    assert_tabular_is_well_formed(tex, columns=8)


def test_a_sweep_mixing_test_sets_shows_a_dash_where_a_setting_lacks_a_set(two_sets: Path, tmp_path: Path) -> None:
    make_run(two_sets, "minds", ["model.lr=1e-3", "data=minds14", "seed=0"], **{"test/wer": 0.4, "test/cer": 0.2})
    result = report.report([two_sets], out=tmp_path / "out", plots=False)
    sets = [r["metric"] for r in result["rows"] if r["group"] == "data=minds14,model.lr=1e-3"]
    assert sets[:6] == ["test/test-clean/wer", "test/test-clean/cer", "test/test-other/wer", "test/test-other/cer",
                        "test/test/wer", "test/test/cer"]  # fmt: skip
    md = result["markdown"]
    assert "| data=minds14,model.lr=1e-3 | 1 | – | – | – | – | 0.4000 | 0.2000 | – | – |" in md
    assert "| model.lr=1e-3 | 2 | 0.1100 ± " in md and md.count(" | – | – | – | – |") == 1
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert r"\multicolumn{2}{c}{test} &  &  \\" in tex and r"\cmidrule(lr){7-8}" in tex
    assert r"data=minds14,model.lr=1e-3 & 1 & – & – & – & – & 0.4000 & 0.2000 & – & – \\" in tex
    assert_tabular_is_well_formed(tex, columns=10)


def test_several_test_sets_add_a_wer_by_set_plot(two_sets: Path, tmp_path: Path) -> None:
    for run in two_sets.iterdir():
        write_predictions(run / "predictions" / "test.jsonl", {"test-clean": 0, "test-other": 2})
    result = report.report([two_sets], out=tmp_path / "out", metrics=["test/test-other/wer"])
    assert "wer_by_set.png" in [f.name for f in result["files"]]
    assert report._wer_by(result["groups"], "set")["model.lr=1e-3"] == {"test-clean": [0.0, 0.0],
                                                                        "test-other": [0.04, 0.04]}  # fmt: skip


def test_bootstrap_with_a_set_compares_only_that_sets_rows(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_predictions(a, {"test-clean": 2, "test-other": 8}, n=20)
    write_predictions(b, {"test-clean": 2, "test-other": 2}, n=20)  # better on test-other only
    report.main(["bootstrap", str(a), str(b), "--set", "test-other", "--n", "500"])
    other = json.loads(capsys.readouterr().out)
    assert (other["set"], other["n_utterances"]) == ("test-other", 20)
    assert other["diff"] == pytest.approx(-0.06) and other["ci_high"] < 0  # (2 - 8) substitutions / 100 words
    report.main(["bootstrap", str(a), str(b), "--set", "test-clean", "--n", "500"])
    clean = json.loads(capsys.readouterr().out)
    assert (clean["set"], clean["n_utterances"], clean["diff"]) == ("test-clean", 20, 0.0)


def test_bootstrap_defaults_to_the_runs_first_listed_test_set(tmp_path: Path, capsys) -> None:
    runs = []
    for name, errors in (("a", 4), ("b", 1)):
        run = make_two_set_run(tmp_path, name, ["seed=0"], 0.1, 0.2)
        # the rows list test-other first: the default is eval_sets' first set, not the rows' order
        write_predictions(run / "predictions" / "test.jsonl", {"test-other": errors, "test-clean": 1})
        runs.append(str(run))
    report.main(["bootstrap", *runs, "--n", "200"])
    out, err = capsys.readouterr()
    assert json.loads(out)["set"] == "test-clean" and json.loads(out)["diff"] == 0.0
    assert "set 'test-clean' (the first test set of" in err and "metrics.json" in err
    files = [str(Path(r) / "predictions" / "test.jsonl") for r in runs]  # no metrics.json: the rows' first set
    report.main(["bootstrap", *files, "--n", "200"])
    out, err = capsys.readouterr()
    assert json.loads(out)["set"] == "test-other" and "the first set in the rows of" in err


def test_bootstrap_with_a_set_the_predictions_lack_names_the_sets_there(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_predictions(a, {"test-clean": 1, "test-other": 2})
    write_predictions(b, {"test-clean": 1, "test-other": 2})
    with pytest.raises(SystemExit, match=r"^error: no rows of set 'dev-other' .*a\.jsonl; they hold the sets "
                                         r"test-clean, test-other$"):  # fmt: skip
        report.main(["bootstrap", str(a), str(b), "--set", "dev-other"])
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"id": "u", "reference": "A B", "hypothesis": "A"}) + "\n")
    with pytest.raises(SystemExit, match=r"^error: --set test-clean: the predictions of .*old\.jsonl have no sets"):
        report.main(["bootstrap", str(old), str(old), "--set", "test-clean"])


def write_predictions(path: Path, errors: dict[str, int], n: int = 10) -> None:
    """`n` five-word utterances per set (the dict's order), the first `errors[set]` with one substitution each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for s, wrong in errors.items():
        for i in range(n):
            hyp = "ONE TWO THREE FOUR FIVE" if i >= wrong else "ONE TWO TREE FOUR FIVE"
            rows.append({"id": f"{s}-{i}", "reference": "ONE TWO THREE FOUR FIVE", "hypothesis": hyp, "set": s})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def assert_tabular_is_well_formed(tex: str, columns: int) -> None:
    """Balanced braces, and every row of the tabular spans `columns` columns (a multicolumn counts its span)."""
    depth = 0
    for c in tex.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(c, 0)
        assert depth >= 0
    assert depth == 0
    body = tex[tex.index(r"\begin{tabular}") : tex.index(r"\end{tabular}")]
    spec = body[len(r"\begin{tabular}{") : body.index("}\n")]
    assert len(spec.split()) == columns
    for row in body.split("\n")[1:]:
        row = row.strip()
        if not row.endswith(r"\\"):
            continue  # \toprule, \cmidrule, \midrule
        cells = row[: -len(r"\\")].split("&")
        spans = [int(c.split("{", 2)[1].split("}")[0]) if r"\multicolumn" in c else 1 for c in cells]
        assert sum(spans) == columns, row
