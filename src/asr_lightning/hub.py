# pytest tests/test_hub.py
"""Hugging Face Hub access that fails fast, and says what to do, when the Hub cannot be reached."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import datasets
import huggingface_hub.constants

log = logging.getLogger(__name__)
T = TypeVar("T")

OFFLINE_HELP = (
    "The Hugging Face Hub cannot be reached and {what} '{name}' is not in the local cache ({cache}).\n"
    "To fix it, do one of:\n"
    "  - run once where the Hub is reachable (the download is cached), then set HF_HUB_OFFLINE=1 to use the cache;\n"
    "  - copy the cache (HF_HOME) from such a machine, or pass a local directory instead of a Hub id;\n"
    "  - train on local audio: data=audiofolder data.data_dir=/path/to/folder;\n"
    "  - try the offline demo: python train.py experiment=demo"
)


class HubUnavailableError(RuntimeError):
    """A Hub dataset or model was asked for while the Hub is unreachable and it is not cached."""


def load_dataset(path: str, **kwargs: Any) -> datasets.DatasetDict:
    """`datasets.load_dataset` for a Hub dataset, failing fast with `HubUnavailableError` when offline."""
    ensure_hub_or_offline()
    try:
        return datasets.load_dataset(path, **kwargs)
    except OSError as err:  # ConnectionError included
        if is_offline():
            raise HubUnavailableError(_help("dataset", path, datasets.config.HF_DATASETS_CACHE)) from err
        raise


def split_names(path: str, **kwargs: Any) -> list[str]:
    """`datasets.get_dataset_split_names` for a Hub dataset, failing fast as `load_dataset` does."""
    ensure_hub_or_offline()
    try:
        return datasets.get_dataset_split_names(path, **kwargs)
    except OSError as err:
        if is_offline():
            raise HubUnavailableError(_help("dataset", path, datasets.config.HF_DATASETS_CACHE)) from err
        raise


def from_pretrained(cls: type[T], name_or_path: str, what: str = "model", **kwargs: Any) -> T:
    """`cls.from_pretrained(name_or_path)` failing fast with `HubUnavailableError` when offline.

    Raises:
        FileNotFoundError: `name_or_path` looks like a local path (absolute, `.`/`~`, or more than `org/name`)
            and no such directory exists: not a Hub id, so not a question of reaching the Hub.
        HubUnavailableError: a Hub id, the Hub unreachable and the id not cached.
    """
    if Path(name_or_path).expanduser().is_dir():
        return cls.from_pretrained(str(Path(name_or_path).expanduser()), **kwargs)  # type: ignore[attr-defined]
    if looks_local(name_or_path):
        raise FileNotFoundError(f"{name_or_path}: no such directory (a {what} directory, or a Hub id `org/name`)")
    ensure_hub_or_offline()
    try:
        return cls.from_pretrained(name_or_path, **kwargs)  # type: ignore[attr-defined]
    except OSError as err:
        if is_offline():
            raise HubUnavailableError(_help(what, name_or_path, huggingface_hub.constants.HF_HUB_CACHE)) from err
        raise


def looks_local(name: str) -> bool:
    """Whether `name` can only be a local path: absolute, starting with `.` or `~`, or with more parts than a Hub
    id's `org/name`."""
    return Path(name).is_absolute() or name.startswith((".", "~")) or len(Path(name).parts) > 2


def ensure_hub_or_offline(timeout_s: float = 3.0) -> None:
    """Switch the Hub libraries to cache-only mode when the Hub endpoint does not answer.

    Without this, every Hub call retries for ~25 s before giving up; with it, cached files still load
    and missing ones fail at once. The switch is also exported to child processes (DDP ranks, map workers).
    """
    if is_offline():
        return
    url = urlparse(huggingface_hub.constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError as err:
        log.warning("Hugging Face Hub (%s) unreachable (%s): using the local cache only", url.hostname, err)
        set_offline()


def is_offline() -> bool:
    """Whether the Hub libraries are in cache-only mode."""
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def set_offline() -> None:
    """Put huggingface_hub, datasets and transformers in cache-only mode, here and in child processes."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True


def _help(what: str, name: str, cache: str) -> str:
    return OFFLINE_HELP.format(what=what, name=name, cache=cache)
