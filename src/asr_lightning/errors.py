# python train.py model.lr=-1   (error: model.lr=-1 must be > 0)
"""The error of a setting that cannot work, raised by the package and printed by the entry points as one line."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot work (a wrong type or value, a checkpoint or model that is missing or does not
    load), found before the work it would spoil; the entry points print it as one `error:` line."""


class EncoderLoadError(RuntimeError):
    """A checkpoint's encoder did not load whole into the class that read it (`encoders.check_loading`)."""
