# pytest tests/test_encoders.py
"""Any self-supervised speech encoder with a CTC head, through the Auto classes, loaded safely.

wav2vec2, HuBERT, WavLM, data2vec-audio, wav2vec2-conformer, XLS-R/MMS and w2v-BERT 2.0 all load through
`AutoModelForCTC`. Loading is checked: a checkpoint whose encoder does not load into the class its config names
(a config saying `wav2vec2` over HuBERT weights, a truncated file, a renamed layer) stops the run before any
training, instead of fine-tuning a randomly initialised encoder and reporting its WER as the checkpoint's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import MODEL_FOR_CTC_MAPPING, AutoConfig, AutoModelForCTC, PretrainedConfig, PreTrainedModel

from asr_lightning.errors import EncoderLoadError
from asr_lightning.hub import from_pretrained

log = logging.getLogger(__name__)

# The CTC head: the only weights a checkpoint may lack (pretrain-only) or have in another shape (new vocabulary).
HEAD_PREFIX = "lm_head."
# Weights of the encoder that fine-tuning may create: the time-mask embedding exists only when the config that
# saved the checkpoint masked (transformers creates it for mask_time_prob > 0 or mask_feature_prob > 0).
OPTIONAL_ENCODER_WEIGHTS = ("masked_spec_embed",)
LAYER_PATTERN = re.compile(r"\.encoder\.layers\.(\d+)\.")
ADAPTER_FILE = "adapter.{}.safetensors"  # transformers' WAV2VEC2_ADAPTER_SAFE_FILE


def model_config(pretrained: str | None, architecture: dict[str, Any] | None) -> PretrainedConfig:
    """The model's config: the checkpoint's (`pretrained`), or a random-init one from `architecture`.

    `architecture["model_type"]` picks the encoder family (`wav2vec2` when absent, as in older run configs).
    """
    if pretrained is not None:
        return from_pretrained(AutoConfig, pretrained, what="model config")
    arch = dict(architecture or {})
    model_type = arch.pop("model_type", "wav2vec2")
    try:
        return AutoConfig.for_model(model_type, **arch)
    except ValueError as err:
        raise ValueError(f"model.architecture.model_type={model_type!r}: {err}") from None


def load_pretrained(name_or_path: str, attn_implementation: str, **overrides: Any) -> PreTrainedModel:
    """`AutoModelForCTC.from_pretrained` that fails unless every encoder weight loaded.

    Only the CTC head may be newly initialised (a pretrain-only checkpoint) or re-initialised (another
    vocabulary); that is logged in one line. Pretraining-only modules outside the encoder (wav2vec2's quantizer
    and projections, HuBERT's label embeddings) are dropped, as fine-tuning always does.

    Raises:
        EncoderLoadError: an encoder weight is missing, unexpected or of another shape; the message names the
            checkpoint, its `model_type`, the class that tried to load it and a few of the weights.
    """
    config = overrides.get("config")
    # transformers creates the mask embedding only when the config masks; keep the checkpoint's anyway, so that
    # the export holds its whole encoder and masking can be turned on later
    masks_off = config is not None and not config.mask_time_prob and not getattr(config, "mask_feature_prob", 0)
    if masks_off:
        config.mask_time_prob = 0.05
    model, info = from_pretrained(
        AutoModelForCTC,
        name_or_path,
        what="model",
        attn_implementation=attention(config, attn_implementation) if config is not None else attn_implementation,
        ignore_mismatched_sizes=True,  # a CTC head for another vocabulary is re-initialised
        output_loading_info=True,
        **overrides,
    )
    if masks_off:
        model.config.mask_time_prob = 0.0
    check_loading(model, name_or_path, info)
    return model


def random_init(config: PretrainedConfig, attn_implementation: str) -> PreTrainedModel:
    """A randomly initialised CTC model of `config`."""
    config._attn_implementation = attention(config, attn_implementation)
    return AutoModelForCTC.from_config(config)


def attention(config: PretrainedConfig, requested: str) -> str:
    """`requested` if the family's CTC class has it, else `eager` (WavLM's relative-position attention has no
    SDPA or flash kernel in transformers), said in the log."""
    cls = MODEL_FOR_CTC_MAPPING[type(config)]
    supported = {"sdpa": cls._supports_sdpa, "flash_attention_2": cls._supports_flash_attn}.get(requested, True)
    if supported:
        return requested
    log.info("%s has no %s attention in transformers: using eager", cls.__name__, requested)
    return "eager"


def check_loading(model: PreTrainedModel, name: str, info: dict[str, Any], head_may_be_new: bool = True) -> None:
    """Raise `EncoderLoadError` unless only the CTC head (and `OPTIONAL_ENCODER_WEIGHTS`) was initialised anew.

    `head_may_be_new=False` (transcribing with a fine-tuned model): the head must load too.
    """
    prefix = f"{model.base_model_prefix}."
    if not head_may_be_new:
        head = [k for k in [*(info.get("missing_keys") or []), *(info.get("mismatched_keys") or [])]
                if _is_head(k[0] if isinstance(k, tuple | list) else k)]  # fmt: skip
        if head:
            raise EncoderLoadError(
                f"{name} (model_type {model.config.model_type!r}) has no trained CTC head ({len(head)} weights "
                "missing or of another shape): it is a pretrain-only checkpoint; fine-tune it with train.py first"
            )
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(k[0] if isinstance(k, tuple | list) else k for k in info.get("mismatched_keys") or [])
    unexpected = sorted(info.get("unexpected_keys") or [])
    # Unexpected keys of the encoder's own modules (with or without its prefix: base-model checkpoints have none)
    # are encoder weights the model has no place for; the others are pretraining heads (quantizer, project_q/hid,
    # final_proj, label_embs_concat), which fine-tuning drops. The mask embedding is unused without masking.
    own = {n for n, _ in model.base_model.named_children()} | {n for n, _ in model.base_model.named_parameters()}
    own_unexpected = [k for k in unexpected if k.removeprefix(prefix).split(".")[0] in own]
    bad = {
        "missing": [k for k in missing if not _is_head(k) and not k.endswith(OPTIONAL_ENCODER_WEIGHTS)],
        "unexpected": [k for k in own_unexpected if not k.endswith(OPTIONAL_ENCODER_WEIGHTS)],
        "of another shape": [k for k in mismatched if not _is_head(k)],
    }
    if info.get("error_msgs"):
        bad["unreadable"] = list(info["error_msgs"])
    problems = {kind: keys for kind, keys in bad.items() if keys}
    if problems:
        details = "; ".join(f"{len(keys)} {kind} (e.g. {', '.join(keys[:4])})" for kind, keys in problems.items())
        foreign = [k for k in unexpected if k not in own_unexpected]
        if foreign:
            details += f"; the checkpoint has instead {len(foreign)} weights under {_modules(foreign)}"
        raise EncoderLoadError(
            f"{name} (model_type {model.config.model_type!r}) did not load into {type(model).__name__}: {details}. "
            "Its encoder would train from random weights. Check that the checkpoint's config.json names the family "
            "its weights belong to (model_type, architectures), and that the files are complete"
        )
    new = [k for k in missing if _is_head(k)]
    reinit = [k for k in mismatched if _is_head(k)]
    extra = [k for k in missing if k.endswith(OPTIONAL_ENCODER_WEIGHTS)]
    dropped = [k for k in unexpected if k not in own_unexpected]
    unused = [k for k in own_unexpected if k.endswith(OPTIONAL_ENCODER_WEIGHTS)]
    head = "newly initialised (the checkpoint has none)" if new else "re-initialised (new vocabulary)" if reinit else ""
    parts = [f"CTC head {head}" if head else "CTC head loaded"]
    if extra:
        parts.append(f"{', '.join(extra)} newly initialised (the checkpoint did not mask)")
    if unused:
        parts.append(f"{', '.join(unused)} unused (no masking)")
    if dropped:
        parts.append(f"{len(dropped)} pretraining-only weights dropped ({_modules(dropped)})")
    log.info("%s: %s (%s): encoder loaded whole; %s", name, type(model).__name__, model.config.model_type,
             "; ".join(parts))  # fmt: skip


def layer_lr_groups(
    named: Iterable[tuple[str, torch.nn.Parameter]],
    num_layers: int,
    lr: float,
    decay: float,
    encoder_norm_above: bool = True,
) -> list[dict[str, Any]]:
    """Parameter groups with layer-wise learning-rate decay (BEiT/data2vec style).

    The CTC head and anything above the transformer layers get `lr`; transformer layer i (0-based, of
    `num_layers`) gets `lr * decay ** (num_layers - i)`; everything below the layers (feature encoder,
    projection, positional convolution) gets `lr * decay ** (num_layers + 1)`. `encoder_norm_above`: the
    encoder's own layer norm follows the layers (stable-layer-norm, conformer) rather than preceding them.
    """
    groups: dict[int, list[torch.nn.Parameter]] = {}
    for name, param in named:
        if _is_head(name) or ".adapter." in name or name.startswith("adapter."):
            depth = 0
        elif match := LAYER_PATTERN.search(f".{name}"):
            depth = num_layers - int(match.group(1))
        elif ".encoder." in f".{name}" and "pos_conv" not in name and "embed" not in name:
            depth = 0 if encoder_norm_above else num_layers + 1  # the encoder's layer norm
        else:
            depth = num_layers + 1
        groups.setdefault(depth, []).append(param)
    return [{"params": ps, "lr": lr * decay**d, "depth": d} for d, ps in sorted(groups.items())]


def trained_parameters(model: torch.nn.Module) -> int:
    """How many weights get gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- MMS adapters


def setup_adapter(model: PreTrainedModel, target_lang: str, pretrained: str | None) -> str:
    """Train only the adapter layers and the language's output layer (MMS, `facebook/mms-1b-all`).

    The language's adapter is loaded from `pretrained` when it ships `adapter.<lang>.safetensors` with a head
    of this vocabulary's size; otherwise the adapter layers are initialised anew. Returns what was done.
    """
    if not getattr(model.config, "adapter_attn_dim", None):
        raise ValueError(
            f"model.adapter.target_lang={target_lang}: {type(model).__name__} ({model.config.model_type}) has no "
            "adapter layers (config.adapter_attn_dim): use an MMS checkpoint (model=mms_1b_all) or set "
            "model.adapter.attn_dim for a random-init model"
        )
    if all(_is_head(name) for name in model._get_adapters()):
        # transformers builds adapter layers only into stable-layer-norm encoder layers (MMS, XLS-R); elsewhere
        # adapter_attn_dim is ignored and "adapter training" would silently train the output layer alone
        raise ValueError(
            f"model.adapter.target_lang={target_lang}: {type(model).__name__} has adapter_attn_dim but no adapter "
            "layers: transformers builds them only in stable-layer-norm encoders (do_stable_layer_norm=true, as "
            "MMS and XLS-R)"
        )
    vocab = model.config.vocab_size  # the tokenizer's
    how = "initialised anew"
    loaded = False
    if pretrained is not None and _has_adapter_file(pretrained, target_lang):
        try:
            model.load_adapter(target_lang, force_load=True)
            loaded = True
        except OSError as err:  # a Hub checkpoint without this language's adapter (or none cached offline)
            log.warning("%s has no adapter for %s (%s): initialising one", pretrained, target_lang, err)
    if loaded:
        how = f"loaded from {pretrained}"
        if model.lm_head.out_features != vocab:
            # load_adapter sizes the output layer to the checkpoint's own vocabulary for the language; with
            # another tokenizer the head would silently not match it: keep the adapter layers, a new head
            model.lm_head = torch.nn.Linear(model.lm_head.in_features, vocab).to(model.lm_head.weight)
            model.config.vocab_size = vocab
            how += " (its output layer re-initialised for this vocabulary)"
    else:
        model.init_adapter_layers()
    model.freeze_base_model()
    for param in model._get_adapters().values():  # the adapter layers and lm_head
        param.requires_grad = True
    return how


def save_adapter(model: PreTrainedModel, out_dir: str | Path, target_lang: str) -> Path:
    """Write the adapter layers and output layer as `adapter.<lang>.safetensors` (transformers' own name)."""
    from safetensors.torch import save_file

    path = Path(out_dir) / ADAPTER_FILE.format(target_lang)
    state = {k: v.detach().contiguous().cpu() for k, v in model._get_adapters().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def load_adapter_file(model: PreTrainedModel, path: str | Path) -> None:
    """Load an `adapter.<lang>.safetensors` into a base model (its vocabulary's size sets the output layer).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the base model has no adapter layers, or the file holds other weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter={path}: no such file (an adapter.<lang>.safetensors written by training)")
    if not getattr(model.config, "adapter_attn_dim", None):
        raise ValueError(f"adapter={path}: the base model ({model.config.model_type}) has no adapter layers")
    try:
        state = load_file(str(path))
    except SafetensorError as err:
        raise ValueError(f"adapter={path} is not a readable safetensors file ({err}): a cut-short copy?") from None
    params = model._get_adapters()
    expected = set(params)
    if set(state) != expected:
        raise ValueError(
            f"adapter={path} holds {len(state)} tensors that are not this model's adapter weights "
            f"(e.g. {sorted(set(state) ^ expected)[:3]}): was it trained on another base model?"
        )
    # the same names with other sizes (another adapter_attn_dim or hidden size) would fail in load_state_dict
    # with a RuntimeError; only the output layer's rows (the vocabulary) may differ
    wrong = [k for k, v in state.items()
             if (v.shape[1:] != params[k].shape[1:] if _is_head(k) else v.shape != params[k].shape)]  # fmt: skip
    if wrong:
        k = wrong[0]
        raise ValueError(
            f"adapter={path} does not fit this base model: {k} is {list(state[k].shape)}, the model's "
            f"{list(params[k].shape)} ({len(wrong)} tensors of another size): was it trained on another base model?"
        )
    vocab = state["lm_head.weight"].shape[0]
    if vocab != model.lm_head.out_features:
        model.lm_head = torch.nn.Linear(model.lm_head.in_features, vocab).to(model.lm_head.weight.device)
        model.config.vocab_size = vocab
    model.load_state_dict(state, strict=False)


def _has_adapter_file(pretrained: str, target_lang: str) -> bool:
    folder = Path(pretrained).expanduser()
    if folder.is_dir():
        return (folder / ADAPTER_FILE.format(target_lang)).is_file()
    return True  # a Hub id: transformers fetches (and checks) it


def _is_head(name: str) -> bool:
    return name.startswith(HEAD_PREFIX)


def _modules(keys: list[str]) -> str:
    return ", ".join(sorted({k.split(".")[0] for k in keys}))
