# python -m asr_lightning.report logs/train/multiruns/<sweep>   (or: ... report bootstrap <run A> <run B>)
"""Paper tables and plots from runs: group by overrides except the seed, n/mean/std/95% CI per metric.

    python -m asr_lightning.report RUN_OR_SWEEP_DIR... [--out DIR] [--metrics test/wer ...] [--by intent_class]
    python -m asr_lightning.report bootstrap A B [--set test-other] [--split test] [--n 10000]
        (A, B: run dirs or predictions JSONL files; --set: compare one evaluation set's rows, default A's first)

Writes report.md, report.tex (booktabs), report.csv, val_wer.png and wer_by_<column>.png to --out. Runs that
score several test sets (`eval_sets` in metrics.json) get a WER and a CER column per set (`test/<set>/wer`).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr_lightning.analysis import error_analysis
from asr_lightning.plots import plot_val_curves, plot_wer_by
from asr_lightning.rundir import override_key, run_overrides
from asr_lightning.scoring import read_jsonl
from asr_lightning.stats import paired_bootstrap, summarize

DEFAULT_METRICS = ("test/wer", "test/cer", "val/wer_best", "train_time_s")
# metric prefix -> its role in a run's `eval_sets`; a role with several sets logs `<prefix>/<set>/<name>` per set
ROLES = {"test": "test", "val": "validation"}
# overrides that never define a setting: seeds are what we average over; the rest only move files or logs
DEFAULT_IGNORE = ("seed", "ckpt_path", "hydra.*", "paths.*", "logger", "logger.*", "trainer.enable_progress_bar",
                  "trainer.enable_model_summary", "data.num_proc", "data.num_workers", "data.cache_dir")  # fmt: skip


# files that mark a dir as a run: its results, its failure record, or (a job killed before either) Hydra's config
RUN_MARKERS = ("metrics.json", "failed.json", ".hydra")
# fields of a run's data identity that say where the data lay, not what it was
DATA_LOCATION_KEYS = ("data_dir",)


@dataclass
class Run:
    """A run dir and what it left: `status` is complete, failed, incomplete (killed or still running: a job dir
    with `.hydra/` but no metrics.json or failed.json) or unreadable (`problem` says which file and why)."""

    dir: Path
    overrides: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    status: str = "complete"
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "complete"


def find_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Run dirs (holding metrics.json, failed.json, or only `.hydra/` for a killed job) under the given paths."""
    dirs: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist: pass run dirs or sweep dirs (logs/train/multiruns/...)")
        if (p / "metrics.json").exists() or (p / "failed.json").exists():
            dirs.add(p.resolve())
            continue
        found = {f.parent.resolve() for pat in RUN_MARKERS for f in p.rglob(pat)}
        # a dir marked only by .hydra/ that holds runs is a sweep's own dir, not a killed job
        dirs |= {d for d in found if _has_result(d) or not any(d in o.parents for o in found)}
    if not dirs:
        raise FileNotFoundError(f"no runs (metrics.json, failed.json or .hydra/) under {', '.join(map(str, paths))}")
    return [_read_run(d) for d in sorted(dirs)]


def group_runs(runs: Sequence[Run], ignore: Sequence[str] = DEFAULT_IGNORE) -> dict[str, list[Run]]:
    """Runs that differ only in ignored overrides (the seed) form one group, labelled by what varies.

    Runs with the same overrides but different data (`data_identity`) are never averaged: each data set gets its
    own group, labelled `<setting> [data 1]`, `[data 2]`, ...; `data_warnings` says which keys differ. A run
    whose data is unknown (failed, killed, or from before provenance) joins its setting's group when the setting
    saw one data set, else `<setting> [data ?]`.
    """
    keys = {id(r): tuple(sorted(o for o in r.overrides if not _ignored(o, ignore))) for r in runs}
    shared = set.intersection(*(set(k) for k in keys.values())) if keys else set()
    settings: dict[str, list[Run]] = {}
    for r in runs:
        label = ",".join(o for o in keys[id(r)] if o not in shared) or ",".join(keys[id(r)]) or "default"
        settings.setdefault(label, []).append(r)
    groups: dict[str, list[Run]] = {}
    for label, members in settings.items():
        identities = list(dict.fromkeys(i for r in members if (i := _identity_key(r)) is not None))
        for r in members:
            i = _identity_key(r)
            if len(identities) <= 1:
                suffix = ""
            else:
                suffix = f" [data {identities.index(i) + 1}]" if i is not None else " [data ?]"
            groups.setdefault(label + suffix, []).append(r)
    return dict(sorted(groups.items()))


def data_identity(run: Run) -> dict[str, Any] | None:
    """What data a run saw, flattened to dotted keys: its provenance's data identity (minus where the files lay)
    and its per-split counts; None when the run recorded neither (failed, killed, or older than provenance)."""
    prov = (run.metrics.get("provenance") or {}).get("data") or {}
    ident = {k: v for k, v in prov.items() if k not in DATA_LOCATION_KEYS}
    counts = run.metrics.get("data") or {}
    if not ident and not counts:
        return None
    return _flatten({"provenance.data": ident, "data": counts})


def data_warnings(groups: dict[str, list[Run]]) -> list[str]:
    """One line per setting whose runs saw different data, naming the keys that differ."""
    by_setting: dict[str, list[dict[str, Any]]] = {}
    for label, runs in groups.items():
        setting, sep, _ = label.rpartition(" [data ")
        ident = next((i for r in runs if (i := data_identity(r)) is not None), None)
        if sep and ident is not None:
            by_setting.setdefault(setting, []).append(ident)
    lines = []
    for setting, idents in by_setting.items():
        differ = sorted(k for k in set().union(*idents) if len({json.dumps(i.get(k)) for i in idents}) > 1)
        lines.append(
            f"warning: runs of {setting} saw {len(idents)} different data sets (differing: {', '.join(differ)}):"
            " reported as separate rows [data 1], [data 2], ..., never averaged"
        )
    return lines


def summary_rows(groups: dict[str, list[Run]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """A row per setting x metric: n, mean, std, 95% CI over the setting's complete runs that have the metric."""
    rows = []
    for label, runs in groups.items():
        ok = [r for r in runs if r.ok]
        for m in metrics:
            values = [v for r in ok if (v := metric_value(r, m)) is not None]
            rows.append({"group": label, "metric": m, **summarize(values), "failed": len(runs) - len(ok)})
    return rows


def metric_value(run: Run, metric: str) -> float | None:
    """The run's value of `metric`, None when it has none. A per-set metric (`test/<set>/wer`) of a run whose only
    set of that role is `<set>` is the role's own metric (`test/wer`): one-set runs log no per-set keys."""
    v = run.metrics.get(metric)
    if _is_number(v):
        return float(v)
    key = _set_of(metric)
    if key is not None and eval_sets(run, ROLES[key[0]]) == [key[1]]:
        v = run.metrics.get(f"{key[0]}/{metric.rsplit('/', 1)[1]}")
        return float(v) if _is_number(v) else None
    return None


def eval_sets(run: Run, role: str) -> list[str]:
    """The run's sets of `role` (`validation` or `test`) in the configured order, the first being the one that
    `test/wer` and `val/wer` report; a run from before several sets has one, named like its role."""
    return list((run.metrics.get("eval_sets") or {}).get(role) or [role])


def table_markdown(rows: Sequence[dict[str, Any]], metrics: Sequence[str], failures: Sequence[Run]) -> str:
    """The results tables in Markdown: with per-set metrics first one wide table (a row per setting, a WER and a
    CER column per set, `mean ± CI half-width`), then one per metric (a row per setting: n, mean, std, 95% CI),
    then the runs without results: failed, incomplete (killed or still running) and unreadable."""
    out = []
    columns = _column_groups(metrics)
    if any(s is not None for s, _ in columns):
        cell = {(r["group"], r["metric"]): r for r in rows}
        heads = [f"{s} {_short(m)}" if s is not None else m for s, ms in columns for m in ms]
        out += ["### Summary (mean ± 95% CI half-width over seeds)", "", "| setting | n | " + " | ".join(heads) + " |",
                "|---|---:|" + "---:|" * len(heads)]  # fmt: skip
        for g in dict.fromkeys(r["group"] for r in rows):
            n = max(cell[(g, m)]["n"] for m in metrics)
            out.append(f"| {g} | {n} | " + " | ".join(_cell(cell[(g, m)], m, " ± ") for m in metrics) + " |")
        out.append("")
    for m in metrics:
        out += [f"### {m}", "", "| setting | n | mean | std | 95% CI |", "|---|---:|---:|---:|---|"]
        for r in (r for r in rows if r["metric"] == m):
            ci = f"[{_fmt(r['ci_low'], m)}, {_fmt(r['ci_high'], m)}]"
            out.append(f"| {r['group']} | {r['n']} | {_fmt(r['mean'], m)} | {_fmt(r['std'], m)} | {ci} |")
        out.append("")
    failed = [r for r in failures if r.status == "failed"]
    if failed:
        out += ["### Failed runs", "", "| run | error |", "|---|---|"]
        out += [f"| {r.dir.name} | {_failure_text(r.failure)} |" for r in failed]
        out.append("")
    incomplete = [r for r in failures if r.status == "incomplete"]
    if incomplete:
        out += ["### Incomplete runs (killed or still running: no metrics.json or failed.json)", "", "| run | dir |",
                "|---|---|"]  # fmt: skip
        out += [f"| {r.dir.name} | {r.dir} |" for r in incomplete]
        out.append("")
    unreadable = [r for r in failures if r.status == "unreadable"]
    if unreadable:
        out += ["### Unreadable runs", "", "| run | problem |", "|---|---|"]
        out += [f"| {r.dir.name} | {r.problem[:300]} |" for r in unreadable]
        out.append("")
    return "\n".join(out)


def to_latex(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    """One booktabs table: a row per setting, `mean ± CI half-width` per metric, n in its own column; per-set
    metrics (`test/<set>/wer`) stand under a `\\multicolumn` header per set, with WER/CER sub-columns."""
    groups = list(dict.fromkeys(r["group"] for r in rows))
    cell = {(r["group"], r["metric"]): r for r in rows}
    columns = _column_groups(metrics)
    lines = [r"\begin{tabular}{l r " + " ".join("r" for _ in metrics) + "}", r"\toprule"]
    if any(s is not None for s, _ in columns):
        tops, rules, col = ["", ""], [], 3  # columns 1-2: setting, n
        for s, ms in columns:
            tops.append(rf"\multicolumn{{{len(ms)}}}{{c}}{{{_tex(s)}}}" if s is not None else "")
            if s is not None:
                rules.append(rf"\cmidrule(lr){{{col}-{col + len(ms) - 1}}}")
            col += len(ms)
        subs = [_tex(_short(m) if s is not None else m) for s, ms in columns for m in ms]
        lines += [" & ".join(tops) + r" \\", " ".join(rules), " & ".join([r"Setting", r"$n$", *subs]) + r" \\"]
    else:
        lines.append(" & ".join([r"Setting", r"$n$", *(_tex(m) for m in metrics)]) + r" \\")
    lines.append(r"\midrule")
    for g in groups:
        n = max(cell[(g, m)]["n"] for m in metrics)
        vals = [_cell(cell[(g, m)], m, r" $\pm$ ") for m in metrics]
        lines.append(" & ".join([_tex(g), str(n), *vals]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return (
        "% mean over seeds; +/- is the half-width of the 95% t-interval of the mean\n"
        "% needs \\usepackage{booktabs}\n" + "\n".join(lines)
    )


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["group", "metric", "n", "mean", "std", "ci_low", "ci_high", "ci_half",
                                               "failed"])  # fmt: skip
        writer.writeheader()
        writer.writerows(rows)


def report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    ignore: Sequence[str] = DEFAULT_IGNORE,
    by: Sequence[str] | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Tables (Markdown, LaTeX, CSV) and plots for the runs under `paths`; returns the rows and written files.

    Args:
        paths: run dirs and/or sweep dirs (searched recursively).
        out: the output folder; None: `<the one path>/report`, or `report` for several paths.
        metrics: metric names to tabulate; a name no run has is an error. A per-set name (`test/test-other/wer`)
            also finds `test/wer` of runs whose only test set it is. None: those of `DEFAULT_METRICS` that some
            run has; when the runs have several test sets (`eval_sets` in metrics.json), `test/<set>/wer` and
            `test/<set>/cer` per set in the listed order replace `test/wer` and `test/cer`, and the Markdown and
            LaTeX tables get a column group per set (a setting without a set shows "–" there).
        ignore: override keys (globs) that do not define a setting.
        by: metadata columns to plot test WER by; None: the runs' `metadata_columns`, plus `set` when the runs
            have several test sets.
        plots: draw the figures (val_wer.png, wer_by_<column>.png).

    Raises:
        ValueError: a metric no run has, naming the closest one that exists.
    """
    runs = find_runs(paths)
    metrics = _check_metrics(runs, metrics)
    groups = group_runs(runs, ignore)
    warnings = data_warnings(groups)
    rows = summary_rows(groups, metrics)
    failures = [r for r in runs if not r.ok]
    out = Path(out) if out else (Path(paths[0]) / "report" if len(paths) == 1 else Path("report"))
    out.mkdir(parents=True, exist_ok=True)
    counts = {s: sum(r.status == s for r in runs) for s in ("failed", "incomplete", "unreadable")}
    without = ", ".join([f"{counts['failed']} failed", *(f"{n} {s}" for s, n in counts.items() if n and s != "failed")])
    head = f"{len(runs)} runs ({without}) in {len(groups)} settings; {len(runs) - len(failures)} complete.\n\n"
    md = head + "".join(f"{w}\n\n" for w in warnings) + table_markdown(rows, metrics, failures)
    files = [out / "report.md", out / "report.tex", out / "report.csv"]
    files[0].write_text(md)
    files[1].write_text(to_latex(rows, metrics))
    write_csv(rows, files[2])
    if plots:
        files.append(plot_val_curves(_val_curves(groups, "val/wer"), out / "val_wer.png"))
        columns = by if by is not None else _metadata_columns(runs)
        if by is None and len(_test_sets([r for r in runs if r.ok])) > 1 and "set" not in columns:
            columns = [*columns, "set"]
        files += [plot_wer_by(_wer_by(groups, c), c, out / f"wer_by_{c}.png") for c in columns]
    files = [f for f in files if f is not None]
    return {"rows": rows, "markdown": md, "files": files, "groups": groups, "warnings": warnings}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bootstrap"]:
        return _bootstrap_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m asr_lightning.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("paths", nargs="+", help="run dirs and/or sweep dirs (searched recursively)")
    parser.add_argument("--out", default=None, help="output folder (default: <the one dir given>/report)")
    parser.add_argument("--metrics", nargs="+", default=None, help=f"default: those of {' '.join(DEFAULT_METRICS)} "
                        "that the runs have; with several test sets, test/<set>/wer and test/<set>/cer per set "
                        "replace test/wer and test/cer")  # fmt: skip
    ignore_help = "override keys (globs) that do not define a setting; seed is what runs average over"
    parser.add_argument("--ignore", nargs="*", default=list(DEFAULT_IGNORE), help=ignore_help)
    parser.add_argument("--by", nargs="*", default=None, help="metadata columns for WER bar charts (default: all, "
                        "and set when the runs have several test sets)")  # fmt: skip
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = report(args.paths, args.out, args.metrics, args.ignore, args.by, not args.no_plots)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    print(result["markdown"])
    for w in result["warnings"]:
        print(w, file=sys.stderr)
    for f in result["files"]:
        print(f"wrote {f}", file=sys.stderr)


def _bootstrap_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m asr_lightning.report bootstrap",
                                     description="Paired bootstrap test of the test-WER difference B - A.")  # fmt: skip
    parser.add_argument("a", help="system A: a run dir or a predictions JSONL")
    parser.add_argument("b", help="system B: a run dir or a predictions JSONL")
    parser.add_argument("--n", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="test", help="predictions/<split>.jsonl of a run dir")
    set_help = "compare only the rows of this evaluation set (`set` field); default: A's first, when rows have sets"
    parser.add_argument("--set", dest="eval_set", default=None, help=set_help)
    args = parser.parse_args(argv)
    if args.n < 1:
        raise SystemExit(f"error: --n {args.n}: the number of bootstrap resamples must be at least 1")
    try:
        a, b = (_read_predictions(p, args.split) for p in (args.a, args.b))
        name = args.eval_set
        if name is None and (default := _default_set([(args.a, a), (args.b, b)], args.split)) is not None:
            name, why = default
            print(f"set {name!r} ({why}); --set chooses another", file=sys.stderr)
        if name is not None:
            asked = args.eval_set is not None
            a, b = (_rows_of_set(rows, name, path, asked) for path, rows in ((args.a, a), (args.b, b)))
        result = paired_bootstrap(a, b, args.n, args.seed)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    if name is not None:
        result = {"set": name, **result}
    print(json.dumps(result, indent=1))
    print(
        f"WER A {result['wer_a']:.4f}, B {result['wer_b']:.4f}: B - A = {result['diff']:+.4f} "
        f"(95% CI [{result['ci_low']:+.4f}, {result['ci_high']:+.4f}]), p = {result['p_value']:.4f} "
        f"over {result['n_utterances']} utterances" + (f" of {name}" if name is not None else ""),
        file=sys.stderr,
    )


# ---------------------------------------------------------------- helpers


def _has_result(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").exists() or (run_dir / "failed.json").exists()


def _read_run(run_dir: Path) -> Run:
    """A run as its files left it; an unreadable metrics.json or failed.json makes it `unreadable`, naming it."""
    docs: dict[str, Any] = {}
    for name in ("metrics.json", "failed.json"):
        path = run_dir / name
        if not path.exists() or (name == "failed.json" and docs.get("metrics.json")):
            continue  # a run that failed, then finished on resume, is complete
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            problem = "empty file" if path.stat().st_size == 0 else f"{type(err).__name__}: {err}"
            return Run(run_dir, run_overrides(run_dir), status="unreadable", problem=f"{path}: {problem}")
        if not isinstance(doc, dict):
            problem = f"{path}: holds a JSON {type(doc).__name__}, not an object"
            return Run(run_dir, run_overrides(run_dir), status="unreadable", problem=problem)
        docs[name] = doc
    metrics, failure = docs.get("metrics.json", {}), docs.get("failed.json")
    overrides = list(metrics.get("overrides") or (failure or {}).get("overrides") or run_overrides(run_dir))
    if metrics:
        return Run(run_dir, overrides, metrics)
    if failure is not None:
        return Run(run_dir, overrides, failure=failure, status="failed")
    return Run(run_dir, overrides, status="incomplete")


def _identity_key(run: Run) -> str | None:
    ident = data_identity(run)
    return None if ident is None else json.dumps(ident, sort_keys=True)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_metrics(runs: Sequence[Run], metrics: Sequence[str] | None) -> list[str]:
    """The metrics to tabulate; a requested one that no complete run has is an error (a typo, most often)."""
    ok = [r for r in runs if r.ok]
    have = sorted({k for r in ok for k, v in r.metrics.items() if _is_number(v) and k != "seed"})
    if metrics is None:
        sets = _test_sets(ok)
        if len(sets) > 1:  # test/<name> of the first set becomes test/<set>/<name> for every set
            per_set = [f"test/{s}/{m.split('/', 1)[1]}" for s in sets for m in DEFAULT_METRICS if m.startswith("test/")]
            defaults = per_set + [m for m in DEFAULT_METRICS if not m.startswith("test/")]
            return [m for m in defaults if any(metric_value(r, m) is not None for r in ok)] or defaults
        return [m for m in DEFAULT_METRICS if m in have] or list(DEFAULT_METRICS)
    if not have:  # no complete run: the report lists why, whatever was asked
        return list(metrics)
    for m in metrics:
        if not any(metric_value(r, m) is not None for r in ok):
            close = difflib.get_close_matches(m, have, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"no run has metric {m!r}{hint}; the runs have: {', '.join(have)}")
    return list(metrics)


def _test_sets(runs: Sequence[Run]) -> list[str]:
    """The test sets of the runs, each once, in the order the runs list them."""
    return list(dict.fromkeys(s for r in runs for s in eval_sets(r, "test")))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _failure_text(failure: dict[str, Any] | None) -> str:
    failure = failure or {}
    return f"{failure.get('error', 'error')}: {str(failure.get('message', ''))[:200]}"


def _read_predictions(path: str | Path, split: str = "test") -> list[dict[str, Any]]:
    p = Path(path)
    if p.is_dir():
        p = p / "predictions" / f"{split}.jsonl"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: pass a run dir with predictions/{split}.jsonl or a JSONL file")
    return read_jsonl(p)


def _default_set(systems: Sequence[tuple[str, list[dict[str, Any]]]], split: str) -> tuple[str, str] | None:
    """The set to compare when --set is not given, and why: of the first system whose rows have `set` fields, its
    first listed set of `split` (`eval_sets` in a run dir's metrics.json), else the first set in its rows."""
    for path, rows in systems:
        sets = _row_sets(rows)
        if not sets:
            continue
        metrics = Path(path) / "metrics.json"
        try:
            listed = (json.loads(metrics.read_text(encoding="utf-8")).get("eval_sets") or {}).get(split) or []
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            listed = []  # a predictions file, or a run dir whose metrics say nothing of sets: the rows tell
        if listed:
            return listed[0], f"the first {split} set of {metrics}"
        return sets[0], f"the first set in the rows of {path}"
    return None


def _rows_of_set(rows: list[dict[str, Any]], name: str, path: str, required: bool) -> list[dict[str, Any]]:
    """The rows of set `name`; rows without `set` fields are all one set: an error when the set was asked for."""
    sets = _row_sets(rows)
    if not sets:
        if required:
            raise ValueError(f"--set {name}: the predictions of {path} have no sets (no `set` field in their rows)")
        return rows
    if name not in sets:
        raise ValueError(f"no rows of set {name!r} in the predictions of {path}; they hold the sets {', '.join(sets)}")
    return [r for r in rows if r.get("set") == name]


def _row_sets(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r["set"]) for r in rows if r.get("set") is not None))


def _wer_by(groups: dict[str, list[Run]], column: str) -> dict[str, dict[str, list[float]]]:
    """setting -> value of `column` -> the test WER of each seed's run, for `plot_wer_by`."""
    wer: dict[str, dict[str, list[float]]] = {}
    for label, runs in groups.items():
        for r in runs:
            stats = _breakdown(r, column) if r.ok else {}
            for value, s in stats.items():
                wer.setdefault(label, {}).setdefault(value, []).append(s["wer"])
    return wer


def _breakdown(run: Run, column: str) -> dict[str, dict[str, Any]]:
    """Test WER per value of `column`: from the run's own analysis when it has one, else from its predictions."""
    stored = run.dir / "analysis" / "test.json"
    if stored.exists():
        return json.loads(stored.read_text()).get(f"by_{column}", {})
    preds = run.dir / "predictions" / "test.jsonl"
    rows = _read_predictions(preds) if preds.exists() else []
    return error_analysis(rows, [column])[f"by_{column}"] if rows and column in rows[0] else {}


def _val_curves(groups: dict[str, list[Run]], metric: str) -> dict[str, list[dict[int, float]]]:
    """setting -> the `metric` curve of each seed's run that logged one, for `plot_val_curves`."""
    return {label: [c for r in runs if r.ok and (c := _curve(r.dir, metric))] for label, runs in groups.items()}


def _curve(run_dir: Path, metric: str) -> dict[int, float]:
    """step -> value from the run's CSVLogger file (logger=csv or many)."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.exists():
        return {}
    with path.open() as f:
        return {int(r["step"]): float(r[metric]) for r in csv.DictReader(f) if r.get(metric) not in (None, "")}


def _metadata_columns(runs: Sequence[Run]) -> list[str]:
    for r in runs:
        cols = r.metrics.get("metadata_columns")
        if cols is not None:
            return list(cols)
    return []


def _ignored(override: str, ignore: Sequence[str]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(override_key(override), pat) for pat in ignore)


def _column_groups(metrics: Sequence[str]) -> list[tuple[str | None, list[str]]]:
    """Consecutive metrics of one set (`test/<set>/wer`, `test/<set>/cer`) as (set, metrics); any other metric
    alone as (None, [metric])."""
    out: list[tuple[str | None, list[str]]] = []
    for m in metrics:
        key = _set_of(m)
        if key is not None and out and _set_of(out[-1][1][-1]) == key:
            out[-1][1].append(m)
        else:
            out.append((key[1] if key else None, [m]))
    return out


def _set_of(metric: str) -> tuple[str, str] | None:
    """(prefix, set) of a per-set metric such as `test/test-other/wer`; None for any other metric."""
    parts = metric.split("/")
    return (parts[0], parts[1]) if len(parts) == 3 and parts[0] in ROLES else None


def _short(metric: str) -> str:
    name = metric.rsplit("/", 1)[-1]
    return name.upper() if name in ("wer", "cer") else name


def _cell(c: dict[str, Any], metric: str, pm: str) -> str:
    half = "" if math.isnan(c["ci_half"]) else f"{pm}{_fmt(c['ci_half'], metric)}"
    return f"{_fmt(c['mean'], metric)}{half}"


def _fmt(x: float, metric: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.1f}" if metric.endswith("_s") else f"{x:.4f}"


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def _tex(s: str) -> str:
    return "".join(_TEX_SPECIAL.get(c, c) for c in s)


if __name__ == "__main__":
    main()
