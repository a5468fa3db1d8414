# python -m bench.data_scale --hours 1,4,16 --out bench/results/data_scale_dev-cpu.json   (CPU smoke: --smoke)
"""The data module at 1, 4 and 16 audio hours: the index-only pipeline (audio decoded in the workers) against the
old one (float32 features stored in the datasets cache, commit 762a558).

Each corpus is an audiofolder made by repeating the committed demo clips (`data/demo/audio`, 8 kHz FLAC,
0.8-2.2 s) under hard links, so 16 h costs no disk; every row has its own path and id. The 600 underlying
files stay in the page cache, so decoding is measured without disk reads.

Measured, for both pipelines unless said, each in a fresh subprocess (imports not timed):
- `setup()` seconds per audio hour with an empty cache (first) and again on the same cache (cached); for the new
  pipeline also with `validate_audio=False` (headers only);
- the datasets cache directory's bytes per audio hour after the first setup (the whole folder: the CSV's
  Arrow copy, the index, for the old pipeline the features), beside the source FLAC bytes per hour;
- the setup process's peak RSS (`ru_maxrss`; the largest `datasets.map` worker's apart);
- new pipeline only: the time from `train_dataloader()` to its first batch (training settings: augmentation
  on, the most workers), and loader throughput: `train_dataloader()` (length-grouped batches of `--batch-size`
  clips) with 1 and 2 workers, in audio-seconds delivered per wall second per worker after the first batch,
  without augmentation and with speed perturbation [0.9, 1.0, 1.1] + noise on every clip (a generated noise
  folder) + gain. Audio-seconds are those of the batches (after speed perturbation). Beside it, each step's
  milliseconds per clip in one process, to show what a worker spends its time on;
- streaming (`data.streaming=true`, once the data module has it): setup and the time to its first batch, on
  the same rows laid out in train/validation/test folders (streaming needs the source's own splits).

The old package is extracted from git (`git archive <commit> src`) into the work folder and imported there
through PYTHONPATH; `--old-commit none` skips it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
OLD_COMMIT = "762a558"  # the last commit that stored float32 features in the cache
AUGMENT = {"speed_perturb": [0.9, 1.0, 1.1], "noise_prob": 1.0, "snr_db": [10.0, 30.0], "gain_db": [-6.0, 6.0]}
TARGETS = {"cache_mb_per_hour": 10.0, "loader_plain": 3000.0, "loader_augmented": 1000.0}
MB = 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", default="1,4,16", help="corpus sizes in audio hours")
    parser.add_argument("--workers", default="1,2", help="DataLoader workers of the throughput runs")
    parser.add_argument("--batches", type=int, default=300, help="batches per throughput run (after the first)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-proc", type=int, default=2, help="setup's `datasets.map` processes")
    parser.add_argument("--old-commit", default=OLD_COMMIT, help="commit of the old pipeline; `none` to skip it")
    parser.add_argument("--smoke", action="store_true", help="one corpus of 2 minutes, 1 worker, 3 batches (CI)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="corpora and caches (default: a temp folder)")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker.read_text())
        Path(spec["result"]).write_text(json.dumps(measure(spec)))
        return
    if args.smoke:
        args.hours, args.workers, args.batches = str(2 / 60), "1", 3
    command = "python -m bench.data_scale " + shlex.join(sys.argv[1:])
    work = args.workdir or Path(tempfile.mkdtemp(prefix="data_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    noise_dir = make_noise(work / "noise")
    old_src = old_package(args.old_commit, work / "old")
    results: dict[str, Any] = {
        "command": command, "machine": machine(), "versions": versions(), "new_commit": checkout(),
        "old_commit": args.old_commit,
        "settings": {"batch_size": args.batch_size, "batches": args.batches, "num_proc": args.num_proc,
                     "augment": AUGMENT, "noise_dir": "generated: 4 x 20 s of 16 kHz noise"},
        "targets": TARGETS, "corpora": [],
    }  # fmt: skip
    loaders = {"workers": [int(w) for w in args.workers.split(",")], "batches": args.batches,
               "batch_size": args.batch_size, "noise_dir": str(noise_dir)}  # fmt: skip
    streaming = has_streaming()
    for hours in map(float, args.hours.split(",")):
        corpus = make_corpus(work / f"corpus_{hours:g}h", hours)
        print(f"corpus {hours:g} h: {corpus['clips']} clips, {corpus['hours']:.3f} h", file=sys.stderr, flush=True)
        results["corpora"].append(measure_corpus(corpus, work, args.num_proc, loaders, old_src, streaming))
    results["summary"] = summary(results)
    print(to_markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    if args.workdir is None:
        shutil.rmtree(work)


def has_streaming() -> bool:
    """Whether the data module (this checkout's) has a streaming mode to measure."""
    import inspect

    from asr_lightning.data import ASRDataModule

    return "streaming" in inspect.signature(ASRDataModule).parameters


def measure_corpus(
    corpus: dict[str, Any], work: Path, num_proc: int, loaders: dict[str, Any], old_src: Path | str, streaming: bool
) -> dict[str, Any]:
    """Both pipelines' setups (first, cached; the new one's headers-only), the new one's loaders and, if there is
    one, its streaming mode's first batch, on one corpus."""
    base = {"data_dir": corpus["dir"], "hours": corpus["hours"], "num_proc": num_proc}
    entry: dict[str, Any] = {"corpus": corpus, "new": {}, "old": {}}
    tag = f"{corpus['hours']:.3f}h"
    new, cache = entry["new"], work / f"cache_new_{tag}"
    new["setup_first"] = run_worker({**base, "pipeline": "new", "cache_dir": str(cache)}, work)
    new["cache_bytes"] = dir_bytes(cache)
    new["setup_cached"] = run_worker({**base, "pipeline": "new", "cache_dir": str(cache), "loaders": loaders}, work)
    new["cache_bytes_after_cached"] = dir_bytes(cache)
    shutil.rmtree(cache)
    headers = work / f"cache_headers_{tag}"
    new["setup_header_only"] = run_worker(
        {**base, "pipeline": "new", "cache_dir": str(headers), "validate_audio": False}, work
    )
    shutil.rmtree(headers)
    if isinstance(old_src, Path):
        old, cache = entry["old"], work / f"cache_old_{tag}"
        spec = {**base, "pipeline": "old", "cache_dir": str(cache), "src": str(old_src)}
        old["setup_first"] = run_worker(spec, work)
        old["cache_bytes"] = dir_bytes(cache)
        old["setup_cached"] = run_worker(spec, work)
        old["cache_bytes_after_cached"] = dir_bytes(cache)
        shutil.rmtree(cache)  # the old cache is 232 MB per audio hour
    else:
        entry["old"] = {"not_measured": old_src}
    entry["streaming"] = {"measured": False, "note": "not measured (no streaming mode yet)"}
    if streaming:  # streaming needs the source's own splits: the same rows in train/validation/test folders
        folder = make_corpus(work / f"corpus_{tag}_splits", corpus["hours"], split_folders=True)["dir"]
        cache = work / f"cache_streaming_{tag}"
        spec = {**base, "data_dir": folder, "pipeline": "new", "cache_dir": str(cache), "streaming": True,
                "loaders": loaders}  # fmt: skip
        try:
            entry["streaming"] = {"measured": True, **run_worker(spec, work)}
        except RuntimeError as err:  # streaming is new: record why rather than lose the other figures
            entry["streaming"] = {"measured": False, "error": str(err)[-2000:]}
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(folder)
    for part in (entry["new"], entry["old"]):
        if "cache_bytes" in part:
            part["cache_mb_per_hour"] = part["cache_bytes"] / MB / corpus["hours"]
    return entry


def make_noise(folder: Path, files: int = 4, seconds: float = 20.0, sampling_rate: int = 16000) -> Path:
    """A small noise folder for `Augmenter(noise_dir=...)`: low-passed white noise, 16-bit WAV."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(files):
        noise = np.convolve(rng.standard_normal(int(seconds * sampling_rate)), np.ones(4 + 4 * i) / (4 + 4 * i), "same")
        sf.write(folder / f"noise{i}.wav", 0.3 * noise / np.abs(noise).max(), sampling_rate, subtype="PCM_16")
    return folder


def old_package(commit: str, folder: Path) -> Path | str:
    """The old `src/` extracted from git, or why it could not be (then the old pipeline is not measured)."""
    if commit.lower() == "none":
        return "skipped (--old-commit none)"
    proc = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True)
    if proc.returncode != 0:
        return f"git archive {commit} failed: {proc.stderr.decode(errors='replace').strip()[:300]}"
    shutil.rmtree(folder, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def make_corpus(out: Path, hours: float, split_folders: bool = False) -> dict[str, Any]:
    """An audiofolder of `hours` of audio: the demo clips repeated as hard links (symlinks across devices).

    With `split_folders`, every tenth clip goes to `validation/`, every fifth to `test/` (the data module's
    default fractions), the rest to `train/`, each folder with its own `metadata.csv`.
    """
    with (DEMO / "metadata.csv").open(newline="") as f:
        demo = list(csv.DictReader(f))
    seconds = [sf.info(DEMO / r["file_name"]).duration for r in demo]
    sizes = [(DEMO / r["file_name"]).stat().st_size for r in demo]
    shutil.rmtree(out, ignore_errors=True)
    splits: dict[str, list[dict[str, str]]] = {}
    clips, total, source_bytes = 0, 0.0, 0
    while total < hours * 3600:
        rep, k = divmod(clips, len(demo))
        split = ("validation", "test", "test", *["train"] * 7)[clips % 10] if split_folders else ""
        src = DEMO / demo[k]["file_name"]
        name = f"audio/r{rep:03d}/{src.name}"
        (out / split / name).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, out / split / name)
        except OSError:
            os.symlink(src, out / split / name)
        row = {"file_name": name, "id": f"r{rep:03d}-{demo[k]['id']}", "transcription": demo[k]["transcription"],
               "speaker": demo[k]["speaker"]}  # fmt: skip
        splits.setdefault(split, []).append(row)
        clips += 1
        total += seconds[k]
        source_bytes += sizes[k]
    for split, rows in splits.items():
        with (out / split / "metadata.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return {"dir": str(out), "clips": clips, "hours": total / 3600, "source_bytes": source_bytes,
            "source_mb_per_hour": source_bytes / MB / (total / 3600)}  # fmt: skip


def run_worker(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """`measure(spec)` in a fresh interpreter, importing the pipeline's own package (old or new)."""
    src = Path(spec.get("src", ROOT / "src"))
    spec = {**spec, "result": str(work / "result.json")}
    (work / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(src), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    what = f"{spec['pipeline']} {spec['hours']:.3f} h " + (
        "streaming" if spec.get("streaming") else "loaders" if "loaders" in spec else "setup"
    )
    print(f"  {what} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(work / "spec.json")],
        cwd=src.parent, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(Path(spec["result"]).read_text())


def dir_bytes(folder: Path) -> int:
    """Bytes of every file under `folder` (the whole datasets cache: Arrow files, lock and info files)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file())


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One setup (and for `loaders`, the loader runs after it), in this process."""
    t0 = time.perf_counter()
    import asr_lightning
    from asr_lightning.data import ASRDataModule

    out: dict[str, Any] = {"package": asr_lightning.__file__, "import_s": time.perf_counter() - t0,
                           "loadavg_before": os.getloadavg()}  # fmt: skip
    kwargs = data_kwargs(spec)
    if "loaders" in spec:  # training settings, for `train_dataloader()`
        run = spec["loaders"]
        augment = {**AUGMENT, "noise_dir": run["noise_dir"]}
        kwargs |= {"augment": augment, "batch_size": run["batch_size"], "num_workers": max(run["workers"])}
    if spec.get("streaming"):
        kwargs["streaming"] = True
    start = time.perf_counter()
    dm = ASRDataModule(**kwargs)
    dm.setup()
    out["setup_s"] = time.perf_counter() - start
    out["setup_s_per_hour"] = out["setup_s"] / spec["hours"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux: KiB
    out["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / MB
    out["train_clips"] = len(dm.splits["train"])  # 0 when streamed
    if "loaders" in spec:
        out["first_batch_s"] = first_batch_seconds(dm)
        out["setup_to_first_batch_s"] = out["setup_s"] + out["first_batch_s"]
    if "loaders" in spec and not spec.get("streaming"):
        out["clip_ms"] = clip_costs(dm, spec["loaders"]["batch_size"] * 20)
        out["loaders"] = [
            loader_throughput(ASRDataModule, kwargs, w, augment, spec["loaders"]["batches"])
            for augment in (False, True)
            for w in spec["loaders"]["workers"]
        ]
    out["loadavg_after"] = os.getloadavg()
    return out


def data_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """Both pipelines' data module arguments; the new one's model geometry comes from `architecture`."""
    kwargs = {
        "dataset": "audiofolder", "data_dir": spec["data_dir"], "id_column": "id", "vocab": "train",
        "pretrained": None, "return_attention_mask": True, "min_duration_s": 0.5, "max_duration_s": 15.0,
        "num_proc": spec["num_proc"], "num_workers": 0, "cache_dir": spec["cache_dir"], "output_dir": None,
    }  # fmt: skip
    if spec["pipeline"] == "new":
        kwargs |= {"architecture": {"model_type": "wav2vec2"}, "validate_audio": spec.get("validate_audio", True)}
    return kwargs


def first_batch_seconds(dm: Any) -> float:
    """From `train_dataloader()` to its first batch: sampler, worker start, the first clips' decoding."""
    start = time.perf_counter()
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)
    seconds = time.perf_counter() - start
    del it, loader  # shuts the persistent workers down
    return seconds


def loader_throughput(
    module: type, kwargs: dict[str, Any], workers: int, augment: bool, batches: int
) -> dict[str, Any]:
    """Audio-seconds per wall second per worker of `train_dataloader()` (length-grouped batches of `batch_size`,
    as training reads them) over `batches` batches after the first; a data module of its own on the cached index."""
    kwargs = {**kwargs, "num_workers": workers, "augment": kwargs["augment"] if augment else None}
    dm = module(**kwargs)
    dm.setup()
    loader = dm.train_dataloader()
    rate, name = dm.feature_extractor.sampling_rate, dm.frontend.input_name
    start = time.perf_counter()
    audio_s, padded_s, done, first = 0.0, 0.0, -1, None
    while done < batches:  # epochs of a small corpus follow one another (persistent workers)
        for batch in loader:
            if first is None:
                first = time.perf_counter()
            else:
                audio_s += sum(batch["num_samples"]) / rate
                padded_s += batch[name].shape[0] * batch[name].shape[1] / rate
            done += 1
            if done == batches:
                break
    wall = time.perf_counter() - first
    del loader
    return {"workers": workers, "augment": augment, "batches": batches, "audio_s": audio_s, "wall_s": wall,
            "padding_efficiency": audio_s / padded_s, "first_batch_s": first - start,
            "audio_s_per_s_per_worker": audio_s / wall / workers}  # fmt: skip


def clip_costs(dm: Any, clips: int) -> dict[str, float]:
    """Milliseconds per clip of each step a worker does, in this process with one torch thread (as a DataLoader
    worker has); collated in length-sorted batches, as the sampler groups. `other` is what `dataset[i]` costs
    beyond `audio` (source row + decode + resample) and `features`: the index row, labels, the output dict."""
    import soxr
    import torch

    from asr_lightning.audio import audio_source

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ds, plain = dm.dataset("train", augment=True), dm.dataset("train", augment=False)
    picks = [int(i) for i in np.random.default_rng(0).choice(len(ds), size=min(clips, len(ds)), replace=False)]
    rows, source, column = dm.splits["train"]["row"], dm.sources["train"], dm.hparams.audio_column
    paths = {i: audio_source(source[int(rows[i])][column]) for i in picks}
    rate = plain.frontend.sampling_rate
    steps = ("decode", "resample", "audio", "augment", "features")
    ms = dict.fromkeys(steps, 0.0)
    audio_s = 0.0
    for i in picks:
        t = [time.perf_counter()]
        raw, sr = sf.read(paths[i], dtype="float32")
        t.append(time.perf_counter())
        soxr.resample(raw, sr, rate, quality="HQ")
        t.append(time.perf_counter())
        audio = plain.audio(i)  # the source row, decode, checks, mono, resample: as the workers call it
        t.append(time.perf_counter())
        augmented = ds.augmenter(audio, np.random.default_rng(i))
        t.append(time.perf_counter())
        plain.frontend.features(audio)
        t.append(time.perf_counter())
        for step, start, end in zip(steps, t, t[1:], strict=False):
            ms[step] += 1000 * (end - start)
        audio_s += len(audio) / rate
    del augmented
    items = {}
    for name, dataset, keys in (("getitem_plain", plain, picks), ("getitem_augmented", ds, [(0, i) for i in picks])):
        start = time.perf_counter()
        items[name] = [dataset[k] for k in keys]
        ms[name] = 1000 * (time.perf_counter() - start)
    batch = dm.hparams.batch_size
    ordered = sorted(items["getitem_plain"], key=lambda e: e["input_length"])
    start = time.perf_counter()
    for k in range(0, len(ordered), batch):
        dm.collator(ordered[k : k + batch])
    ms["collate"] = 1000 * (time.perf_counter() - start)
    torch.set_num_threads(threads)
    out = {k: v / len(picks) for k, v in ms.items()}
    out["other"] = out["getitem_plain"] - out["audio"] - out["features"]
    out["clip_s"] = audio_s / len(picks)
    return out


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The targets, checked on every corpus size: the worst case of each."""
    corpora = results["corpora"]
    cache = [c["new"]["cache_mb_per_hour"] for c in corpora]
    loaders = [r for c in corpora for r in c["new"]["setup_cached"]["loaders"]]
    plain = [r["audio_s_per_s_per_worker"] for r in loaders if not r["augment"]]
    augmented = [r["audio_s_per_s_per_worker"] for r in loaders if r["augment"]]
    return {
        "cache_mb_per_hour_max": max(cache), "cache_flat_max_over_min": max(cache) / min(cache),
        "cache_met": max(cache) <= TARGETS["cache_mb_per_hour"],
        "loader_plain_min": min(plain), "loader_plain_met": min(plain) >= TARGETS["loader_plain"],
        "loader_augmented_min": min(augmented), "loader_augmented_met": min(augmented) >= TARGETS["loader_augmented"],
        "loadavg_end": os.getloadavg(),
    }  # fmt: skip


def machine() -> dict[str, Any]:
    """CPU model, cores and RAM from /proc (Linux), for the results' header."""
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name")), "")
    mem = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    kib = next((int(line.split()[1]) for line in mem.splitlines() if line.startswith("MemTotal")), 0)
    cores = os.cpu_count()
    model = model or platform.processor() or platform.machine()
    return {"cpu": model, "cores": cores, "ram_gib": round(kib / 2**20, 1), "platform": platform.platform(),
            "device": f"CPU ({model}, {cores} cores, {kib / 2**20:.1f} GiB RAM)"}  # fmt: skip


def checkout() -> str:
    """The commit the new pipeline ran from, `+ uncommitted changes in src/` when there are some."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" + uncommitted changes in src/" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    import datasets
    import soxr
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "datasets": datasets.__version__,
            "soundfile": sf.__version__, "soxr": soxr.__version__, "numpy": np.__version__}  # fmt: skip


def to_markdown(results: dict[str, Any]) -> str:
    def fmt(part: dict[str, Any], key: str, spec: str, inner: str | None = None) -> str:
        value = part.get(inner, {}).get(key) if inner else part.get(key)
        return "-" if value is None else format(value, spec)

    lines = [
        f"{results['machine']['device']}; `{results['command']}`",
        "",
        "| corpus | pipeline | setup s/h, first | cached | headers only | cache MB/h | source MB/h | peak RSS MB, "
        "first | cached |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results["corpora"]:
        name = f"{c['corpus']['hours']:.2f} h, {c['corpus']['clips']} clips"
        for pipeline in ("new", "old"):
            p = c[pipeline]
            if "not_measured" in p:
                lines.append(f"| {name} | {pipeline} | {p['not_measured']} |||||||")
                continue
            lines.append(
                f"| {name} | {pipeline} | {fmt(p, 'setup_s_per_hour', '.2f', 'setup_first')} | "
                f"{fmt(p, 'setup_s_per_hour', '.2f', 'setup_cached')} | "
                f"{fmt(p, 'setup_s_per_hour', '.2f', 'setup_header_only')} | {p['cache_mb_per_hour']:.2f} | "
                f"{c['corpus']['source_mb_per_hour']:.1f} | {fmt(p, 'peak_rss_mb', '.0f', 'setup_first')} | "
                f"{fmt(p, 'peak_rss_mb', '.0f', 'setup_cached')} |"
            )
    lines += [
        "",
        "| corpus | workers | augmentation | audio-s/s per worker | padding efficiency | first batch s |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for c in results["corpora"]:
        cached = c["new"]["setup_cached"]
        for r in cached["loaders"]:
            aug = "speed + noise + gain" if r["augment"] else "none"
            lines.append(
                f"| {c['corpus']['hours']:.2f} h | {r['workers']} | {aug} | {r['audio_s_per_s_per_worker']:.0f} | "
                f"{r['padding_efficiency']:.3f} | {r['first_batch_s']:.2f} |"
            )
    workers = max(r["workers"] for r in results["corpora"][0]["new"]["setup_cached"]["loaders"])
    lines += [
        "",
        f"| corpus | to the first augmented batch ({workers} workers), map-style: first setup + `train_dataloader()` | "
        "streaming: setup (indexes validation + test) + first batch |",
        "|---|---:|---:|",
    ]
    for c in results["corpora"]:
        new, st = c["new"], c["streaming"]
        map_style = f"{new['setup_first']['setup_s']:.1f} + {new['setup_cached']['first_batch_s']:.2f} s"
        if st["measured"]:
            stream = f"{st['setup_s']:.1f} + {st['first_batch_s']:.2f} s"
        else:
            stream = st.get("note") or "failed: " + st["error"].strip().splitlines()[-1][:120]
        lines.append(f"| {c['corpus']['hours']:.2f} h | {map_style} | {stream} |")
    s, t = results["summary"], results["targets"]
    lines += [
        "",
        f"- cache <= {t['cache_mb_per_hour']:g} MB/h: worst {s['cache_mb_per_hour_max']:.2f} MB/h, "
        f"max/min over sizes {s['cache_flat_max_over_min']:.2f}: {'met' if s['cache_met'] else 'missed'}",
        f"- loader >= {t['loader_plain']:g} audio-s/s per worker, plain: worst {s['loader_plain_min']:.0f}: "
        f"{'met' if s['loader_plain_met'] else 'missed'}",
        f"- loader >= {t['loader_augmented']:g} audio-s/s per worker, augmented: worst "
        f"{s['loader_augmented_min']:.0f}: {'met' if s['loader_augmented_met'] else 'missed'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
