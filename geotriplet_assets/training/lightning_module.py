"""The LightningModule that trains the projection head with bandit-chosen triplets.

The bandit and the sampler live here, in the training process: the data module
asks `draw_triplets` for every batch, and `training_step` credits each
triplet's reward to the band that produced it. Their state is saved in every
checkpoint, so a resumed run continues the same streams.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, replace
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torch.optim.lr_scheduler import LambdaLR

from geotriplet_assets.evaluation.retrieval_metrics import RetrievalMetrics, evaluate_retrieval
from geotriplet_assets.training.band_stats import BandStatistics
from geotriplet_assets.training.params import HeadParams, SamplingMode, TrainingSettings
from geotriplet_assets.training.projection_head import ProjectionHead
from geotriplet_assets.training.schedule import WarmupCosineSchedule
from geotriplet_assets.training.split_data import SplitData
from geotriplet_assets.training.triplet_sampler import TripletBatch, TripletSampler
from geotriplet_assets.training.triplet_stream import TripletTensors
from geotriplet_assets.training.ucb_bandit import UCBBandit, semi_hard_rewards, triplet_rewards

VAL_RECALL_AT_1 = "val/recall@1"
CHECKPOINT_STATE_KEY = "triplet_training"
EMBED_CHUNK_ROWS = 8192
_RESUME_MAY_DIFFER = frozenset({"batch_size"})


class CheckpointMismatchError(ValueError):
    """A checkpoint that was written by a run with different data or parameters."""


def cosine_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1.0 - functional.cosine_similarity(x, y, dim=-1)


def _float16_rows(store: np.ndarray, rows: np.ndarray | slice) -> torch.Tensor:
    """A copy of STORE's ROWS (a memory map or an array) as a float16 tensor on the host."""
    return torch.from_numpy(np.array(store[rows], dtype=np.float16))


def evaluate_split(
    vectors: np.ndarray, split: SplitData, settings: TrainingSettings, *, normalize: bool = True
) -> RetrievalMetrics:
    """SPLIT's retrieval metrics of VECTORS (row i = image i) as SETTINGS evaluate: the query
    sample, the recall radius and how each query is located."""
    return evaluate_retrieval(
        vectors,
        split.labels,
        split.image_lat,
        split.image_lon,
        normalize=normalize,
        locate_k=settings.locate_k,
        cluster_radius_m=settings.locate_cluster_radius_m,
        max_queries=settings.eval_queries,
        seed=settings.seed,
        recall_radius_m=settings.recall_radius_m,
    )


class TripletHeadModule(L.LightningModule):
    """Projection head + per-triplet margin loss + UCB band bandit + triplet sampler."""

    def __init__(
        self,
        train: SplitData,
        val: SplitData,
        params: HeadParams,
        *,
        sampling: SamplingMode = "ucb",
        difficulty_update_freq: int = 10,
        seed: int = 42,
        evaluation: TrainingSettings | None = None,
    ) -> None:
        super().__init__()
        input_dim = int(train.embeddings.shape[1])
        self.save_hyperparameters(
            {
                **asdict(params),
                "sampling": sampling,
                "difficulty_update_freq": difficulty_update_freq,
                "seed": seed,
                "input_dim": input_dim,
                "train_images": len(train.image_ids),
                "val_images": len(val.image_ids),
            }
        )
        self.params = params
        self.sampling = sampling
        self.difficulty_update_freq = difficulty_update_freq
        self.head = ProjectionHead(
            input_dim, params.embedding_size, params.hidden_size, params.dropout
        )
        self.loss_fn = nn.TripletMarginWithDistanceLoss(
            distance_function=cosine_distance, margin=params.margin, reduction="none"
        )
        self.sampler = TripletSampler(
            train.image_target,
            train.neighbours,
            train.distances_m,
            num_bands=params.num_difficulty_levels,
            seed=seed,
        )
        self.bandit = UCBBandit(
            self.sampler.num_arms, params.ucb_alpha, available=self.sampler.available
        )
        self.band_stats = BandStatistics(self.sampler.num_arms)
        self.val_split = val
        self.evaluation = evaluation or TrainingSettings(seed=seed)
        # float16 rows on the host (memory maps of the pipeline's matrices): each step copies
        # only its batch's rows to the device
        self.train_embeddings = train.embeddings
        self.val_embeddings = val.embeddings
        self._rng = np.random.Generator(np.random.PCG64(seed + 1))
        self.steps_credited = 0
        self.bandit_updates = 0
        self.history: list[dict[str, Any]] = []
        self._epoch_loss_sum = 0.0
        self._epoch_steps = 0
        self._elapsed_before_fit = 0.0
        self._fit_started = time.perf_counter()
        self._last_val: RetrievalMetrics | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def draw_triplets(self, n: int) -> TripletBatch:
        """N triplets whose negatives come from bands chosen by the sampling mode."""
        if self.sampling in ("random", "pml_semihard"):
            batch = self.sampler.sample_uniform_random(n)
            targets = self.sampler.image_target
            bands = self.sampler.band_of(targets[batch.anchor], targets[batch.negative])
            return replace(batch, band=bands)
        if self.sampling == "uniform_bands":
            arms = self._rng.choice(np.flatnonzero(self.sampler.available), size=n)
        else:
            arms = self.bandit.allocate(n)
        return self.sampler.sample(arms)

    def embed(self, embeddings: np.ndarray) -> torch.Tensor:
        """Head outputs (float32, on this module's device) of backbone rows read in chunks."""
        chunks = [
            self.head(
                self._to_device(_float16_rows(embeddings, slice(start, start + EMBED_CHUNK_ROWS)))
            ).float()
            for start in range(0, len(embeddings), EMBED_CHUNK_ROWS)
        ]
        if not chunks:
            return torch.zeros((0, self.params.embedding_size), device=self.device)
        return torch.cat(chunks)

    def _to_device(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.to(self.device, non_blocking=True).float()

    def training_step(self, batch: TripletTensors, batch_idx: int) -> torch.Tensor:
        if self.sampling == "pml_semihard":
            return self._mined_step(batch)
        rows, outputs, position = self._embed_batch(batch)
        size = len(batch["anchor"])
        anchor, positive, negative = (
            outputs[position[start : start + size]] for start in (0, size, 2 * size)
        )
        losses = self.loss_fn(anchor, positive, negative).float()
        loss = losses.mean()
        if self.sampling == "ucb_inbatch":
            loss = loss + self._mined_loss(rows, outputs)
        self._credit_bands(batch["band"].cpu().numpy(), losses.detach().cpu().numpy())
        self._epoch_loss_sum += float(loss.detach())
        self._epoch_steps += 1
        size = len(losses)
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=size, prog_bar=True)
        return loss

    def _embed_batch(
        self, batch: TripletTensors
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch's distinct image rows, their head outputs, and the position of each of
        anchor, positive and negative (concatenated) among them: an image is embedded once."""
        rows = torch.cat((batch["anchor"], batch["positive"], batch["negative"]))
        unique_rows, position = torch.unique(rows, return_inverse=True)
        features = _float16_rows(self.train_embeddings, unique_rows.cpu().numpy())
        return unique_rows, self.head(self._to_device(features)), position

    def _mined_loss(self, rows: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """Mean margin loss of the triplets pytorch-metric-learning's BatchEasyHardMiner mines
        among the batch's images (labels: their targets): for every image with another view in
        the batch, its easiest positive and a semi-hard negative (Xuan et al. 2020)."""
        from pytorch_metric_learning.utils import loss_and_miner_utils

        labels = torch.from_numpy(self.sampler.image_target[rows.cpu().numpy()]).to(self.device)
        anchor, positive, negative = loss_and_miner_utils.convert_to_triplets(
            self._miner(outputs.float(), labels), labels
        )
        if len(anchor) == 0:
            return outputs.sum() * 0.0
        return self.loss_fn(outputs[anchor], outputs[positive], outputs[negative]).mean()

    def _mined_step(self, batch: TripletTensors) -> torch.Tensor:
        """The ablation's reference: random triplets, trained only on what is mined among their
        images (`_mined_loss`)."""
        rows, outputs, _ = self._embed_batch(batch)
        loss = self._mined_loss(rows, outputs)
        self._epoch_loss_sum += float(loss.detach())
        self._epoch_steps += 1
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=len(rows))
        return loss

    @functools.cached_property
    def _miner(self) -> Any:
        """pml's BatchEasyHardMiner, O(n^2) in the batch (its TripletMarginMiner builds
        O(n^3) masks: minutes per epoch at 768 images); imported only by the mining modes."""
        from pytorch_metric_learning import distances, miners

        return miners.BatchEasyHardMiner(
            pos_strategy="easy", neg_strategy="semihard", distance=distances.CosineSimilarity()
        )

    def _credit_bands(self, bands: np.ndarray, losses: np.ndarray) -> None:
        """Credit every triplet's own reward to its band; update the bandit every N steps."""
        reward = semi_hard_rewards if self.sampling == "ucb_semihard" else triplet_rewards
        rewards = reward(losses, self.params.margin)
        known = bands >= 0
        self.band_stats.add(bands[known], rewards[known], losses[known] <= 0.0)
        creditable = known.copy()
        creditable[known] = self.bandit.available[bands[known]]
        self.bandit.credit(bands[creditable], rewards[creditable])
        self.steps_credited += 1
        if self.steps_credited % self.difficulty_update_freq == 0:
            self.bandit.update()
            self.bandit_updates += 1

    def _current_lr(self) -> float:
        optimizer = self.optimizers()
        optimizer = getattr(optimizer, "optimizer", optimizer)
        return float(optimizer.param_groups[0]["lr"])

    def evaluate_embeddings(self, embeddings: np.ndarray, split: SplitData) -> RetrievalMetrics:
        vectors = self.embed(embeddings).cpu().numpy()
        return evaluate_split(vectors, split, self.evaluation, normalize=False)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._last_val = self.evaluate_embeddings(self.val_embeddings, self.val_split)
        self.log_dict(self._last_val.as_dict("val/"), batch_size=1)

    def on_train_start(self) -> None:
        self._fit_started = time.perf_counter()

    def on_train_epoch_start(self) -> None:
        self.band_stats.reset()
        self._epoch_loss_sum = 0.0
        self._epoch_steps = 0

    def on_validation_epoch_end(self) -> None:
        """Log band statistics and record the epoch (before checkpoints are written)."""
        if self.trainer.sanity_checking or self._last_val is None:
            return
        bands = self.band_stats.summary()
        bandit = self.bandit.summary()
        for arm in range(self.sampler.num_arms):
            for name in ("share", "mean_reward", "success_rate"):
                value = bands[name][arm]
                if np.isfinite(value):
                    self.log(f"band/{arm}/{name}", value, batch_size=1)
            if np.isfinite(bandit["score"][arm]):
                self.log(f"band/{arm}/ucb_score", bandit["score"][arm], batch_size=1)
        self.log("train/lr", self._current_lr(), batch_size=1)
        elapsed = self._elapsed_before_fit + time.perf_counter() - self._fit_started
        self.history.append(
            {
                "epoch": int(self.current_epoch),
                "train_loss": self._epoch_loss_sum / max(self._epoch_steps, 1),
                "lr": self._current_lr(),
                "steps": self._epoch_steps,
                "elapsed_s": elapsed,
                **self._last_val.as_dict("val/"),
                "band_share": bands["share"],
                "band_mean_reward": bands["mean_reward"],
                "band_success_rate": bands["success_rate"],
                "bandit_score": bandit["score"],
            }
        )

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.head.parameters(), lr=self.params.lr, weight_decay=self.params.weight_decay
        )
        total_steps = int(self.trainer.estimated_stepping_batches)
        max_epochs = max(1, int(self.trainer.max_epochs or 1))
        steps_per_epoch = max(1, -(-total_steps // max_epochs))
        schedule = WarmupCosineSchedule(self.params.warmup_epochs * steps_per_epoch, total_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_STATE_KEY] = {
            "bandit": self.bandit.state_dict(),
            "sampler": self.sampler.state_dict(),
            "band_stats": self.band_stats.state_dict(),
            "rng": self._rng.bit_generator.state,
            "steps_credited": self.steps_credited,
            "bandit_updates": self.bandit_updates,
            "history": self.history,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_compatible(checkpoint.get("hyper_parameters", {}))
        state = checkpoint.get(CHECKPOINT_STATE_KEY)
        if state is None:
            raise CheckpointMismatchError(
                f"checkpoint has no {CHECKPOINT_STATE_KEY!r} state: not written by "
                "TripletHeadModule"
            )
        self.bandit.load_state_dict(state["bandit"])
        self.sampler.load_state_dict(state["sampler"])
        self.band_stats.load_state_dict(state["band_stats"])
        self._rng.bit_generator.state = state["rng"]
        self.steps_credited = int(state["steps_credited"])
        self.bandit_updates = int(state["bandit_updates"])
        self.history = list(state["history"])
        self._elapsed_before_fit = self.history[-1]["elapsed_s"] if self.history else 0.0

    def _check_compatible(self, stored: dict[str, Any]) -> None:
        differing = sorted(
            key
            for key, value in self.hparams.items()
            if key not in _RESUME_MAY_DIFFER and stored.get(key) != value
        )
        if differing:
            details = ", ".join(
                f"{key}: checkpoint {stored.get(key)!r}, now {self.hparams[key]!r}"
                for key in differing
            )
            raise CheckpointMismatchError(
                f"checkpoint was written with other settings ({details}); start afresh "
                "(resume=False) or restore those settings"
            )
