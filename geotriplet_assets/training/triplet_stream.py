"""Batches of index triplets drawn in the training process, a fixed number per epoch.

The stream asks a triplet source (the LightningModule's bandit and sampler) for
each batch as Lightning consumes it, so every bandit update is seen by the next
draw. It refuses to run inside a DataLoader worker, where a copy of the
sampler would never see those updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from geotriplet_assets.training.triplet_sampler import TripletBatch

TripletSource = Callable[[int], TripletBatch]
TripletTensors = dict[str, torch.Tensor]


class WorkerSamplingError(RuntimeError):
    """The triplet stream was iterated inside a DataLoader worker process."""


def steps_per_epoch(samples_per_epoch: int, batch_size: int) -> int:
    return math.ceil(samples_per_epoch / batch_size)


def triplet_tensors(batch: TripletBatch) -> TripletTensors:
    return {
        "anchor": torch.from_numpy(batch.anchor),
        "positive": torch.from_numpy(batch.positive),
        "negative": torch.from_numpy(batch.negative),
        "band": torch.from_numpy(batch.band),
        "self_positive": torch.from_numpy(batch.self_positive),
    }


class TripletBatchStream(IterableDataset):
    """samples_per_epoch triplets per pass in batches of batch_size (the last one smaller)."""

    def __init__(self, source: TripletSource, samples_per_epoch: int, batch_size: int) -> None:
        if samples_per_epoch < 1 or batch_size < 1:
            raise ValueError(
                f"samples_per_epoch and batch_size must be positive, got "
                f"{samples_per_epoch} and {batch_size}"
            )
        self.source = source
        self.samples_per_epoch = samples_per_epoch
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[TripletTensors]:
        if get_worker_info() is not None:
            raise WorkerSamplingError(
                "triplets must be drawn in the training process (num_workers=0): a worker's "
                "copy of the sampler never sees the bandit's updates"
            )
        remaining = self.samples_per_epoch
        while remaining > 0:
            size = min(self.batch_size, remaining)
            remaining -= size
            yield triplet_tensors(self.source(size))


class TripletLoader(DataLoader):
    """A DataLoader over a TripletBatchStream whose length is the stream's number of batches.

    The stream itself has no length, so Lightning's batch-size finder does not take
    a batch count for a dataset size.
    """

    def __init__(self, stream: TripletBatchStream) -> None:
        super().__init__(stream, batch_size=None, num_workers=0)
        self.steps = steps_per_epoch(stream.samples_per_epoch, stream.batch_size)

    def __len__(self) -> int:
        return self.steps


class TripletDataModule(L.LightningDataModule):
    """Training triplets from SOURCE; `batch_size` may be changed by Lightning's Tuner."""

    def __init__(self, source: TripletSource, samples_per_epoch: int, batch_size: int) -> None:
        super().__init__()
        self.source = source
        self.samples_per_epoch = samples_per_epoch
        self.batch_size = batch_size

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.samples_per_epoch, self.batch_size)

    def train_dataloader(self) -> TripletLoader:
        return TripletLoader(
            TripletBatchStream(self.source, self.samples_per_epoch, self.batch_size)
        )

    def val_dataloader(self) -> DataLoader:
        """One placeholder item: validation embeds the whole validation split at once."""
        return DataLoader([torch.zeros(1)], batch_size=None, num_workers=0)
