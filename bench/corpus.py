# python bench/corpus.py /tmp/bench_corpus --minutes 60 --sampling-rate 8000
"""A synthetic audiofolder with MInDS-14-like clip lengths (2-15 s) for the speed benchmarks.

Speed does not depend on what the audio says, so clips are band-limited noise (16-bit PCM WAV, as MInDS-14
ships) with random banking-words transcripts at a conversational ~2.5 words/s.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

WORDS = (
    "I WOULD LIKE TO CHECK MY ACCOUNT BALANCE PLEASE HOW DO I PAY A BILL CARD TRANSFER MONEY "
    "JOINT ACCOUNT ADDRESS CHANGE FREEZE LOST STOLEN DIRECT DEBIT CASH DEPOSIT ATM FEES BUSINESS LOAN"
).split()


def make_corpus(
    out: Path, minutes: float, sampling_rate: int = 16000, min_s: float = 2.0, max_s: float = 15.0, seed: int = 0
) -> dict[str, float]:
    """Write clips until `minutes` of audio, plus `metadata.csv`; returns clip count and hours."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows, total = [], 0.0
    while total < minutes * 60:
        seconds = float(rng.uniform(min_s, max_s))
        n = int(seconds * sampling_rate)
        audio = (0.1 * rng.standard_normal(n)).clip(-1, 1)
        name = f"clip{len(rows):05d}.wav"
        sf.write(out / name, audio, sampling_rate, subtype="PCM_16")
        words = rng.choice(WORDS, size=max(1, int(seconds * 2.5)))
        rows.append({"file_name": name, "id": name[:-4], "transcription": " ".join(words), "speaker": len(rows) % 20})
        total += n / sampling_rate
    with (out / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"clips": len(rows), "hours": total / 3600}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sampling-rate", type=int, default=16000)
    args = parser.parse_args()
    print(make_corpus(args.out, args.minutes, args.sampling_rate))
