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
