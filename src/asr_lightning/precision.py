# python train.py trainer.precision=bf16-mixed   (or python predict.py precision=auto)
"""Numeric precision, one rule for training and inference: bf16 where the GPU has it, fp16 on older GPUs, fp32 else.

The names are Lightning's (`32-true`, `bf16-mixed`, `16-mixed`); inference runs the mixed ones as autocast.
"""

from __future__ import annotations

import torch

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
# predict.py's earlier spelling of fp32
ALIASES = {"32": "32-true"}


def resolve_precision(precision: str = "auto", device: str | torch.device | None = None) -> str:
    """One of `PRECISIONS` for `device` (None: CUDA when there is one).

    Args:
        precision: `auto`, one of `PRECISIONS`, or `32` (= `32-true`).
        device: where the model runs; `auto` picks mixed precision on CUDA devices only.

    Raises:
        ValueError: an unknown precision, naming the accepted ones.
    """
    precision = ALIASES.get(str(precision), str(precision))
    if precision == "auto":
        cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
        if not cuda:
            return "32-true"
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} must be auto or one of {list(PRECISIONS)}")
    return precision


def autocast(precision: str, device: str | torch.device) -> torch.autocast:
    """Autocast for a resolved precision: bf16/fp16 for the mixed settings, off for `32-true`."""
    device_type = torch.device(device).type
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return torch.autocast(device_type, dtype=dtype, enabled=resolve_precision(precision, device) != "32-true")
