# python -m bench.infer_speed --model base --minutes 10   (CPU smoke: --smoke; another encoder: --model-type)
"""Real-time factor of batched greedy transcription with wav2vec2-base (random weights: speed is the same), or
with another CTC encoder's default architecture (`--model-type hubert`, `wavlm`, `wav2vec2-bert`, ...).

Clips of 2-15 s (MInDS-14-like) are batched longest first up to `--max-batch-seconds` of padded audio (the
`DurationBatchSampler` evaluation order), run through the model, argmax-decoded and collapsed to text by the
tokenizer. RTF = wall time / audio time (lower is better; 1/RTF is "x real time"). Variants:
fp32 eager; bf16 autocast; on CPU also int8 dynamic quantisation of the Linear layers (the transformer; the
CNN stays fp32), and, when `onnxruntime` is installed, the model exported with `torch.onnx.export` (dynamic
batch and length) run in ONNX Runtime in fp32 (`onnx`) and dynamically quantised to int8 (`onnx_int8`).
Audio decoding and feature extraction (normalisation; w2v-BERT's filterbanks) are left out: each clip's
model input is made before the clock starts (`bench.data_speed` times decoding and normalisation).
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForCTC, PreTrainedModel

from asr_lightning.collate import CTCCollator
from asr_lightning.decode import GreedyDecoder
from asr_lightning.frontend import Frontend
from asr_lightning.sampling import DurationBatchSampler
from asr_lightning.text import build_vocab, load_feature_extractor, make_tokenizer
from asr_lightning.throughput import clips_flops, flops_coefficients
from bench.corpus import WORDS
from bench.train_speed import machine

# the demo model's architecture, from its config (less its model_type: --model-type picks the family)
TINY = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "conf/model/wav2vec2_tiny.yaml").architecture)
TINY.pop("model_type", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["base", "tiny"], default="base")
    parser.add_argument(
        "--model-type", default="wav2vec2", help="an AutoModelForCTC model_type (base: its config's defaults)"
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--max-batch-seconds", type=float, default=None, help="default: 60 on CPU, 1600 on GPU")
    parser.add_argument("--variants", default=None, help="comma list of fp32,bf16,int8,onnx,onnx_int8")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 1 minute (CI)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.model, args.minutes = "tiny", 1.0
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    budget = args.max_batch_seconds or (1600.0 if cuda else 60.0)
    variants = (args.variants or ("fp32,bf16" if cuda else "fp32,bf16,int8,onnx,onnx_int8")).split(",")

    tokenizer = make_tokenizer(build_vocab([" ".join(WORDS)]))
    arch = TINY if args.model == "tiny" else {}
    config = AutoConfig.for_model(
        args.model_type, **arch, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
    )
    # the family's extractor: w2v-BERT's filterbanks; waveforms with attention masks for layer-norm encoders
    # (tiny), without for group-norm ones (wav2vec2-base)
    frontend = Frontend(config, load_feature_extractor(None, config))
    clips = make_clips(args.minutes)
    audio_s = sum(len(c) for c in clips) / 16000
    flops = clips_flops(flops_coefficients(config, training=False), [len(c) / 16000 for c in clips])
    results: dict[str, Any] = {
        "machine": machine(), "model": args.model, "model_type": args.model_type, "clips": len(clips),
        "audio_s": round(audio_s, 1), "max_batch_seconds": budget, "gflop_per_audio_s": flops / audio_s / 1e9,
        "variants": {},
    }  # fmt: skip
    for name in variants:
        if name == "int8" and config.model_type == "wavlm":
            print(f"{name}: skipped (WavLM's attention reads its Linear layers' weights, which int8 replaces)")
            continue
        if name.startswith("onnx") and frontend.filterbank:
            print(f"{name}: skipped (the ONNX variants export waveform models)")
            continue
        torch.manual_seed(0)
        model = AutoModelForCTC.from_config(config).eval().to(device)
        if name == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        if name.startswith("onnx"):
            try:
                model = OnnxModel(model, quantize=name == "onnx_int8", threads=torch.get_num_threads())
            except ImportError:
                print(f"{name}: skipped (pip install onnxruntime onnxscript)")
                continue
        elapsed, texts = transcribe(model, frontend, tokenizer, clips, budget, device, bf16=name == "bf16")
        results["variants"][name] = {
            "rtf": elapsed / audio_s,
            "x_real_time": audio_s / elapsed,
            "gflop_per_s": flops / elapsed / 1e9,
            "seconds": round(elapsed, 2),
        }
        print(name, json.dumps(results["variants"][name]), flush=True)
    print(to_markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


def make_clips(minutes: float, seed: int = 0) -> list[np.ndarray]:
    """Normalised noise clips of 2-15 s at 16 kHz, until `minutes` of audio."""
    rng = np.random.default_rng(seed)
    clips, total = [], 0.0
    while total < minutes * 60:
        seconds = float(rng.uniform(2, 15))
        clips.append(rng.standard_normal(int(seconds * 16000)).astype(np.float32))
        total += seconds
    return clips


@torch.inference_mode()
def transcribe(
    model: Any,
    frontend: Frontend,
    tokenizer: Any,
    clips: list[np.ndarray],
    budget: float,
    device: torch.device,
    bf16: bool,
) -> tuple[float, list[str]]:
    lengths = [len(c) for c in clips]
    sampler = DurationBatchSampler(lengths, max_batch_seconds=budget, sampling_rate=16000, shuffle=False)
    collate = CTCCollator(return_attention_mask=frontend.uses_attention_mask, input_name=frontend.input_name)
    features = [frontend.features(c) for c in clips]  # (samples,) or (frames, 160)
    batches = [
        collate([{frontend.input_name: features[i], "input_length": lengths[i], "id": str(i), "text": ""} for i in idx])
        for idx in sampler
    ]
    decoder = GreedyDecoder(tokenizer)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    _run(model, batches[-1:], frontend, decoder, device, autocast)  # warm-up (allocator, kernels): shortest batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    texts = _run(model, batches, frontend, decoder, device, autocast)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, texts


def _run(model, batches, frontend: Frontend, decoder: GreedyDecoder, device, autocast) -> list[str]:
    texts: list[str] = []
    for batch in batches:
        mask = batch.get("attention_mask")
        with autocast:
            logits = model(
                **{frontend.input_name: batch[frontend.input_name].to(device, non_blocking=True)},
                attention_mask=None if mask is None else mask.to(device, non_blocking=True),
            ).logits  # (batch, frames, vocab)
        frames = [frontend.output_frames(n) for n in batch["num_samples"]]  # of each clip's samples
        texts += decoder.decode(logits, frames)  # each clip's own frames, as predict.py
    return texts


class OnnxModel:
    """The model exported to ONNX (dynamic batch and length) behind the eager model's call signature."""

    def __init__(self, model: PreTrainedModel, quantize: bool, threads: int) -> None:
        import tempfile

        import onnxruntime as ort

        path = Path(tempfile.mkdtemp()) / "model.onnx"
        batch, length = (
            torch.export.Dim("batch", min=1, max=256),
            torch.export.Dim("length", min=8000, max=16000 * 3600),
        )
        torch.onnx.export(
            _Logits(model), (torch.randn(2, 64000),), dynamo=True,
            dynamic_shapes={"input_values": {0: batch, 1: length}},
            input_names=["input_values"], output_names=["logits"],
        ).save(str(path))  # fmt: skip
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(path), str(path.with_suffix(".int8.onnx")), weight_type=QuantType.QInt8)
            path = path.with_suffix(".int8.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        if attention_mask is not None:
            raise ValueError("the ONNX variants export mask-less (group-norm) models such as wav2vec2-base")
        (logits,) = self.session.run(None, {"input_values": input_values.numpy()})
        return SimpleNamespace(logits=torch.from_numpy(logits))


class _Logits(torch.nn.Module):
    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.model(input_values).logits  # (batch, frames, vocab)


def to_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results['machine']['device']}; model {results['model_type']} {results['model']}; {results['clips']} clips, "
        f"{results['audio_s'] / 60:.1f} min; batches of <= {results['max_batch_seconds']:.0f} s padded; "
        f"{results['gflop_per_audio_s']:.1f} GFLOP per audio-second",
        "",
        "| variant | RTF | x real time | GFLOP/s |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results["variants"].items():
        lines.append(f"| {name} | {r['rtf']:.4f} | {r['x_real_time']:.0f} | {r['gflop_per_s']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
