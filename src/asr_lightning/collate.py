# pytest tests/test_collate.py
"""CTC batch collation: pure tensor work, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

LABEL_PAD = -100  # ignored by Wav2Vec2ForCTC's loss


class CTCCollator:
    """Pad a list of preprocessed examples into a batch.

    Args:
        return_attention_mask: emit `attention_mask`. Only for feature extractors that return one:
            wav2vec2-base's group-norm encoder was trained on unmasked zero padding.
        padding_value: input padding value (the feature extractor's, 0.0).
        input_name: the model input: `input_values` (samples,) per example, or `input_features` (frames, dim)
            (filterbank models such as w2v-BERT 2.0), padded along time either way.
    """

    def __init__(
        self, return_attention_mask: bool, padding_value: float = 0.0, input_name: str = "input_values"
    ) -> None:
        self.return_attention_mask = return_attention_mask
        self.padding_value = padding_value
        self.input_name = input_name

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        name = self.input_name
        # clips a worker could not decode (`transform.ClipDataset`): left out of the batch, and named in it
        dropped = [(e["id"], e["failed"]) for e in examples if "failed" in e]
        examples = [e for e in examples if "failed" not in e]
        if not examples:
            return {"ids": [], "texts": [], "num_samples": [], "dropped": dropped}
        inputs = [_float_tensor(e[name]) for e in examples]
        batch: dict[str, Any] = {
            name: pad_sequence(inputs, batch_first=True, padding_value=self.padding_value),  # (B, T) or (B, T, dim)
            "input_lengths": torch.tensor([len(x) for x in inputs]),
            # host-side copies (plain ints stay on the CPU when the batch moves to the GPU): CTC lengths and
            # throughput counting read them without a device-to-host sync. Samples of audio, also for filterbanks
            # (`input_length`, as the data module stores it), from which every frame count is derived.
            "num_samples": [int(e.get("input_length", len(x))) for e, x in zip(examples, inputs, strict=True)],
            "ids": [e["id"] for e in examples],
            "texts": [e["text"] for e in examples],
            "dropped": dropped,
        }
        if "set" in examples[0]:  # a role of several sets: each clip is scored in its own
            batch["sets"] = [e["set"] for e in examples]
        if self.return_attention_mask:
            lengths = batch["input_lengths"]
            # int32, as the feature extractors return it: half the bytes of int64 for a (B, T) of samples
            batch["attention_mask"] = (torch.arange(batch[name].shape[1])[None, :] < lengths[:, None]).to(torch.int32)
        if "labels" in examples[0]:
            labels = [
                torch.tensor(e["labels"], dtype=torch.long) for e in examples
            ]  # copies: Arrow memory is read-only
            batch["labels"] = pad_sequence(labels, batch_first=True, padding_value=LABEL_PAD)  # (B, L)
            batch["label_lengths"] = [len(x) for x in labels]
        return batch


def _float_tensor(values: Any) -> torch.Tensor:
    # A worker's fresh float32 features are shared, not copied (the padded batch is a new tensor anyway);
    # anything else (lists, read-only Arrow buffers, other dtypes) is copied.
    if isinstance(values, np.ndarray) and values.dtype == np.float32 and values.flags.writeable:
        return torch.from_numpy(values)
    return torch.tensor(np.asarray(values), dtype=torch.float32)
