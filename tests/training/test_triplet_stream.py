from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from geotriplet_assets.training.triplet_sampler import TripletBatch
from geotriplet_assets.training.triplet_stream import (
    TripletBatchStream,
    TripletDataModule,
    WorkerSamplingError,
)


def _counting_source(requests: list[int]):
    def source(n: int) -> TripletBatch:
        requests.append(n)
        rows = np.arange(n, dtype=np.int64)
        return TripletBatch(rows, rows + 1, rows + 2, np.zeros(n, np.int64), np.zeros(n, bool))

    return source


def test_an_epoch_is_ceil_samples_over_batch_size_batches_of_exactly_samples_triplets() -> None:
    requests: list[int] = []
    module = TripletDataModule(_counting_source(requests), samples_per_epoch=100, batch_size=32)
    loader = module.train_dataloader()
    batches = list(loader)
    assert len(loader) == module.steps_per_epoch == 4 == len(batches)
    assert requests == [32, 32, 32, 4]
    assert [len(b["anchor"]) for b in batches] == requests
    assert set(batches[0]) == {"anchor", "positive", "negative", "band", "self_positive"}


def test_changing_the_batch_size_changes_the_steps_of_the_next_loader() -> None:
    module = TripletDataModule(_counting_source([]), samples_per_epoch=1000, batch_size=64)
    assert len(module.train_dataloader()) == 16
    module.batch_size = 256
    assert len(module.train_dataloader()) == 4


def test_validation_runs_one_step_per_epoch() -> None:
    module = TripletDataModule(_counting_source([]), samples_per_epoch=10, batch_size=4)
    assert len(list(module.val_dataloader())) == 1


def test_the_stream_refuses_to_run_in_a_dataloader_worker() -> None:
    stream = TripletBatchStream(_counting_source([]), samples_per_epoch=8, batch_size=4)
    with pytest.raises(WorkerSamplingError, match="training process"):
        list(DataLoader(stream, batch_size=None, num_workers=1))
