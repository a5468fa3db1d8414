# python train.py model=wav2vec2_base   (or model=hubert_base, wavlm_base_plus, w2v_bert_2, ..., wav2vec2_tiny)
"""The LightningModule: any CTC encoder (`AutoModelForCTC`) with mean CTC loss, greedy decoding and WER/CER."""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import MeanMetric, MinMetric
from torchmetrics.text import CharErrorRate, WordErrorRate
from transformers import ProcessorMixin, get_linear_schedule_with_warmup

from asr_lightning import encoders
from asr_lightning.data import ASRDataModule, set_keys
from asr_lightning.decode import GreedyDecoder
from asr_lightning.errors import ConfigError
from asr_lightning.frontend import Frontend
from asr_lightning.text import build_processor

log = logging.getLogger(__name__)

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


class ASRModule(L.LightningModule):
    """Fine-tunes a self-supervised speech encoder with a CTC head (`AutoModelForCTC`) for character CTC.

    Every argument is a primitive (or a Hydra partial), so `save_hyperparameters` is clean and
    `ASRModule.from_checkpoint(path)` rebuilds model and processor without Hydra or the Hub.

    Args:
        vocab: token -> id of the CTC tokenizer (pad = blank).
        feature_extractor: the feature extractor's `to_dict()`.
        pretrained: Hub id or directory of a checkpoint of any `AutoModelForCTC` family (wav2vec2, HuBERT, WavLM,
            data2vec-audio, wav2vec2-conformer, w2v-BERT 2.0); None for random init from `architecture`. Every
            encoder weight must load (`encoders.check_loading`); only the CTC head may be new.
        architecture: config fields for random init, `model_type` picking the family (ignored when `pretrained`
            is set).
        freeze_feature_encoder: keep the CNN feature encoder fixed (standard for fine-tuning; fairseq
            `feature_grad_mult: 0.0`). w2v-BERT 2.0 has no CNN: nothing to freeze.
        gradient_checkpointing: trade compute for memory in the transformer.
        lr: peak learning rate (passed to `optimizer`).
        layerdrop: probability of skipping a transformer layer in training. This and the masking and
            dropout arguments below keep the checkpoint's (or `Wav2Vec2Config`'s) value when None.
        mask_time_prob: the share of encoder frames masked in time (transformers' semantics: span starts are
            drawn with probability `mask_time_prob / mask_time_length`). fairseq's `mask_prob: 0.65` (the
            wav2vec 2.0 paper's p = 0.065 of starting a span of M = 10) is `mask_time_prob=0.65`.
        mask_time_length: time-mask span (frames; fairseq `mask_length`).
        mask_feature_prob: the share of feature channels masked (fairseq `mask_channel_prob`).
        mask_feature_length: channel-mask span (fairseq `mask_channel_length`, 64).
        hidden_dropout: dropout in the transformer.
        activation_dropout: dropout after the feed-forward activation.
        attention_dropout: dropout on attention weights.
        feat_proj_dropout: dropout after the feature projection.
        final_dropout: dropout before the CTC head.
        attn_implementation: `sdpa`, `eager` or `flash_attention_2`.
        max_nonfinite_steps: stop (with an error, and a checkpoint by `callbacks.ExceptionCheckpoint`) after this
            many consecutive optimiser steps with non-finite gradients; each one is skipped and counted in
            `train/nonfinite_steps`. fp16's GradScaler skips its own overflow steps and is left to do so.
        freeze_encoder_steps: train only the CTC head for the first N optimiser steps, then the encoder (minus a
            frozen feature encoder) joins (fairseq `freeze_finetune_updates`). It depends on the global step
            only, so a resumed run freezes exactly as an uninterrupted one.
        layer_lr_decay: layer-wise learning-rate decay: transformer layer i of L trains at
            `lr * layer_lr_decay ** (L - i)`, the layers' inputs at `** (L + 1)`; 1.0: one learning rate.
        adapter: MMS adapter training: `target_lang` (e.g. `fra`) trains only the adapter layers and the
            language's output layer (the base model frozen), loading the language's adapter when the checkpoint
            ships one; `attn_dim`: the adapter size of a random-init model. None or `target_lang: null`: off.
        optimizer: partial optimizer, completed with the trainable parameters.
        scheduler: partial `linear_warmup_decay` or `tri_stage`, completed with the optimizer and step count.
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
        freeze_encoder_steps: int = 0,
        layer_lr_decay: float = 1.0,
        adapter: dict[str, Any] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
    ) -> None:
        super().__init__()
        self.check_hparams(**{k: v for k, v in locals().items() if k in self.CHECKED})
        # The optimiser/scheduler factories are Hydra partials: kept out of checkpoints so that these
        # load with `weights_only=True` and without Hydra (the run dir's config records them).
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.processor: ProcessorMixin = build_processor(vocab, feature_extractor)
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
        settings = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "ctc_loss_reduction": "mean",
            "ctc_zero_infinity": True,
            **{k: v for k, v in regularisation.items() if v is not None},  # None keeps the checkpoint's value
        }
        if mask_time_prob or mask_feature_prob:  # checkpoints saved with it off (w2v-BERT 2.0) would ignore masks
            settings["apply_spec_augment"] = True
        adapter = adapter or {}
        if adapter.get("attn_dim") is not None:
            settings["adapter_attn_dim"] = adapter["attn_dim"]
        config = encoders.model_config(pretrained, architecture)
        for key, value in settings.items():
            if not hasattr(config, key):
                name = "adapter.attn_dim" if key == "adapter_attn_dim" else key
                raise ConfigError(f"model.{name}={value}: {config.model_type} models have no such setting")
            setattr(config, key, value)
        width = getattr(config, "hidden_size", None)
        if config.mask_feature_prob and width is not None and config.mask_feature_length >= width:
            raise ConfigError(
                f"model.mask_feature_length={config.mask_feature_length} is not below the encoder's {width} channels: "
                "lower it, or set model.mask_feature_prob=0"
            )
        if pretrained is not None:
            self.model = encoders.load_pretrained(pretrained, attn_implementation, config=config)
        else:
            self.model = encoders.random_init(config, attn_implementation)
        self.frontend = Frontend(self.model.config, self.processor.feature_extractor)
        self._check_attention_mask(self.frontend.uses_attention_mask, random_init=pretrained is None)
        # from_pretrained returns the model in eval mode and Lightning keeps modules' modes: without this,
        # fine-tuning would silently run with dropout, layerdrop and SpecAugment off.
        self.model.train()
        if freeze_feature_encoder and hasattr(self.model, "freeze_feature_encoder"):  # w2v-BERT has no CNN
            self.model.freeze_feature_encoder()
        if gradient_checkpointing:
            # transformers 5 renamed it (the old name warns, and goes in v6)
            enable = (
                getattr(self.model, "activation_checkpointing_enable", None) or self.model.gradient_checkpointing_enable
            )
            enable()
        if adapter.get("target_lang"):
            how = encoders.setup_adapter(self.model, adapter["target_lang"], pretrained)
            log.info("adapter %s %s; the base model is frozen", adapter["target_lang"], how)
        total = sum(p.numel() for p in self.model.parameters())
        log.info("%s: %s of %s weights trained%s", type(self.model).__name__, f"{encoders.trained_parameters(self):,}",
                 f"{total:,}", f" (the CTC head alone for the first {freeze_encoder_steps} steps)"
                 if freeze_encoder_steps else "")  # fmt: skip
        # WER/CER/loss of each evaluation set, made at the start of each validation or test (the sets are the
        # data's: `ASRDataModule.eval_sets`); synced once per epoch, so exact under DDP
        self.scores: dict[str, dict[str, SetScores]] = {"val": {}, "test": {}}
        self.val_wer_best = MinMetric()
        self.val_wer_best.persistent(True)  # in checkpoints: a resumed run knows its best WER so far
        # per-utterance (id, reference, hypothesis) of the latest validation / test, complete under DDP
        self.val_records: list[dict[str, str]] = []
        self.test_records: list[dict[str, str]] = []
        self.nonfinite_steps = 0  # skipped optimiser steps, this run
        self.dropped_clips = 0  # clips whose audio failed to decode in a worker, this run
        self.stream_skips: Counter[str] = Counter()  # streamed clips left out, by reason (data.streaming)
        self._nonfinite_streak = 0

    PROBABILITIES = ("layerdrop", "mask_time_prob", "mask_feature_prob", "hidden_dropout", "activation_dropout",
                     "attention_dropout", "feat_proj_dropout", "final_dropout")  # fmt: skip
    POSITIVE = ("lr", "mask_time_length", "mask_feature_length", "max_nonfinite_steps")
    CHECKED = (*PROBABILITIES, *POSITIVE, "attn_implementation", "freeze_encoder_steps", "layer_lr_decay", "adapter",
               "scheduler")  # fmt: skip

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
        steps = hparams.get("freeze_encoder_steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            raise ValueError(f"model.freeze_encoder_steps={steps!r} must be a whole number >= 0 (0: off)")
        decay = hparams.get("layer_lr_decay")
        if decay is not None and (isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 < decay <= 1):
            raise ValueError(f"model.layer_lr_decay={decay!r} must be in (0, 1] (1.0: off)")
        adapter = hparams.get("adapter")
        if adapter is not None:
            if not isinstance(adapter, Mapping):
                raise ValueError(f"model.adapter={adapter!r} must be a mapping with target_lang and attn_dim (or null)")
            unknown = set(adapter) - {"target_lang", "attn_dim"}
            if unknown:
                raise ValueError(
                    f"model.adapter: unknown key(s) {sorted(map(str, unknown))}; it takes target_lang, attn_dim"
                )
        if isinstance(hparams.get("scheduler"), str):
            raise ValueError(
                f"model.scheduler={hparams['scheduler']!r} is a config group: select it with "
                f"model/scheduler={hparams['scheduler']} (linear or tri_stage)"
            )

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
        inputs = {
            self.frontend.input_name: batch[self.frontend.input_name],
            "attention_mask": batch.get("attention_mask"),
        }
        if not self.encoder_frozen:
            return self.model(**inputs).logits
        # fairseq's freeze_finetune_updates: the encoder runs (in train mode: masks, dropout) without a graph, so
        # only the head trains and the encoder's backward costs nothing. AdamW skips the gradient-less weights.
        with torch.no_grad():
            hidden = self.model.base_model(**inputs).last_hidden_state  # (batch, frames, hidden)
        return self.model.lm_head(self.model.dropout(hidden))

    @property
    def encoder_frozen(self) -> bool:
        """Whether this training step trains the CTC head alone (`freeze_encoder_steps`)."""
        return self.training and self._trainer is not None and self.global_step < self.hparams.freeze_encoder_steps

    def ctc_loss(self, logits: torch.Tensor, batch: dict[str, Any], reduction: str | None = None) -> torch.Tensor:
        """CTC loss over each clip's real frames, in fp32, reduced as `reduction` (default:
        `config.ctc_loss_reduction`; `none`: each clip's loss, (batch,)).

        Our own rather than `Wav2Vec2ForCTC(labels=...)`'s, for speed: that one checks `labels.max()` and
        flattens targets with `masked_select`, each a host-device sync per step; here lengths come from the
        collator as host ints and targets stay padded (B, L). It also aligns over real frames only, where
        the HF loss treats a mask-less (group-norm) model's padding frames as audio to be labelled blank.
        """
        cfg = self.model.config
        # fp32: in bf16/fp16 the log-softmax and CTC's sums over alignments lose too much precision
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (frames, batch, vocab)
        frames = self.frontend.output_frames_batch(batch["num_samples"], log_probs.shape[0])
        return torch.nn.functional.ctc_loss(
            log_probs,
            batch["labels"].clamp(min=0),  # (B, L); padding beyond each label length is never read
            frames,
            batch["label_lengths"],
            blank=cfg.pad_token_id,
            reduction=reduction or cfg.ctc_loss_reduction,
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

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        self._count_dropped(batch)
        if not batch["ids"]:  # every clip of the batch failed to decode in its worker: no step
            return None
        loss = self.ctc_loss(self(batch), batch)
        self.log("train/loss", loss, batch_size=len(batch["ids"]), prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_validation_epoch_start(self) -> None:
        self.val_records = []
        self.scores["val"] = self._new_scores("validation")

    def on_validation_epoch_end(self) -> None:
        wer = self._log_scores("val")
        self.val_wer_best.update(wer)
        self.log("val/wer_best", self.val_wer_best.compute(), sync_dist=True)
        self.val_records = self._gather(self.val_records)

    def on_test_epoch_start(self) -> None:
        self.test_records = []
        self.scores["test"] = self._new_scores("test")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")
        self.test_records = self._gather(self.test_records)

    def transcribe_logits(self, logits: torch.Tensor, num_samples: Sequence[int] | None = None) -> list[str]:
        """Greedy CTC decoding of each clip's real frames (`num_samples`: its audio length before padding)."""
        lengths = None if num_samples is None else self.frontend.output_frames_batch(num_samples, logits.shape[1])
        return self.decoder.decode(logits, lengths)

    def _count_dropped(self, batch: dict[str, Any]) -> None:
        """Count clips the workers could not decode (`data.validate_audio=false`), logged as `train/dropped_clips`."""
        if batch.get("dropped"):
            self.dropped_clips += len(batch["dropped"])
            rank_zero_warn(f"step {self.global_step}: {len(batch['dropped'])} clip(s) dropped: {batch['dropped']}")
        if self.training and self.dropped_clips:
            self.log("train/dropped_clips", float(self.dropped_clips))
        if "skipped" in batch:  # a streamed batch: the clips its worker's filters left out since the last one
            self.stream_skips.update(batch["skipped"])
            # each rank counts its own stream; the logged value is their sum
            self.log("train/skipped_clips", float(sum(self.stream_skips.values())), sync_dist=True, reduce_fx="sum")

    def _eval_step(self, stage: str, batch: dict[str, Any]) -> None:
        self._count_dropped(batch)
        if not batch["ids"]:
            return
        logits = self(batch)  # (batch, frames, vocab)
        hyps = self.transcribe_logits(logits, batch["num_samples"])
        refs = batch["texts"]
        # each clip's term of the mean CTC loss (its loss over its label length), so each set's mean is exact
        losses = self.ctc_loss(logits, batch, reduction="none")
        losses = losses / torch.tensor(batch["label_lengths"], device=losses.device).clamp(min=1)  # (batch,)
        sets = batch.get("sets") or [next(iter(self.scores[stage]))] * len(refs)
        for name in dict.fromkeys(sets):
            if name not in self.scores[stage]:
                raise KeyError(f"a {stage} batch holds clips of set {name!r}, not one of {list(self.scores[stage])}")
            rows = [i for i, s in enumerate(sets) if s == name]
            scores = self.scores[stage][name]
            scores.wer.update([hyps[i] for i in rows], [refs[i] for i in rows])
            scores.cer.update([hyps[i] for i in rows], [refs[i] for i in rows])
            scores.loss.update(losses[rows])
        records = self.test_records if stage == "test" else self.val_records
        records += [
            {"id": i, "reference": r, "hypothesis": h, **({"set": s} if "sets" in batch else {})}
            for i, r, h, s in zip(batch["ids"], refs, hyps, sets, strict=True)
        ]

    def _new_scores(self, role: str) -> dict[str, SetScores]:
        dm = self._trainer.datamodule if self._trainer is not None else None
        names = dm.eval_sets[role] if isinstance(dm, ASRDataModule) else []
        return {name: SetScores().to(self.device) for name in names or [role]}

    def _log_scores(self, stage: str) -> torch.Tensor:
        """Log each set's WER/CER/loss (`val/<set>/wer` when the role has several) and the first set's as the
        role's (`val/wer`); returns the first set's WER."""
        role = "validation" if stage == "val" else "test"
        first = None
        for name, key in zip(self.scores[stage], set_keys(list(self.scores[stage]), role), strict=True):
            values = self.scores[stage][name].compute()  # synced across DDP ranks: every rank logs the same value
            first = values if first is None else first
            for metric, value in values.items() if key else ():  # a set that is the role has the role's keys only
                self.log(f"{stage}/{key}/{metric}", value, sync_dist=False)
        for metric, value in first.items():
            self.log(f"{stage}/{metric}", value, sync_dist=False, prog_bar=metric == "wer")
        return first["wer"]

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
        norm = getattr(self.model.config, "feat_extract_norm", None)
        if norm is None or (norm == "layer") == uses_mask:  # w2v-BERT: filterbanks, always masked
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
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        kwargs = {"fused": True} if self.device.type == "cuda" else {}
        if self.optimizer_factory is None:
            raise ValueError("ASRModule was built without an optimizer: pass optimizer= to train it")
        lr, decay = self.hparams.lr, self.hparams.layer_lr_decay
        if decay == 1.0:
            params: Any = [p for _, p in named]
        else:
            cfg = self.model.config
            # the encoder's layer norm follows the layers in stable-layer-norm and conformer encoders, and comes
            # before them in the others (wav2vec2-base, HuBERT/WavLM base, data2vec-audio)
            above = getattr(cfg, "do_stable_layer_norm", cfg.model_type in ("wav2vec2-conformer", "wav2vec2-bert"))
            params = encoders.layer_lr_groups(named, cfg.num_hidden_layers, lr, decay, encoder_norm_above=above)
        optimizer = self.optimizer_factory(params=params, lr=lr, **kwargs)
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
        checkpoint["counts"] = {"dropped_clips": self.dropped_clips, "stream_skips": dict(self.stream_skips)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nonfinite_steps, self._nonfinite_streak = checkpoint.get("nonfinite_steps", [0, 0])
        self._train_time_before = float(checkpoint.get("train_time_s", 0.0))
        counts = checkpoint.get("counts", {})
        self.dropped_clips = int(counts.get("dropped_clips", 0))
        self.stream_skips = Counter(counts.get("stream_skips", {}))

    @property
    def train_time_s(self) -> float:
        """Seconds spent in `fit`, summed over the parts of a resumed run."""
        ran = 0.0 if self._fit_started is None else time.perf_counter() - self._fit_started
        return self._train_time_before + ran

    def on_fit_start(self) -> None:
        self._fit_started = time.perf_counter()
        ddp_kwargs = getattr(self.trainer.strategy, "_ddp_kwargs", {})
        if (
            self.hparams.freeze_encoder_steps
            and self.trainer.world_size > 1
            and not ddp_kwargs.get("find_unused_parameters")
        ):
            raise ConfigError(
                f"model.freeze_encoder_steps={self.hparams.freeze_encoder_steps} under DDP leaves the encoder without "
                "gradients for those steps: set trainer.strategy=ddp_find_unused_parameters_true"
            )
        if self.trainer.ckpt_path:
            # Lightning #20550: `estimated_stepping_batches` (our scheduler's length) builds the train loader
            # before the checkpoint's loop state is restored, and fit then keeps that loader without its saved
            # place in the epoch. Dropped here (after that, before the restore), fit builds it again and
            # hands it its state: the run resumes mid-epoch exactly.
            self.trainer.fit_loop._combined_loader = None

    def export(self, out_dir: str | Path) -> Path:
        """Write model + processor with `save_pretrained`, loadable by `transformers.pipeline`; with an adapter,
        also `adapter.<lang>.safetensors`."""
        out_dir = Path(out_dir)
        self.model.save_pretrained(out_dir)
        self.processor.save_pretrained(out_dir)
        lang = (self.hparams.adapter or {}).get("target_lang")
        if lang:  # beside the whole model: the few MB a base model needs for this language (predict.py adapter=)
            encoders.save_adapter(self.model, out_dir, lang)
        return out_dir


class SetScores(torch.nn.Module):
    """One evaluation set's WER, CER and mean loss (each clip's term of the mean CTC loss), synced across ranks
    once, at `compute`."""

    def __init__(self) -> None:
        super().__init__()
        self.wer, self.cer, self.loss = WordErrorRate(), CharErrorRate(), MeanMetric()

    def compute(self) -> dict[str, torch.Tensor]:
        return {"loss": self.loss.compute(), "wer": self.wer.compute(), "cer": self.cer.compute()}


def linear_warmup_decay(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    warmup_steps: int = 0,
    warmup_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then linear decay to 0, with warmup given in steps or as a share of training."""
    warmup = warmup_steps or math.ceil(warmup_ratio * num_training_steps)
    return get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=num_training_steps)


def tri_stage(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    phase_ratio: Sequence[float] = (0.1, 0.4, 0.5),
    final_lr_scale: float = 0.05,
    init_lr_scale: float = 0.01,
) -> torch.optim.lr_scheduler.LambdaLR:
    """fairseq's `tri_stage` schedule: linear warmup from `init_lr_scale`, hold at the peak, exponential decay
    to `final_lr_scale` (then held), over phases of `phase_ratio` of the training steps.

    As fairseq (`fairseq/optim/lr_scheduler/tri_stage_lr_scheduler.py`): at step t of warmup w,
    scale = init + (1 - init) t / w; in decay step t of d, scale = exp(log(final_lr_scale) t / d).
    """
    if len(phase_ratio) != 3 or abs(sum(phase_ratio) - 1) > 1e-6 or min(phase_ratio) < 0:
        raise ValueError(f"model.scheduler.phase_ratio={list(phase_ratio)} must be 3 shares >= 0 summing to 1")
    if not 0 < final_lr_scale <= 1 or not 0 <= init_lr_scale <= 1:
        raise ValueError("model.scheduler.final_lr_scale must be in (0, 1] and init_lr_scale in [0, 1]")
    warmup, hold, decay = (int(r * num_training_steps) for r in phase_ratio)
    decay_factor = -math.log(final_lr_scale) / decay if decay else 0.0

    def scale(step: int) -> float:
        if step < warmup:
            return init_lr_scale + (1 - init_lr_scale) * step / warmup
        step -= warmup
        if step < hold:
            return 1.0
        step -= hold
        if step <= decay:
            return math.exp(-decay_factor * step)
        return final_lr_scale

    return torch.optim.lr_scheduler.LambdaLR(optimizer, scale)
