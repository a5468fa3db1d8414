# python -m asr_lightning.report logs/train/multiruns/<sweep>   (and predict.py tune_lm=true: the LM grid heatmap)
"""Figures, written to files only: matplotlib set up headless once here, for every plot of the package.

The plots take numbers, not run dirs: whoever reads the runs (report.py) gathers what is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def plot_val_curves(
    curves: Mapping[str, Sequence[Mapping[int, float]]], path: Path, metric: str = "val/wer"
) -> Path | None:
    """`metric` against step per setting: mean over seeds, band = ±1 std (steps all seeds share).

    Args:
        curves: setting -> one `{step: value}` curve per seed; settings without curves are left out.
        path: the image file.
        metric: the y-axis label and title.

    Returns:
        `path`, or None when there is no curve to draw (nothing is written).
    """
    curves = {label: list(cs) for label, cs in curves.items() if cs}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, per_seed in curves.items():
        steps = sorted(set.intersection(*(set(c) for c in per_seed)))
        y = np.array([[c[s] for s in steps] for c in per_seed])  # (seeds, steps)
        mean = y.mean(0)
        (line,) = ax.plot(steps, mean, marker="o", ms=3, label=f"{label} (n={len(per_seed)})")
        if len(per_seed) > 1:
            std = y.std(0, ddof=1)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set(xlabel="step", ylabel=metric, title=f"{metric} (mean ± 1 std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_wer_by(wer: Mapping[str, Mapping[str, Sequence[float]]], column: str, path: Path) -> Path | None:
    """Test WER per value of a metadata column, a bar per setting (mean over seeds, error bar = std).

    Args:
        wer: setting -> column value -> the test WER of each seed.
        column: the metadata column (axis label and title).
        path: the image file.

    Returns:
        `path`, or None when there is nothing to draw (nothing is written).
    """
    if not wer:
        return None
    plt = _pyplot()
    values = sorted({v for d in wer.values() for v in d}, key=lambda v: (len(v), v))
    width = 0.8 / len(wer)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(values) * len(wer) + 2), 4), dpi=120)
    x = np.arange(len(values))
    for i, (label, d) in enumerate(wer.items()):
        means = [np.mean(d[v]) if v in d else np.nan for v in values]
        errs = [np.std(d[v], ddof=1) if len(d.get(v, [])) > 1 else 0 for v in values]
        ax.bar(x + (i - (len(wer) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=label)
    ax.set_xticks(x, values, rotation=45 if len(values) > 6 else 0, ha="right" if len(values) > 6 else "center")
    ax.set(xlabel=column, ylabel="test WER", title=f"Test WER by {column} (mean over seeds, bar = 1 std)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_grid(grid: Mapping[str, Any], path: str | Path) -> Path:
    """A heatmap of `decode.grid_search`'s WER over alpha (rows) and beta (columns), the best setting in red."""
    plt = _pyplot()
    alphas = sorted({r["alpha"] for r in grid["results"]})
    betas = sorted({r["beta"] for r in grid["results"]})
    wer = {(r["alpha"], r["beta"]): r["wer"] for r in grid["results"]}
    best = (grid["best"]["alpha"], grid["best"]["beta"])
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(betas), 1.2 + 0.5 * len(alphas)), dpi=120)
    image = ax.imshow([[wer[a, b] for b in betas] for a in alphas], cmap="viridis_r", aspect="auto")
    low, high = min(wer.values()), max(wer.values())
    for y, a in enumerate(alphas):
        for x, b in enumerate(betas):
            dark = high > low and (wer[a, b] - low) / (high - low) > 0.5  # viridis_r: high WER is dark
            style = {"color": "red", "weight": "bold"} if (a, b) == best else {"color": "white" if dark else "black"}
            ax.text(x, y, f"{wer[a, b]:.3f}", ha="center", va="center", fontsize=8, **style)
    ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
    ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set(xlabel="beta (word bonus)", ylabel="alpha (LM weight)", title=f"WER on {grid.get('utterances', '?')} clips")
    fig.colorbar(image, ax=ax, label="WER")
    return _save(fig, Path(path))


def _pyplot() -> ModuleType:
    # imported on first use: matplotlib is slow to import and only plotting needs it
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return path
