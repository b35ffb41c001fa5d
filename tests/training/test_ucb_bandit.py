import json

import numpy as np
import pytest

from geotriplet_assets.training.ucb_bandit import (
    BanditError,
    UCBBandit,
    semi_hard_rewards,
    triplet_rewards,
)


def _sequential_allocation(bandit: UCBBandit, n: int) -> list[int]:
    """Per-pull greedy reference: argmax of scores with pending virtual pulls."""
    state = bandit.state_dict()
    pulls = np.array(state["pulls"])
    sums = np.array(state["reward_sums"])
    available = np.array(state["available"])
    log_total = np.log(max(pulls[available].sum() + n, 1.0))
    pending = np.zeros_like(pulls)
    chosen = []
    for _ in range(n):
        counts = pulls + pending
        means = np.divide(sums, pulls, out=np.zeros_like(sums), where=pulls > 0)
        with np.errstate(divide="ignore"):
            scores = means + np.sqrt(bandit.alpha * log_total / counts)
        scores[counts == 0] = np.inf
        scores[~available] = -np.inf
        arm = int(np.argmax(scores))
        pending[arm] += 1
        chosen.append(arm)
    return chosen


def test_triplet_rewards_are_margin_violation_clipped_to_one() -> None:
    rewards = triplet_rewards(np.array([0.0, 0.15, 0.3, 0.9]), margin=0.3)
    np.testing.assert_allclose(rewards, [0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize(
    ("losses", "margin"), [([np.nan], 0.3), ([-0.1], 0.3), ([0.1], 0.0), ([np.inf], 0.3)]
)
def test_triplet_rewards_reject_bad_input(losses: list[float], margin: float) -> None:
    with pytest.raises(BanditError):
        triplet_rewards(np.array(losses), margin)


def test_credit_reaches_only_the_credited_arm() -> None:
    bandit = UCBBandit(4, alpha=2.0, decay=1.0)
    bandit.credit(np.arange(4).repeat(10), np.full(40, 0.2))
    bandit.update()
    before = bandit.summary()
    bandit.credit(np.full(10, 2), np.ones(10))
    bandit.update()
    after = bandit.summary()
    assert after["mean_reward"][2] == pytest.approx(0.6)
    assert after["pulls"][2] == 20
    for arm in (0, 1, 3):
        assert after["mean_reward"][arm] == before["mean_reward"][arm]
        assert after["pulls"][arm] == before["pulls"][arm]


def test_credit_is_buffered_until_update() -> None:
    bandit = UCBBandit(3, alpha=2.0)
    bandit.credit(np.array([0, 1, 2]), np.array([1.0, 0.0, 0.5]))
    assert np.isinf(bandit.scores()).all()
    bandit.update()
    assert bandit.summary()["mean_reward"] == [1.0, 0.0, 0.5]


def test_unavailable_arms_are_never_allocated() -> None:
    available = np.array([True, False, True, False])
    bandit = UCBBandit(4, alpha=2.0, available=available)
    arms = bandit.allocate(1000)
    assert set(arms.tolist()) == {0, 2}
    assert np.isneginf(bandit.scores()[~available]).all()
    with pytest.raises(BanditError, match="arm 1 is unavailable"):
        bandit.credit(np.array([1]), np.array([0.5]))


def test_unpulled_available_arms_are_explored_first() -> None:
    bandit = UCBBandit(4, alpha=2.0)
    assert bandit.allocate(1).tolist() == [0]
    bandit.credit(np.array([0, 1] * 50), np.ones(100))
    bandit.update()
    assert sorted(bandit.allocate(2).tolist()) == [2, 3]


def test_allocate_spreads_a_batch_over_tied_arms() -> None:
    bandit = UCBBandit(4, alpha=2.0)
    bandit.credit(np.arange(4).repeat(100), np.full(400, 0.5))
    bandit.update()
    counts = np.bincount(bandit.allocate(400), minlength=4)
    assert counts.tolist() == [100, 100, 100, 100]


def test_allocate_favours_the_arm_with_higher_reward() -> None:
    bandit = UCBBandit(3, alpha=2.0)
    rewards = np.concatenate([np.full(20, 0.1), np.full(20, 0.8), np.full(20, 0.1)])
    bandit.credit(np.arange(3).repeat(20), rewards)
    bandit.update()
    counts = np.bincount(bandit.allocate(2000), minlength=3)
    assert counts[1] > counts[0] + counts[2]
    assert counts[0] == counts[2] > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_allocate_equals_sequential_greedy_with_virtual_pulls(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bandit = UCBBandit(6, alpha=2.0, available=np.array([1, 1, 0, 1, 1, 1], bool))
    arms = rng.choice([0, 1, 3, 4], size=300)
    bandit.credit(arms, rng.random(300))
    bandit.update()
    assert bandit.allocate(257).tolist() == sorted(_sequential_allocation(bandit, 257))


def test_update_discounts_statistics_by_decay() -> None:
    bandit = UCBBandit(2, alpha=2.0, decay=0.5)
    bandit.credit(np.array([0, 0, 1, 1]), np.array([1.0, 0.0, 1.0, 1.0]))
    bandit.update()
    bandit.update()
    summary = bandit.summary()
    assert summary["pulls"] == [1.0, 1.0]
    assert summary["mean_reward"] == [0.5, 1.0]
    bandit.credit(np.array([0, 0]), np.array([0.0, 0.0]))
    bandit.update()
    assert bandit.summary()["mean_reward"][0] == pytest.approx(0.25 / 2.5)


def test_state_round_trip_reproduces_allocation_and_summary() -> None:
    bandit = UCBBandit(5, alpha=1.5, available=np.array([1, 1, 1, 0, 1], bool), decay=0.8)
    bandit.credit(np.array([0, 1, 2, 4, 4]), np.array([0.1, 0.9, 0.3, 0.2, 0.4]))
    bandit.update()
    bandit.allocate(17)
    bandit.credit(np.array([1]), np.array([0.5]))
    state = json.loads(json.dumps(bandit.state_dict()))
    restored = UCBBandit(5, alpha=1.0, available=np.array([1, 1, 1, 0, 1], bool))
    restored.load_state_dict(state)
    assert restored.summary() == bandit.summary()
    restored.update()
    bandit.update()
    assert restored.allocate(64).tolist() == bandit.allocate(64).tolist()


def test_load_state_dict_rejects_a_different_bandit() -> None:
    state = UCBBandit(3, alpha=2.0).state_dict()
    with pytest.raises(BanditError, match="num_arms"):
        UCBBandit(4, alpha=2.0).load_state_dict(state)


def test_summary_share_is_the_last_allocation() -> None:
    bandit = UCBBandit(3, alpha=2.0)
    arms = bandit.allocate(30)
    share = bandit.summary()["share"]
    assert share == pytest.approx((np.bincount(arms, minlength=3) / 30).tolist())


@pytest.mark.parametrize(
    ("arms", "rewards", "message"),
    [
        ([0, 3], [0.5, 0.5], "outside"),
        ([-1], [0.5], "outside"),
        ([0], [1.5], r"\[0, 1\]"),
        ([0, 1], [0.5], "equal length"),
    ],
)
def test_credit_rejects_bad_input(arms: list[int], rewards: list[float], message: str) -> None:
    with pytest.raises(BanditError, match=message):
        UCBBandit(3, alpha=2.0).credit(np.array(arms), np.array(rewards))


@pytest.mark.parametrize(
    "kwargs", [{"num_arms": 0}, {"alpha": 0.0}, {"decay": 0.0}, {"available": [False] * 3}]
)
def test_constructor_rejects_bad_configuration(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"num_arms": 3, "alpha": 2.0} | kwargs
    with pytest.raises(BanditError):
        UCBBandit(**arguments)  # type: ignore[arg-type]


def test_the_semi_hard_reward_pays_only_triplets_inside_the_margin() -> None:
    losses = np.array([0.0, 0.1, 0.29, 0.3, 0.9])
    np.testing.assert_array_equal(semi_hard_rewards(losses, 0.3), [0, 1, 1, 0, 0])
    with pytest.raises(BanditError, match="non-negative"):
        semi_hard_rewards(np.array([-0.1]), 0.3)
