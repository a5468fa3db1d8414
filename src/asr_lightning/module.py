# python train.py model=wav2vec2_base   (or model=wav2vec2_tiny)
"""The LightningModule: Wav2Vec2ForCTC with mean CTC loss, greedy decoding and WER/CER."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import MeanMetric, MinMetric
from torchmetrics.text import CharErrorRate, WordErrorRate
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Processor, get_linear_schedule_with_warmup

from asr_lightning.decode import GreedyDecoder
from asr_lightning.frontend import output_frames
from asr_lightning.hub import from_pretrained
from asr_lightning.text import build_processor

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


class ASRModule(L.LightningModule):
    """Fine-tunes `Wav2Vec2ForCTC` for character CTC.

    Every argument is a primitive (or a Hydra partial), so `save_hyperparameters` is clean and
    `ASRModule.from_checkpoint(path)` rebuilds model and processor without Hydra or the Hub.

    Args:
        vocab: token -> id of the CTC tokenizer (pad = blank).
        feature_extractor: the feature extractor's `to_dict()`.
        pretrained: Hub id or directory of a wav2vec2 checkpoint; None for random init from `architecture`.
        architecture: `Wav2Vec2Config` fields for random init (ignored when `pretrained` is set).
        freeze_feature_encoder: keep the CNN feature encoder fixed (standard for fine-tuning).
        gradient_checkpointing: trade compute for memory in the transformer.
        lr: peak learning rate (passed to `optimizer`).
        layerdrop: probability of skipping a transformer layer in training. This and the masking and
            dropout arguments below keep the checkpoint's (or `Wav2Vec2Config`'s) value when None.
        mask_time_prob: SpecAugment time-mask probability.
        mask_time_length: SpecAugment time-mask span (frames).
        mask_feature_prob: SpecAugment channel-mask probability.
        mask_feature_length: SpecAugment channel-mask span.
        hidden_dropout: dropout in the transformer.
        activation_dropout: dropout after the feed-forward activation.
        attention_dropout: dropout on attention weights.
        feat_proj_dropout: dropout after the feature projection.
        final_dropout: dropout before the CTC head.
        attn_implementation: `sdpa`, `eager` or `flash_attention_2`.
        max_nonfinite_steps: stop (with an error, and a checkpoint by `callbacks.ExceptionCheckpoint`) after this
            many consecutive optimiser steps with non-finite gradients; each one is skipped and counted in
            `train/nonfinite_steps`. fp16's GradScaler skips its own overflow steps and is left to do so.
        optimizer: partial optimizer, completed with the trainable parameters.
        scheduler: partial `linear_warmup_decay`, completed with the optimizer and step count.
    """

    def __init__(
        self,
        vocab: dict[str, int],
        feature_extractor: dict[str, Any],
        pretrained: str | None = "facebook/wav2vec2-base",
        architecture: dict[str, Any] | None = None,
        freeze_feature_encoder: bool = True,
        gradient_checkpointing: bool = False,
        lr: float = 1e-4,
        layerdrop: float | None = None,
        mask_time_prob: float | None = None,
        mask_time_length: int | None = None,
        mask_feature_prob: float | None = None,
        mask_feature_length: int | None = None,
        hidden_dropout: float | None = None,
        activation_dropout: float | None = None,
        attention_dropout: float | None = None,
        feat_proj_dropout: float | None = None,
        final_dropout: float | None = None,
        attn_implementation: str = "sdpa",
        max_nonfinite_steps: int = 10,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
    ) -> None:
        super().__init__()
        self.check_hparams(
            **{k: v for k, v in locals().items() if k in (*self.PROBABILITIES, *self.POSITIVE, "attn_implementation")}
        )
        # The optimiser/scheduler factories are Hydra partials: kept out of checkpoints so that these
        # load with `weights_only=True` and without Hydra (the run dir's config records them).
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.processor: Wav2Vec2Processor = build_processor(vocab, feature_extractor)
        self.decoder = GreedyDecoder(self.processor.tokenizer)  # the one predict.py uses too
        self._fit_started: float | None = None
        self._train_time_before = 0.0
        tokenizer = self.processor.tokenizer
        regularisation = dict(
            layerdrop=layerdrop, mask_time_prob=mask_time_prob, mask_time_length=mask_time_length,
            mask_feature_prob=mask_feature_prob, mask_feature_length=mask_feature_length,
            hidden_dropout=hidden_dropout, activation_dropout=activation_dropout,
            attention_dropout=attention_dropout, feat_proj_dropout=feat_proj_dropout, final_dropout=final_dropout,
        )  # fmt: skip
        overrides = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "ctc_loss_reduction": "mean",
            "ctc_zero_infinity": True,
            **{k: v for k, v in regularisation.items() if v is not None},  # None keeps the checkpoint's value
        }
        if pretrained is not None:
            self.model = from_pretrained(
                Wav2Vec2ForCTC,
                pretrained,
                what="model",
                attn_implementation=attn_implementation,
                ignore_mismatched_sizes=True,  # a CTC head for another vocabulary is re-initialised
                **overrides,
            )
        else:
            config = Wav2Vec2Config(**{**(architecture or {}), **overrides})
            config._attn_implementation = attn_implementation
            self.model = Wav2Vec2ForCTC(config)
        self._check_attention_mask(bool(feature_extractor.get("return_attention_mask")), random_init=pretrained is None)
        # from_pretrained returns the model in eval mode and Lightning keeps modules' modes: without this,
        # fine-tuning would silently run with dropout, layerdrop and SpecAugment off.
        self.model.train()
        if freeze_feature_encoder:
            self.model.freeze_feature_encoder()
        if gradient_checkpointing:
            # transformers 5 renamed it (the old name warns, and goes in v6)
            enable = (
                getattr(self.model, "activation_checkpointing_enable", None) or self.model.gradient_checkpointing_enable
            )
            enable()
        self.wer = torch.nn.ModuleDict({s: WordErrorRate() for s in ("val", "test")})
        self.cer = torch.nn.ModuleDict({s: CharErrorRate() for s in ("val", "test")})
        # sums of (loss x clips) and clips, synced once per epoch: under DDP the exact mean over the split
        self.loss = torch.nn.ModuleDict({s: MeanMetric() for s in ("val", "test")})
        self.val_wer_best = MinMetric()
        self.val_wer_best.persistent(True)  # in checkpoints: a resumed run knows its best WER so far
        # per-utterance (id, reference, hypothesis) of the latest validation / test, complete under DDP
        self.val_records: list[dict[str, str]] = []
        self.test_records: list[dict[str, str]] = []
        self.nonfinite_steps = 0  # skipped optimiser steps, this run
        self._nonfinite_streak = 0

    PROBABILITIES = ("layerdrop", "mask_time_prob", "mask_feature_prob", "hidden_dropout", "activation_dropout",
                     "attention_dropout", "feat_proj_dropout", "final_dropout")  # fmt: skip
    POSITIVE = ("lr", "mask_time_length", "mask_feature_length", "max_nonfinite_steps")

    @classmethod
    def check_hparams(cls, **hparams: Any) -> None:
        """Fail on impossible values, naming the `model.` key and what it allows (train.py calls this before
        any download; `__init__` too). Keys not given are not checked."""
        for key in (*cls.PROBABILITIES, *cls.POSITIVE):  # `model.lr=abc` would fail the comparisons below
            value = hparams.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"model.{key}={value!r} must be a number")
        for key in cls.PROBABILITIES:
            value = hparams.get(key)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"model.{key}={value} must be a probability in [0, 1] (or null: the checkpoint's)")
        for key in cls.POSITIVE:
            value = hparams.get(key)
            if value is not None and not value > 0:
                raise ValueError(f"model.{key}={value} must be > 0")
        attn = hparams.get("attn_implementation")
        if attn is not None and attn not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"model.attn_implementation={attn!r} must be one of {list(ATTN_IMPLEMENTATIONS)}")

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> ASRModule:
        """Load a Lightning checkpoint offline: the architecture stored in it replaces the Hub download."""
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        module = cls(**{**ckpt["hyper_parameters"], "pretrained": None, "architecture": ckpt["hf_config"]})
        module.load_state_dict(ckpt["state_dict"])
        return module.to(map_location)

    # ---------------------------------------------------------------- steps

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Logits, (batch, frames, vocab)."""
        return self.model(input_values=batch["input_values"], attention_mask=batch.get("attention_mask")).logits

    def ctc_loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """CTC loss over each clip's real frames, in fp32, reduced as `config.ctc_loss_reduction`.

        Our own rather than `Wav2Vec2ForCTC(labels=...)`'s, for speed: that one checks `labels.max()` and
        flattens targets with `masked_select`, each a host-device sync per step; here lengths come from the
        collator as host ints and targets stay padded (B, L). It also aligns over real frames only, where
        the HF loss treats a mask-less (group-norm) model's padding frames as audio to be labelled blank.
        """
        cfg = self.model.config
        # fp32: in bf16/fp16 the log-softmax and CTC's sums over alignments lose too much precision
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (frames, batch, vocab)
        frames = self.output_frames(batch["num_samples"], log_probs.shape[0])
        return torch.nn.functional.ctc_loss(
            log_probs,
            batch["labels"].clamp(min=0),  # (B, L); padding beyond each label length is never read
            frames,
            batch["label_lengths"],
            blank=cfg.pad_token_id,
            reduction=cfg.ctc_loss_reduction,
            zero_infinity=cfg.ctc_zero_infinity,
        )

    def on_train_batch_start(self, batch: dict[str, Any], batch_idx: int) -> None:
        # Dropout, layerdrop and SpecAugment (numpy, in transformers) draw from generators seeded by
        # (seed, rank, epoch, batch), not from the generators' history, so a run resumed mid-epoch draws what
        # the uninterrupted run drew (fairseq seeds each update the same way).
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        entropy = [seed, self.global_rank, self.current_epoch, batch_idx]
        step_seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        torch.manual_seed(step_seed)
        np.random.seed(step_seed)
        random.seed(step_seed)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.ctc_loss(self(batch), batch)
        self.log("train/loss", loss, batch_size=len(batch["ids"]), prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_validation_epoch_start(self) -> None:
        self.val_records = []

    def on_validation_epoch_end(self) -> None:
        wer = self.wer["val"].compute()
        self.val_wer_best.update(wer)
        self.log("val/wer_best", self.val_wer_best.compute(), sync_dist=True)
        self.val_records = self._gather(self.val_records)

    def on_test_epoch_start(self) -> None:
        self.test_records = []

    def on_test_epoch_end(self) -> None:
        self.test_records = self._gather(self.test_records)

    def transcribe_logits(self, logits: torch.Tensor, num_samples: Sequence[int] | None = None) -> list[str]:
        """Greedy CTC decoding of each clip's real frames (`num_samples`: its audio length before padding)."""
        lengths = None if num_samples is None else self.output_frames(num_samples, logits.shape[1])
        return self.decoder.decode(logits, lengths)

    def output_frames(self, num_samples: Sequence[int], max_frames: int) -> list[int]:
        """Each clip's logit frame count, from its audio length."""
        return [min(output_frames(self.model.config, n), max_frames) for n in num_samples]

    def _eval_step(self, stage: str, batch: dict[str, Any]) -> None:
        logits = self(batch)  # (batch, frames, vocab)
        hyps = self.transcribe_logits(logits, batch["num_samples"])
        refs = batch["texts"]
        self.wer[stage].update(hyps, refs)
        self.cer[stage].update(hyps, refs)
        n = len(refs)
        self.loss[stage].update(self.ctc_loss(logits, batch), weight=n)
        self.log(f"{stage}/loss", self.loss[stage], batch_size=n)
        self.log(f"{stage}/wer", self.wer[stage], batch_size=n, prog_bar=True)
        self.log(f"{stage}/cer", self.cer[stage], batch_size=n)
        records = self.test_records if stage == "test" else self.val_records
        records += [
            {"id": i, "reference": r, "hypothesis": h} for i, r, h in zip(batch["ids"], refs, hyps, strict=True)
        ]

    @staticmethod
    def _gather(records: list[dict[str, str]]) -> list[dict[str, str]]:
        # Under DDP each rank scored distinct batches (no sampler padding): gather them for one complete set.
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return records
        parts: list[list[dict[str, str]]] = [[] for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather_object(parts, records)
        return [r for part in parts for r in part]

    def _check_attention_mask(self, uses_mask: bool, random_init: bool) -> None:
        # Layer-norm feature encoders (large-lv60, XLS-R) are trained with attention masks; group-norm ones
        # (wav2vec2-base) without. A mismatch makes outputs depend on how much padding a batch has.
        norm = self.model.config.feat_extract_norm
        if (norm == "layer") == uses_mask:
            return
        msg = (
            f"feature extractor return_attention_mask={uses_mask} does not suit a {norm}-norm feature encoder "
            f"(expected {norm == 'layer'}): set data.return_attention_mask={str(norm == 'layer').lower()}"
        )
        if random_init:
            raise ValueError(msg)
        rank_zero_warn(msg)

    # ---------------------------------------------------------------- optimisation and checkpoints

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.trainer.precision == "16-mixed":
            return  # the GradScaler skips overflowing steps itself, and lowers its scale
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        # one sync per step, to decide; a skipped step must not touch the weights or AdamW's moments
        if not grads or torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            self._nonfinite_streak = 0
            return
        optimizer.zero_grad(set_to_none=True)  # AdamW skips parameters without gradients: no update at all
        self.nonfinite_steps += 1
        self._nonfinite_streak += 1
        self.log("train/nonfinite_steps", float(self.nonfinite_steps))
        rank_zero_warn(f"step {self.global_step}: non-finite loss or gradients, optimiser step skipped")
        if self._nonfinite_streak >= self.hparams.max_nonfinite_steps:
            raise FloatingPointError(
                f"{self._nonfinite_streak} consecutive steps had non-finite loss or gradients (step "
                f"{self.global_step}; model.max_nonfinite_steps={self.hparams.max_nonfinite_steps}): lower "
                "model.lr, check the data report for broken clips, or use trainer.precision=bf16-mixed / 32-true"
            )

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        kwargs = {"fused": True} if self.device.type == "cuda" else {}
        if self.optimizer_factory is None:
            raise ValueError("ASRModule was built without an optimizer: pass optimizer= to train it")
        optimizer = self.optimizer_factory(params=params, lr=self.hparams.lr, **kwargs)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(
            optimizer=optimizer, num_training_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The full architecture, so `from_checkpoint` needs no Hub access for pretrained-based runs.
        checkpoint["hf_config"] = self.model.config.to_dict()
        checkpoint["nonfinite_steps"] = [self.nonfinite_steps, self._nonfinite_streak]
        checkpoint["train_time_s"] = self.train_time_s

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nonfinite_steps, self._nonfinite_streak = checkpoint.get("nonfinite_steps", [0, 0])
        self._train_time_before = float(checkpoint.get("train_time_s", 0.0))

    @property
    def train_time_s(self) -> float:
        """Seconds spent in `fit`, summed over the parts of a resumed run."""
        ran = 0.0 if self._fit_started is None else time.perf_counter() - self._fit_started
        return self._train_time_before + ran

    def on_fit_start(self) -> None:
        self._fit_started = time.perf_counter()
        if self.trainer.ckpt_path:
            # Lightning #20550: `estimated_stepping_batches` (our scheduler's length) builds the train loader
            # before the checkpoint's loop state is restored, and fit then keeps that loader without its saved
            # place in the epoch. Dropped here (after that, before the restore), fit builds it again and
            # hands it its state: the run resumes mid-epoch exactly.
            self.trainer.fit_loop._combined_loader = None

    def export(self, out_dir: str | Path) -> Path:
        """Write model + processor with `save_pretrained`, loadable by `transformers.pipeline`."""
        out_dir = Path(out_dir)
        self.model.save_pretrained(out_dir)
        self.processor.save_pretrained(out_dir)
        return out_dir


def linear_warmup_decay(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    warmup_steps: int = 0,
    warmup_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then linear decay to 0, with warmup given in steps or as a share of training."""
    warmup = warmup_steps or math.ceil(warmup_ratio * num_training_steps)
    return get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=num_training_steps)
