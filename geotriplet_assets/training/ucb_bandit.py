"""Discounted UCB bandit that chooses the distance band of each triplet's negative.

Arms are distance bands (see triplet_sampler). The bandit lives in the
training process, next to the sampler; it is never copied into DataLoader
workers, so every update is seen by the next allocation.

Reward of one triplet: min(loss / margin, 1) with loss = max(0, d(a,p) - d(a,n) + margin),
i.e. how much the triplet still violates the margin, normalised to [0, 1]. A band
whose triplets already satisfy the margin earns ~0, so the bandit moves to bands
that still teach. Each band is credited with the per-triplet rewards of the
triplets it produced (never a batch mean, never a fixed threshold).

Discounting: at every update() the pull counts and reward sums are multiplied
by `decay` before the new credit is added, so old evidence fades geometrically
and the bandit follows a model whose loss landscape changes as it learns
(discounted UCB, Garivier & Moulines 2011). decay = 1 is the plain UCB1.

Score of arm i: mean_i + sqrt(alpha * ln(N) / n_i), with n_i its discounted
pulls and N their sum over available arms; inf for an available arm never
pulled, -inf for an unavailable arm (it is never chosen).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_UNPULLED_MEAN = 0.0
"""Mean reward assumed for an arm without evidence (its first pull is forced anyway)."""


class BanditError(ValueError):
    """Invalid bandit configuration, credit or state."""


def triplet_rewards(losses: np.ndarray, margin: float) -> np.ndarray:
    """Per-triplet reward min(loss / margin, 1) in [0, 1] from per-triplet margin losses."""
    if not margin > 0:
        raise BanditError(f"margin must be positive, got {margin!r}")
    values = np.asarray(losses, dtype=np.float64)
    if not np.isfinite(values).all():
        raise BanditError(f"triplet losses must be finite, got {values[~np.isfinite(values)][0]}")
    if (values < 0).any():
        raise BanditError(f"triplet losses must be non-negative, got {values.min()}")
    return np.minimum(values / margin, 1.0)


def semi_hard_rewards(losses: np.ndarray, margin: float) -> np.ndarray:
    """Per-triplet reward 1 for a semi-hard triplet (0 < loss < margin: the negative is
    farther than the positive, but within the margin), else 0 (FaceNet, Schroff et al. 2015).
    Unlike the loss itself it does not pay most for the hardest band, whose negatives closer
    than the positive are known to stall triplet training."""
    rewards = triplet_rewards(losses, margin)
    return ((rewards > 0) & (rewards < 1)).astype(np.float64)


class UCBBandit:
    """Batched, discounted UCB1 over `num_arms` arms with per-triplet credit."""

    def __init__(
        self,
        num_arms: int,
        alpha: float,
        *,
        available: np.ndarray | None = None,
        decay: float = 0.9,
    ) -> None:
        if num_arms < 1:
            raise BanditError(f"num_arms must be at least 1, got {num_arms}")
        if not alpha > 0:
            raise BanditError(f"alpha must be positive, got {alpha!r}")
        if not 0 < decay <= 1:
            raise BanditError(f"decay must be in (0, 1], got {decay!r}")
        mask = np.ones(num_arms, bool) if available is None else np.asarray(available, bool)
        if mask.shape != (num_arms,):
            raise BanditError(f"available must have shape ({num_arms},), got {mask.shape}")
        if not mask.any():
            raise BanditError("no arm is available: no band can produce a triplet")
        self.num_arms = num_arms
        self.alpha = float(alpha)
        self.decay = float(decay)
        self.available = mask
        self._pulls = np.zeros(num_arms)
        self._reward_sums = np.zeros(num_arms)
        self._pending_pulls = np.zeros(num_arms)
        self._pending_rewards = np.zeros(num_arms)
        self._last_allocation = np.zeros(num_arms)

    def _means(self) -> np.ndarray:
        pulled = self._pulls > 0
        means = np.full(self.num_arms, _UNPULLED_MEAN)
        means[pulled] = self._reward_sums[pulled] / self._pulls[pulled]
        return means

    def _exploration_scores(self, total: float, extra_pulls: np.ndarray) -> np.ndarray:
        """(arms, extra) UCB scores with extra virtual pulls added; inf where no pull at all."""
        pulls = self._pulls[:, None] + extra_pulls
        log_total = np.log(max(total, 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = np.sqrt(self.alpha * log_total / pulls)
        scores = self._means()[:, None] + bonus
        scores[pulls == 0] = np.inf
        scores[~self.available] = -np.inf
        return scores

    def scores(self) -> np.ndarray:
        """Current score per arm (inf: available but never pulled; -inf: unavailable)."""
        total = float(self._pulls[self.available].sum())
        return self._exploration_scores(total, np.zeros((1,)))[:, 0]

    def allocate(self, n: int) -> np.ndarray:
        """Arm (int64) of each of n triplets, grouped by arm: batched UCB with virtual pulls.

        Equals n greedy picks where the j-th pick of an arm is scored as if j
        pulls had already been added to it, with ln(N + n) as the log term for
        the whole batch, so near-tied arms share the batch instead of one arm
        taking all of it. Unpulled available arms come first; ties go to the
        lower arm index. Deterministic given the state.
        """
        if n < 0:
            raise BanditError(f"n must be non-negative, got {n}")
        if n == 0:
            self._last_allocation = np.zeros(self.num_arms)
            return np.empty(0, dtype=np.int64)
        total = float(self._pulls[self.available].sum()) + n
        scores = self._exploration_scores(total, np.arange(n, dtype=np.float64)[None, :])
        # Scores fall along each row, so the greedy picks are the n largest entries.
        flat = scores.ravel()
        threshold = np.partition(flat, flat.size - n)[flat.size - n]
        above = (scores > threshold).sum(axis=1)
        tied = (scores == threshold).sum(axis=1)
        tied_before = np.concatenate(([0], np.cumsum(tied)[:-1]))
        left = n - int(above.sum())
        counts = above + np.clip(left - tied_before, 0, tied)
        self._last_allocation = counts.astype(np.float64)
        return np.repeat(np.arange(self.num_arms, dtype=np.int64), counts)

    def credit(self, arms: np.ndarray, rewards: np.ndarray) -> None:
        """Buffer per-triplet rewards in [0, 1] for the arms that produced the triplets."""
        arm_ids = np.asarray(arms)
        values = np.asarray(rewards, dtype=np.float64)
        if arm_ids.ndim != 1 or arm_ids.shape != values.shape:
            raise BanditError(
                f"arms and rewards must be 1-D of equal length, got {arm_ids.shape} "
                f"and {values.shape}"
            )
        if not np.issubdtype(arm_ids.dtype, np.integer) and arm_ids.size:
            raise BanditError(f"arms must be integers, got dtype {arm_ids.dtype}")
        arm_ids = arm_ids.astype(np.int64, copy=False)
        if ((arm_ids < 0) | (arm_ids >= self.num_arms)).any():
            bad = arm_ids[(arm_ids < 0) | (arm_ids >= self.num_arms)][0]
            raise BanditError(f"arm {bad} is outside [0, {self.num_arms})")
        if arm_ids.size and not self.available[arm_ids].all():
            raise BanditError(f"arm {arm_ids[~self.available[arm_ids]][0]} is unavailable")
        if not np.isfinite(values).all() or ((values < 0) | (values > 1)).any():
            raise BanditError("rewards must be finite and in [0, 1]")
        self._pending_pulls += np.bincount(arm_ids, minlength=self.num_arms)
        self._pending_rewards += np.bincount(arm_ids, weights=values, minlength=self.num_arms)

    def update(self) -> None:
        """Discount the statistics by `decay` and fold the buffered credit into them."""
        self._pulls = self.decay * self._pulls + self._pending_pulls
        self._reward_sums = self.decay * self._reward_sums + self._pending_rewards
        self._pending_pulls = np.zeros(self.num_arms)
        self._pending_rewards = np.zeros(self.num_arms)

    def summary(self) -> dict[str, list[float]]:
        """Per arm, for logging: pulls, mean_reward, score, share of the last allocation."""
        allocated = self._last_allocation.sum()
        share = self._last_allocation / allocated if allocated else self._last_allocation
        return {
            "pulls": self._pulls.tolist(),
            "mean_reward": self._means().tolist(),
            "score": self.scores().tolist(),
            "share": share.tolist(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Statistics and buffered credit as plain Python types."""
        return {
            "num_arms": self.num_arms,
            "alpha": self.alpha,
            "decay": self.decay,
            "available": self.available.tolist(),
            "pulls": self._pulls.tolist(),
            "reward_sums": self._reward_sums.tolist(),
            "pending_pulls": self._pending_pulls.tolist(),
            "pending_rewards": self._pending_rewards.tolist(),
            "last_allocation": self._last_allocation.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict() of a bandit with the same arms."""
        if state.get("num_arms") != self.num_arms:
            raise BanditError(
                f"state has num_arms={state.get('num_arms')!r}, bandit has {self.num_arms}"
            )
        if list(state["available"]) != self.available.tolist():
            raise BanditError("state's available arms differ from this bandit's")
        self.alpha = float(state["alpha"])
        self.decay = float(state["decay"])
        arrays = {}
        for key in ("pulls", "reward_sums", "pending_pulls", "pending_rewards", "last_allocation"):
            values = np.asarray(state[key], dtype=np.float64)
            if values.shape != (self.num_arms,):
                raise BanditError(f"state key {key!r} has shape {values.shape}")
            arrays[key] = values
        self._pulls = arrays["pulls"]
        self._reward_sums = arrays["reward_sums"]
        self._pending_pulls = arrays["pending_pulls"]
        self._pending_rewards = arrays["pending_rewards"]
        self._last_allocation = arrays["last_allocation"]
