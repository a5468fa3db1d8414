# pytest tests/test_transform.py
"""The worker-side transform: each clip decoded, resampled, augmented (training) and normalised as it is batched.

The DataLoader workers do in step what preprocessing used to do once and store as float32 (232 MB per audio
hour): decoding and resampling cost about 0.6 s per audio hour on one core, thousands of audio-seconds a
second per worker. A clip's features are the same bits the stored ones were (the same `load_audio` and
`Frontend.features`), so evaluation is unchanged; augmentation draws from a generator seeded by
(seed, epoch, clip), never from a worker's history, so a resumed run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from asr_lightning.audio import AudioError, audio_source, load_audio
from asr_lightning.frontend import Frontend, ctc_min_frames

log = logging.getLogger(__name__)


class ClipDataset(torch.utils.data.Dataset):
    """One split's kept clips: index rows (labels, text, lengths) joined to the source's audio in the workers.

    Args:
        index: the split's kept index rows (`id`, `row`, `text`, `labels`, `input_length`; `index.py`), and a
            `set` column when it holds several sets (LibriSpeech's dev-clean and dev-other): each item names its set.
        source: the split's source rows, its audio column undecoded (`Audio(decode=False)`: bytes or a path).
        audio_column: that column.
        frontend: the model's input and frames (`Frontend`).
        augmenter: training augmentation (`augment.Augmenter`), or None.
        seed: with the epoch and the clip's position, seeds its augmentation.

    An item is `dataset[i]`, or `dataset[(epoch, i)]` from a sampler that tags its epoch (augmentation needs
    it). A clip whose audio fails to decode (only possible with `data.validate_audio=false`) comes back as
    `{"id", "failed"}`: the collator drops it from its batch and counts it, rather than ending the run.
    """

    def __init__(
        self,
        index: Dataset,
        source: Dataset,
        audio_column: str,
        frontend: Frontend,
        augmenter: Any | None = None,
        seed: int = 0,
    ) -> None:
        # The index's columns once, as Arrow arrays (labels: one flat array and offsets): a row of a formatted
        # `datasets` lookup costs ~100 us, the decode of a short clip not much more. No audio here: it is small.
        table = index.select_columns(["id", "row", "text", "input_length", "labels"]).with_format("arrow")[:]
        self._ids, self._texts = table.column("id").combine_chunks(), table.column("text").combine_chunks()
        self._rows = table.column("row").to_numpy()
        self._sets = index["set"] if "set" in index.column_names else None
        self._lengths = table.column("input_length").to_numpy()
        labels = table.column("labels").combine_chunks()
        self._label_offsets, self._label_values = labels.offsets.to_numpy(), labels.values.to_numpy()
        self.source = source.select_columns([audio_column])
        self.audio_column = audio_column
        self.frontend = frontend
        self.augmenter = augmenter if augmenter is not None and augmenter.enabled else None
        self.seed = seed

    def __len__(self) -> int:
        return len(self._rows)

    @staticmethod
    def index_lengths(index: Dataset) -> list[int]:
        """An index's clip lengths (samples at the model's rate), read without building the dataset."""
        return index.select_columns(["input_length"]).with_format("arrow")[:].column("input_length").to_pylist()

    @property
    def lengths(self) -> list[int]:
        """Each clip's samples at the model's rate (before augmentation), for the batch samplers."""
        return self._lengths.tolist()

    def audio(self, i: int) -> np.ndarray:
        """Clip `i`'s audio at the model's rate, as decoded for training (no augmentation)."""
        cell = self.source[int(self._rows[i])][self.audio_column]
        return load_audio(audio_source(cell), self.frontend.sampling_rate)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        i = int(i)
        clip_id = self._ids[i].as_py()
        labels = self._label_values[self._label_offsets[i] : self._label_offsets[i + 1]]
        try:
            audio = self.audio(i)
        except AudioError as err:
            log.warning("dropped %s from its batch: %s (%s)", clip_id, err, err.reason)
            return {"id": clip_id, "failed": err.reason}
        if self.augmenter is not None:
            rng = np.random.default_rng([self.seed, epoch, int(i)])
            factor = self.augmenter.speed_factor(rng)
            # a factor that would leave too few frames for the labels is not drawn for this clip: plain speed
            if ctc_min_frames(labels.tolist()) > self.frontend.output_frames(
                self.augmenter.perturbed_length(len(audio), factor)
            ):
                factor = 1.0
            audio = self.augmenter(audio, rng, factor=factor)
        name = self.frontend.input_name
        item = {name: self.frontend.features(audio), "input_length": len(audio), "labels": labels, "id": clip_id,
                "text": self._texts[i].as_py()}  # fmt: skip
        if self._sets is not None:
            item["set"] = self._sets[i]
        return item
