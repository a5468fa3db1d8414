# pytest tests/test_hub.py
"""Hub access without a network: fast, actionable failures and a working local/cached path."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from asr_lightning import hub
from asr_lightning.hub import HubUnavailableError


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty Hub and datasets caches under tmp_path (the libraries read these constants at import)."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(home / "datasets"))
    return home


def _offline_flags(monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    # setenv (not delenv) so that set_offline's os.environ write is undone too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", offline)


@pytest.fixture
def offline(hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _offline_flags(monkeypatch, True)
    return hf_cache


@pytest.fixture
def online_flags(hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline flags off."""
    _offline_flags(monkeypatch, False)
    return hf_cache


@pytest.fixture
def listening_port() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


# ---------------------------------------------------------------- offline failures


def test_load_dataset_offline_raises_with_help(offline: Path) -> None:
    with pytest.raises(HubUnavailableError) as info:
        hub.load_dataset("PolyAI/minds14", name="en-US")
    message = str(info.value)
    for needle in ("PolyAI/minds14", "HF_HUB_OFFLINE", "data=audiofolder", "experiment=demo"):
        assert needle in message
    assert str(offline / "datasets") in message  # names the cache that was looked in


def test_from_pretrained_offline_raises_with_help(offline: Path) -> None:
    with pytest.raises(HubUnavailableError) as info:
        hub.from_pretrained(Wav2Vec2ForCTC, "facebook/wav2vec2-base")
    message = str(info.value)
    assert "facebook/wav2vec2-base" in message
    assert "model" in message
    assert str(offline / "hub") in message
    assert isinstance(info.value, RuntimeError)


def test_from_pretrained_offline_names_what(offline: Path) -> None:
    with pytest.raises(HubUnavailableError, match="feature extractor 'facebook/wav2vec2-base'"):
        hub.from_pretrained(Wav2Vec2ForCTC, "facebook/wav2vec2-base", what="feature extractor")


def test_from_pretrained_local_dir_works_offline(offline: Path, tmp_path: Path) -> None:
    config = Wav2Vec2Config(
        vocab_size=12, conv_dim=(8,) * 7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(config)
    model.save_pretrained(tmp_path / "tiny")
    loaded = hub.from_pretrained(Wav2Vec2ForCTC, str(tmp_path / "tiny"))
    assert isinstance(loaded, Wav2Vec2ForCTC)
    assert loaded.config.vocab_size == 12
    torch.testing.assert_close(loaded.lm_head.weight, model.lm_head.weight)
    assert hub.is_offline()


# ---------------------------------------------------------------- switching to offline


def test_ensure_hub_or_offline_switches_when_unreachable(online_flags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    assert not hub.is_offline()
    hub.ensure_hub_or_offline(timeout_s=1.0)
    assert hub.is_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert datasets.config.HF_HUB_OFFLINE is True


def test_ensure_hub_or_offline_switches_on_free_port(online_flags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    hub.ensure_hub_or_offline(timeout_s=1.0)
    assert hub.is_offline()


def test_ensure_hub_or_offline_stays_online_when_reachable(
    online_flags: Path, monkeypatch: pytest.MonkeyPatch, listening_port: int
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{listening_port}")
    hub.ensure_hub_or_offline(timeout_s=1.0)
    assert not hub.is_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert datasets.config.HF_HUB_OFFLINE is False


def test_ensure_hub_or_offline_noop_when_already_offline(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("no connection should be tried when already offline")

    monkeypatch.setattr(socket, "create_connection", fail)
    hub.ensure_hub_or_offline()
    assert hub.is_offline()


def test_switch_is_undone_by_monkeypatch(hf_cache: Path) -> None:
    before = (
        os.environ.get("HF_HUB_OFFLINE"),
        huggingface_hub.constants.HF_HUB_OFFLINE,
        datasets.config.HF_HUB_OFFLINE,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "0")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        mp.setattr(datasets.config, "HF_HUB_OFFLINE", False)
        mp.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
        hub.ensure_hub_or_offline(timeout_s=1.0)
        assert hub.is_offline()
    after = (
        os.environ.get("HF_HUB_OFFLINE"),
        huggingface_hub.constants.HF_HUB_OFFLINE,
        datasets.config.HF_HUB_OFFLINE,
    )
    assert after == before


@pytest.mark.parametrize("name", ["./no_model", "~/no_model", "/no/such/model", "runs/x/hf_model"])
def test_a_missing_local_directory_is_no_such_directory_not_an_unreachable_hub(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def probe() -> None:
        raise AssertionError("a local path must not probe the Hub")

    monkeypatch.setattr(hub, "ensure_hub_or_offline", probe)
    with pytest.raises(FileNotFoundError, match=f"{name}: no such directory"):
        hub.from_pretrained(Wav2Vec2ForCTC, name)
