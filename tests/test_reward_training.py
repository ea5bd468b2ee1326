"""The project's reward model: stratified held-out split and RewardBench-style accuracy with a stub scorer."""

import pytest

from safeserve_utils.train import reward_model


def pair(i, harmful):
    return {"prompt": f"p{i}", "response_0": f"good{i}", "response_1": f"bad{i}", "better_response_id": 0,
            "is_response_1_safe": not harmful}


PAIRS = [pair(i, harmful=i < 10) for i in range(20)]


def test_split_keeps_both_kinds_in_both_halves():
    train, test = reward_model.split_pairs(PAIRS, held_out=0.2, seed=0)
    assert len(train) == 16 and len(test) == 4
    assert sum(not p["is_response_1_safe"] for p in test) == 2
    assert {p["prompt"] for p in train}.isdisjoint(p["prompt"] for p in test)
    assert reward_model.split_pairs(PAIRS, 0.2, seed=0) == (train, test)
    with pytest.raises(ValueError, match="held_out"):
        reward_model.split_pairs(PAIRS, held_out=1.0, seed=0)


class PrefersGood:
    name = "stub"

    def __init__(self, wrong_on=()):
        self.wrong_on = set(wrong_on)

    def score(self, prompts, responses):
        return [(-1.0 if p in self.wrong_on else 1.0) * (1.0 if r.startswith("good") else 0.0)
                for p, r in zip(prompts, responses)]


def test_accuracy_per_subset():
    rows = {r["subset"]: r for r in reward_model.pair_accuracy(PrefersGood(wrong_on={"p12", "p13"}), PAIRS)}
    assert rows["should refuse"]["rate"] == 1.0 and rows["should refuse"]["n"] == 10
    assert rows["should respond"]["rate"] == 0.8 and rows["all"]["k"] == 18
