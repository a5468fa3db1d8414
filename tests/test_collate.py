# pytest tests/test_collate.py
"""CTCCollator: padding of inputs and labels, lengths, pass-through columns and attention masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr_lightning.collate import LABEL_PAD, CTCCollator


@pytest.fixture
def examples() -> list[dict]:
    return [
        {"id": "a", "text": "HI", "input_values": [0.5, -0.5, 0.25], "labels": [7, 8]},
        {
            "id": "b",
            "text": "HELLO",
            "input_values": np.arange(1, 6, dtype=np.float32),
            "labels": np.array([1, 2, 3, 3, 4]),
        },
        {"id": "c", "text": "O", "input_values": [9.0], "labels": [4]},
    ]


def test_pads_input_values_and_lengths(examples: list[dict]) -> None:
    batch = CTCCollator(return_attention_mask=False)(examples)
    x = batch["input_values"]
    assert x.dtype == torch.float32
    assert x.shape == (3, 5)
    expected = torch.tensor([[0.5, -0.5, 0.25, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0], [9.0, 0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(x, expected)
    assert batch["input_lengths"].tolist() == [3, 5, 1]


def test_custom_padding_value(examples: list[dict]) -> None:
    x = CTCCollator(return_attention_mask=False, padding_value=-1.0)(examples)["input_values"]
    assert x[0, 3:].tolist() == [-1.0, -1.0]
    assert x[2, 1:].tolist() == [-1.0] * 4


def test_pads_labels_with_ignore_index(examples: list[dict]) -> None:
    labels = CTCCollator(return_attention_mask=False)(examples)["labels"]
    assert LABEL_PAD == -100
    assert labels.dtype == torch.long
    assert labels.tolist() == [[7, 8, -100, -100, -100], [1, 2, 3, 3, 4], [4, -100, -100, -100, -100]]


def test_passes_ids_and_texts_through(examples: list[dict]) -> None:
    batch = CTCCollator(return_attention_mask=False)(examples)
    assert batch["ids"] == ["a", "b", "c"]
    assert batch["texts"] == ["HI", "HELLO", "O"]


def test_no_attention_mask_unless_asked(examples: list[dict]) -> None:
    assert "attention_mask" not in CTCCollator(return_attention_mask=False)(examples)


def test_attention_mask_pattern(examples: list[dict]) -> None:
    mask = CTCCollator(return_attention_mask=True)(examples)["attention_mask"]
    assert mask.shape == (3, 5)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


def test_without_labels(examples: list[dict]) -> None:
    batch = CTCCollator(return_attention_mask=False)([{k: v for k, v in e.items() if k != "labels"} for e in examples])
    assert "labels" not in batch
    assert batch["input_values"].shape == (3, 5)


def test_does_not_alias_read_only_inputs() -> None:
    values = np.ones(4, dtype=np.float32)
    values.setflags(write=False)  # arrow-backed numpy arrays are read-only
    batch = CTCCollator(return_attention_mask=False)([{"id": "x", "text": "", "input_values": values, "labels": [1]}])
    batch["input_values"].mul_(2)
    assert values.tolist() == [1.0] * 4
