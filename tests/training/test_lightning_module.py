from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from geotriplet_assets.training.lightning_module import TripletHeadModule
from geotriplet_assets.training.params import SAMPLING_MODES, HeadParams
from geotriplet_assets.training.split_data import TrainingData
from geotriplet_assets.training.triplet_stream import TripletDataModule, triplet_tensors
from geotriplet_assets.training.ucb_bandit import UCBBandit
from tests.factories.toy_training_data import toy_training_data

PARAMS = HeadParams(
    lr=3e-3, embedding_size=32, hidden_size=64, dropout=0.0, batch_size=64, warmup_epochs=0
)


class RecordingBandit(UCBBandit):
    """A real UCB bandit that remembers what it was credited and when it was updated."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.credits: list[tuple[np.ndarray, np.ndarray]] = []
        self.updates_after_credit: list[int] = []

    def credit(self, arms: np.ndarray, rewards: np.ndarray) -> None:
        self.credits.append((np.array(arms), np.array(rewards)))
        super().credit(arms, rewards)

    def update(self) -> None:
        self.updates_after_credit.append(len(self.credits))
        super().update()


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return toy_training_data()


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fit(
    module: TripletHeadModule, root: Path, *, epochs: int, samples: int, batch: int
) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )
    trainer.fit(module, datamodule=TripletDataModule(module.draw_triplets, samples, batch))
    return trainer


def test_each_triplet_credits_its_own_reward_to_its_band_and_updates_follow_the_frequency(
    data: TrainingData, tmp_path: Path
) -> None:
    module = TripletHeadModule(data.train, data.val, PARAMS, difficulty_update_freq=3, seed=0)
    bandit = RecordingBandit(
        module.sampler.num_arms, PARAMS.ucb_alpha, available=module.sampler.available
    )
    module.bandit = bandit
    _fit(module, tmp_path, epochs=2, samples=320, batch=64)

    assert len(bandit.credits) == 10  # 2 epochs x ceil(320 / 64) steps
    assert all(len(arms) == len(rewards) == 64 for arms, rewards in bandit.credits)
    rewards = np.concatenate([r for _, r in bandit.credits])
    assert ((rewards >= 0) & (rewards <= 1)).all()
    assert len(np.unique(np.round(rewards, 6))) > 10, "per-triplet rewards, not a batch mean"
    arms = np.concatenate([a for a, _ in bandit.credits])
    assert len(np.unique(arms)) > 1
    assert bandit.updates_after_credit == [3, 6, 9]
    assert module.bandit_updates == 3


def test_band_shares_success_rates_and_validation_recall_are_logged(
    data: TrainingData, tmp_path: Path
) -> None:
    module = TripletHeadModule(data.train, data.val, PARAMS, seed=0)
    trainer = _fit(module, tmp_path, epochs=1, samples=256, batch=64)
    metrics = trainer.callback_metrics
    for arm in range(module.sampler.num_arms):
        assert f"band/{arm}/share" in metrics
    assert any(name.endswith("/success_rate") for name in metrics)
    assert 0 <= float(metrics["val/recall@1"]) <= 1
    assert "train/loss_epoch" in metrics
    [epoch] = module.history
    assert math.isclose(sum(epoch["band_share"]), 1.0)
    assert len(epoch["band_success_rate"]) == module.sampler.num_arms


@pytest.mark.parametrize("sampling", SAMPLING_MODES)
def test_every_sampling_mode_trains(data: TrainingData, tmp_path: Path, sampling: str) -> None:
    module = TripletHeadModule(data.train, data.val, PARAMS, sampling=sampling, seed=0)
    before = [parameter.detach().clone() for parameter in module.head.parameters()]
    _fit(module, tmp_path, epochs=1, samples=1536, batch=128)
    after = list(module.head.parameters())
    assert any(not torch.equal(old, new) for old, new in zip(before, after, strict=True))
    share = np.array(module.history[0]["band_share"])
    available = module.sampler.available
    far_band = module.sampler.num_bands
    if sampling == "uniform_bands":
        np.testing.assert_allclose(share[available], 1 / available.sum(), atol=0.05)
    if sampling == "random":
        # 40 targets, 10 neighbours each: about 29 of 39 random negatives lie in the far band.
        assert share[far_band] == pytest.approx(29 / 39, abs=0.06)
    if sampling == "ucb_semihard":
        rewards = np.array(module.history[0]["band_mean_reward"])
        assert np.nanmax(rewards) <= 1 and np.nanmin(rewards) >= 0
    assert module.history[0]["train_loss"] >= 0


def test_checkpoint_state_restores_bandit_sampler_and_history(
    data: TrainingData, tmp_path: Path
) -> None:
    module = TripletHeadModule(data.train, data.val, PARAMS, seed=0)
    _fit(module, tmp_path, epochs=1, samples=256, batch=64)
    checkpoint: dict = {"hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)

    fresh = TripletHeadModule(data.train, data.val, PARAMS, seed=0)
    fresh.on_load_checkpoint(checkpoint)
    assert fresh.bandit.state_dict() == module.bandit.state_dict()
    assert fresh.history == module.history
    np.testing.assert_array_equal(
        fresh.draw_triplets(50).negative, module.draw_triplets(50).negative
    )


def test_a_checkpoint_of_other_parameters_is_refused(data: TrainingData) -> None:
    module = TripletHeadModule(data.train, data.val, PARAMS, seed=0)
    checkpoint: dict = {"hyper_parameters": {**module.hparams, "margin": 0.9}}
    module.on_save_checkpoint(checkpoint)
    with pytest.raises(ValueError, match=r"margin: checkpoint 0\.9"):
        module.on_load_checkpoint(checkpoint)


def test_ucb_inbatch_adds_the_mined_in_batch_loss_to_the_bandit_triplets(
    data: TrainingData,
) -> None:
    plain = TripletHeadModule(data.train, data.val, PARAMS, sampling="ucb", seed=0)
    mined = TripletHeadModule(data.train, data.val, PARAMS, sampling="ucb_inbatch", seed=0)
    mined.head.load_state_dict(plain.head.state_dict())
    plain.eval(), mined.eval()
    triplets = plain.draw_triplets(128)
    batch = triplet_tensors(triplets)
    with torch.no_grad():
        rows, outputs, _ = mined._embed_batch(batch)
        in_batch = float(mined._mined_loss(rows, outputs))
        plain_loss = float(plain.training_step(batch, 0))
        mined_loss = float(mined.training_step(batch, 0))
    assert in_batch > 0
    assert mined_loss == pytest.approx(plain_loss + in_batch, rel=1e-5)
    # both credit the bandit with the sampled triplets' own rewards, not the mined ones
    np.testing.assert_allclose(mined.bandit._pending_rewards, plain.bandit._pending_rewards)
