# python -m bench.data_speed --minutes 60   (CPU smoke: --smoke)
"""Seconds to preprocess one hour of 8 kHz phone audio (MInDS-14's format: 16-bit PCM WAV, 2-15 s clips).

Two measurements, both reported per audio hour:
- the per-clip pipeline alone, in one process: decode (soundfile), resample 8 -> 16 kHz (soxr HQ) and
  normalise to zero mean / unit variance (as the feature extractor), with each stage's share;
- the data module's whole `setup()` on an audiofolder of those files with a fresh cache, at
  `num_proc` 1 and 2: the per-clip pipeline plus transcript normalisation, tokenising, the CTC
  alignability check, and writing the Arrow cache.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile as sf
import soxr
from transformers import AutoConfig

from asr_lightning.audio import load_audio
from asr_lightning.data import ASRDataModule
from asr_lightning.frontend import Frontend
from asr_lightning.text import load_feature_extractor
from bench.corpus import make_corpus
from bench.train_speed import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--num-proc", default="1,2", help="data module runs, by num_proc")
    parser.add_argument("--smoke", action="store_true", help="2 minutes of audio (CI)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.minutes = 2.0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="data_speed_"))
    corpus = make_corpus(work / "corpus", args.minutes, sampling_rate=8000)
    hours = corpus["hours"]
    files = sorted((work / "corpus").glob("*.wav"))
    results: dict[str, Any] = {"machine": machine(), "corpus": corpus, "per_clip": stages(files, hours)}
    results["data_module"] = {}
    for n in map(int, args.num_proc.split(",")):
        dm = ASRDataModule(
            dataset="audiofolder", data_dir=str(work / "corpus"), id_column="id", vocab="train",
            val_fraction=0.0, test_fraction=0.0, min_duration_s=0.0, max_duration_s=20.0, num_proc=n,
            cache_dir=str(work / f"cache_{n}"),
        )  # fmt: skip
        start = time.perf_counter()
        dm.setup()
        results["data_module"][f"num_proc={n}"] = (time.perf_counter() - start) / hours
    print(json.dumps(results, indent=1))
    print(to_markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


def stages(files: list[Path], hours: float) -> dict[str, float]:
    """Seconds per audio hour of each per-clip stage, and of `load_audio` + normalisation together."""
    config = AutoConfig.for_model("wav2vec2")  # wav2vec2-base's architecture, as the data module's default
    # its feature extractor (zero mean, unit variance), called as the data module's worker-side transform calls it
    normalise = Frontend(config, load_feature_extractor(None, config)).features

    times = {"decode": 0.0, "resample": 0.0, "normalise": 0.0}
    for f in files:
        t0 = time.perf_counter()
        audio, sr = sf.read(f, dtype="float32")
        t1 = time.perf_counter()
        audio = soxr.resample(audio, sr, 16000, quality="HQ")
        t2 = time.perf_counter()
        normalise(audio)
        t3 = time.perf_counter()
        times["decode"] += t1 - t0
        times["resample"] += t2 - t1
        times["normalise"] += t3 - t2
    start = time.perf_counter()
    for f in files:
        normalise(load_audio(f, 16000))
    total = time.perf_counter() - start
    return {**{k: v / hours for k, v in times.items()}, "pipeline": total / hours}


def to_markdown(results: dict[str, Any]) -> str:
    pc = results["per_clip"]
    lines = [
        f"{results['machine']['device']}; {results['corpus']['clips']} clips, {results['corpus']['hours']:.2f} h "
        "of 8 kHz 16-bit WAV",
        "",
        "| what | s per audio hour |",
        "|---|---:|",
        f"| decode + resample + normalise (one process) | {pc['pipeline']:.2f} |",
        f"| of which decode / resample / normalise | {pc['decode']:.2f} / {pc['resample']:.2f} / "
        f"{pc['normalise']:.2f} |",
    ]
    for name, value in results["data_module"].items():
        lines.append(f"| data module `setup()`, {name} (incl. tokenising, Arrow cache) | {value:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
