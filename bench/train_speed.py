# python -m bench.train_speed --model base --minutes 120   (GPU: the comparison of the issue; CPU smoke: --smoke)
"""Training speed of three recipes over the same synthetic corpus and the same audio, in one process.

(a) guide: the Transformers ASR task guide's recipe on the HF `Trainer`, ported to the installed
    transformers and otherwise unchanged: its `prepare_dataset` and `DataCollatorCTCWithPadding`, batch 8 x 2
    accumulation, fp16, `group_by_length`, gradient checkpointing, whole model trained.
(b) ours: this project's default (`experiment=minds14`): 200 s duration-bucketed batches, bf16 (fp16 on
    older GPUs), frozen CNN, SDPA, fused AdamW, no gradient checkpointing.
(c) ours_guide: this project with the guide's exact settings (`experiment=minds14_seed`), which separates
    framework overhead (c vs a) from recipe choices (b vs c).

All on wav2vec2-base's architecture with random weights (speed does not depend on them) for one epoch of
the corpus. Throughput is real audio seconds per wall second between the end of optimizer step
`--warmup-steps` and the end of the epoch (GPU synchronised at both ends); MFU uses the model FLOPs of
that audio (`asr_lightning.throughput`) against the device's dense peak for the run's precision.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

import hydra  # noqa: E402
import lightning as L  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from lightning.fabric.utilities.throughput import get_available_flops  # noqa: E402
from omegaconf import OmegaConf, open_dict  # noqa: E402

from asr_lightning import launch  # noqa: E402
from asr_lightning.sources import load_audiofolder  # noqa: E402
from asr_lightning.throughput import clips_flops, flops_coefficients, trains_feature_encoder  # noqa: E402
from bench.corpus import make_corpus  # noqa: E402

TINY = ["model=wav2vec2_tiny", "data.return_attention_mask=true"]
VARIANTS = ("guide", "ours", "ours_guide")


@dataclass
class Timing:
    """Real clip lengths (samples) of every micro-batch in the order the model consumed them, and a window."""

    batches: list[list[int]]
    start_batch: int = 0
    t_start: float = 0.0
    t_end: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["base", "tiny"], default="base")
    parser.add_argument("--minutes", type=float, default=120.0, help="audio in the corpus (one epoch)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--warmup-steps", type=int, default=5, help="optimizer steps left out of the timing")
    parser.add_argument("--max-batch-seconds", type=float, default=None, help="(b)'s budget (default: the recipe's)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 4 minutes, small batches (CI)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: print only)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.model, args.minutes, args.warmup_steps, args.max_batch_seconds = "tiny", 4.0, 1, 40.0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="train_speed_"))
    corpus = make_corpus(work / "corpus", args.minutes, sampling_rate=16000)
    results: dict[str, Any] = {"corpus": corpus, "model": args.model, "machine": machine(), "variants": {}}
    for name in args.variants.split(","):
        torch.manual_seed(0)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        run = run_guide if name == "guide" else run_ours
        timing, info = run(name, work, args)
        results["variants"][name] = summarise(timing, info)
        print(name, json.dumps(results["variants"][name]), flush=True)
    v = results["variants"]
    if "guide" in v and "ours" in v and v["guide"]["audio_s_per_s"] and v["ours"]["audio_s_per_s"]:
        results["ours_over_guide"] = v["ours"]["audio_s_per_s"] / v["guide"]["audio_s_per_s"]
    print(to_markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


# ---------------------------------------------------------------- (a) the task guide on the HF Trainer


def run_guide(name: str, work: Path, args: argparse.Namespace) -> tuple[Timing, dict[str, Any]]:
    from transformers import AutoConfig, AutoModelForCTC, Trainer, TrainerCallback, TrainingArguments

    from asr_lightning.audio import load_audio
    from asr_lightning.text import build_processor, build_vocab

    ds = load_audiofolder(work / "corpus")["train"]
    return_mask = args.model == "tiny"
    fe = {
        "feature_size": 1,
        "sampling_rate": 16000,
        "padding_value": 0.0,
        "do_normalize": True,
        "return_attention_mask": return_mask,
    }  # fmt: skip  (facebook/wav2vec2-base's feature extractor)
    processor = build_processor(build_vocab(ds["transcription"]), fe)

    def prepare_dataset(batch: dict) -> dict:  # the guide's, with our decoder (datasets 5 needs torchcodec)
        audio = load_audio(batch["audio"]["path"], 16000)
        batch = processor(audio, sampling_rate=16000, text=batch["transcription"])
        batch["input_length"] = len(batch["input_values"][0])
        return batch

    ds = ds.map(prepare_dataset, remove_columns=ds.column_names, desc="guide: prepare_dataset")

    timing = Timing(batches=[])

    @dataclass
    class DataCollatorCTCWithPadding:  # the guide's
        processor: Any
        padding: bool | str = "longest"

        def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
            input_features = [{"input_values": feature["input_values"][0]} for feature in features]
            label_features = [{"input_ids": feature["labels"]} for feature in features]
            batch = self.processor.pad(input_features, padding=self.padding, return_tensors="pt")
            labels_batch = self.processor.pad(labels=label_features, padding=self.padding, return_tensors="pt")
            labels = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
            batch["labels"] = labels
            timing.batches.append([len(f["input_values"]) for f in input_features])  # bench bookkeeping
            return batch

    arch = OmegaConf.to_container(compose_ours(work, ["model=wav2vec2_tiny"]).model.architecture) if return_mask else {}
    arch.pop("model_type", None)  # the guide's model is wav2vec2
    config = AutoConfig.for_model("wav2vec2", **arch, ctc_loss_reduction="mean",
                                  pad_token_id=processor.tokenizer.pad_token_id,
                                  vocab_size=len(processor.tokenizer))  # fmt: skip
    model = AutoModelForCTC.from_config(config)  # offline: the guide's from_pretrained("facebook/wav2vec2-base", ...)
    cuda = torch.cuda.is_available()
    training_args = TrainingArguments(
        output_dir=str(work / "guide_out"),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        learning_rate=1e-5,
        warmup_steps=500,
        num_train_epochs=1,  # the guide: max_steps=2000; here one epoch, the same audio as (b) and (c)
        gradient_checkpointing=True,
        fp16=cuda,  # the guide's fp16; CPUs have no fp16 autocast in the Trainer
        train_sampling_strategy="group_by_length",  # transformers 5's name for the guide's group_by_length=True
        eval_strategy="no",  # the guide evaluates every 1000 steps: not part of training speed
        save_strategy="no",
        logging_steps=25,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not cuda,
    )
    forwards = count_forwards(model)

    class Clock(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):  # after each optimizer step
            if state.global_step == args.warmup_steps:
                synchronize()
                timing.t_start, timing.start_batch = time.perf_counter(), forwards[0]

        def on_train_end(self, args_, state, control, **kwargs):
            synchronize()
            timing.t_end = time.perf_counter()

    trainer = Trainer(
        model=model, args=training_args, train_dataset=ds, processing_class=processor,
        data_collator=DataCollatorCTCWithPadding(processor=processor, padding="longest"), callbacks=[Clock()],
    )  # fmt: skip
    trainer.train()
    timing.batches = timing.batches[: forwards[0]]  # a prefetched batch that never ran
    precision = "16-mixed" if cuda else "32-true"
    # the guide's input_values are nested ([array]), so the Trainer's LengthGroupedSampler sees length 1
    # for every clip and its length grouping is a no-op: the padding efficiency shows it
    grouped_lengths = sorted({len(x) for x in ds[:64]["input_values"]})
    return timing, {"model": model, "precision": precision, "steps": trainer.state.global_step,
                    "lengths_seen_by_group_by_length": grouped_lengths}  # fmt: skip


# ---------------------------------------------------------------- (b), (c) this project


def compose_ours(work: Path, overrides: list[str]):
    GlobalHydra.instance().clear()
    launch.register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(work / "run")
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def run_ours(name: str, work: Path, args: argparse.Namespace) -> tuple[Timing, dict[str, Any]]:
    experiment = "minds14" if name == "ours" else "minds14_seed"
    overrides = [
        f"experiment={experiment}", "data=audiofolder", f"data.data_dir={work / 'corpus'}", "data.id_column=id",
        "data.metadata_columns=[]", "data.vocab=train", "data.pretrained=null", "data.max_samples=null",
        "data.val_fraction=0.0", "data.test_fraction=0.0", "data.min_duration_s=0.0", "data.max_duration_s=20.0",
        f"data.cache_dir={work / 'cache'}", "data.num_proc=1", "model.pretrained=null",
        "trainer.max_steps=-1", "trainer.max_epochs=1", "+trainer.limit_val_batches=0",
        "+trainer.enable_checkpointing=false", "callbacks.progress_bar.refresh_rate=0",
    ]  # fmt: skip
    # random init: wav2vec2-base's architecture is AutoConfig.for_model("wav2vec2")'s defaults
    overrides += TINY if args.model == "tiny" else ["model.architecture={}"]
    if name == "ours" and args.max_batch_seconds:
        overrides.append(f"data.max_batch_seconds={args.max_batch_seconds}")
    if not torch.cuda.is_available():
        overrides += ["trainer.accelerator=cpu", "trainer.precision=32-true"]  # no fp16/bf16 autocast speed-up
    cfg = compose_ours(work, overrides)
    L.seed_everything(0)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    module = hydra.utils.instantiate(cfg.model, vocab=dm.vocab, feature_extractor=dm.feature_extractor.to_dict())
    timing = Timing(batches=[])
    forwards = count_forwards(module.model)

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            timing.batches.append(list(batch["num_samples"]))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == args.warmup_steps and not timing.t_start:
                synchronize()
                timing.t_start, timing.start_batch = time.perf_counter(), forwards[0]

        def on_train_end(self, trainer, pl_module):
            synchronize()
            timing.t_end = time.perf_counter()

    callbacks = [hydra.utils.instantiate(cfg.callbacks.throughput), Clock()]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    trainer.fit(module, datamodule=dm)
    return timing, {"model": module.model, "precision": str(trainer.precision), "steps": trainer.global_step}


# ---------------------------------------------------------------- measuring


def count_forwards(model: torch.nn.Module) -> list[int]:
    """A counter of top-level forward calls (gradient checkpointing re-runs layers, not this)."""
    counter = [0]

    def hook(*_: Any) -> None:
        counter[0] += 1

    model.register_forward_pre_hook(hook)
    return counter


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def summarise(timing: Timing, info: dict[str, Any]) -> dict[str, Any]:
    model = info["model"]
    trains_cnn = trains_feature_encoder(model)
    coefficients = flops_coefficients(model.config, train_feature_encoder=trains_cnn)
    window = timing.batches[timing.start_batch :]
    seconds = [n / 16000 for batch in window for n in batch]
    elapsed = timing.t_end - timing.t_start if window else None  # None: training ended within the warmup
    flops = clips_flops(coefficients, seconds)
    real = sum(sum(batch) for batch in timing.batches)
    padded = sum(len(batch) * max(batch) for batch in timing.batches)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(info["precision"], torch.float32)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = get_available_flops(device, dtype)
    return {
        "precision": info["precision"],
        "optimizer_steps": info["steps"],
        "timed_batches": len(window),
        "timed_audio_s": round(sum(seconds), 1),
        "audio_s_per_s": sum(seconds) / elapsed if elapsed else None,
        "padding_efficiency": real / padded,
        "model_tflops_per_s": flops / elapsed / 1e12 if elapsed else None,
        "gflop_per_audio_s": flops / sum(seconds) / 1e9 if seconds else None,  # of the timed clips
        "mfu": flops / elapsed / peak if peak and elapsed else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "feature_encoder_trained": trains_cnn,
        "gradient_checkpointing": bool(getattr(model, "is_gradient_checkpointing", False)),
        **{k: v for k, v in info.items() if k not in ("model", "precision", "steps")},
    }


def machine() -> dict[str, Any]:
    import lightning
    import transformers

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "device": gpu or f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
        "lightning": lightning.__version__, "python": platform.python_version(),
    }  # fmt: skip


def to_markdown(results: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    lines = [
        f"{results['machine']['device']}; model {results['model']}; corpus {results['corpus']['clips']} clips, "
        f"{results['corpus']['hours']:.2f} h",
        "",
        "| recipe | precision | audio s/s | padding eff. | model TFLOP/s | MFU | peak mem GiB | steps |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["variants"].items():
        lines.append(
            f"| {name} | {r['precision']} | {fmt(r['audio_s_per_s'], '.1f')} | {r['padding_efficiency']:.3f} | "
            f"{fmt(r['model_tflops_per_s'], '.3f')} | {fmt(r['mfu'], '.1%')} | {fmt(r['peak_memory_gib'], '.1f')} | "
            f"{r['optimizer_steps']} |"
        )
    if "ours_over_guide" in results:
        lines += ["", f"ours / guide: {results['ours_over_guide']:.2f}x audio-seconds per second"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
