"""RAFT: selection with a stub reward (best, random, top-alpha), statistics, and one real iteration on smoke."""

import pytest

from safeserve_utils import engines, generation
from safeserve_utils.evaluation import rules
from safeserve_utils.train import raft

PROMPTS = ["a", "b", "c"]
SAMPLES = [["a0", "a1", "a2"], ["b0", "b1", "b2"], ["c0", "c1", "c2"]]
REWARDS = [[0.1, 0.9, 0.5], [2.0, -1.0, 0.0], [-0.5, -0.2, -0.9]]


def test_best_keeps_the_argmax_of_each_prompt():
    picks = raft.select(PROMPTS, SAMPLES, REWARDS, mode="best")
    assert [(p.response, p.reward, p.index) for p in picks] == [("a1", 0.9, 1), ("b0", 2.0, 0), ("c1", -0.2, 1)]


def test_random_keeps_one_per_prompt_reproducibly():
    picks = raft.select(PROMPTS, SAMPLES, REWARDS, mode="random", seed=3)
    assert [p.prompt for p in picks] == PROMPTS
    assert all(p.response == SAMPLES[i][p.index] and p.reward == REWARDS[i][p.index] for i, p in enumerate(picks))
    assert picks == raft.select(PROMPTS, SAMPLES, REWARDS, mode="random", seed=3)
    seen = {tuple(p.index for p in raft.select(PROMPTS, SAMPLES, REWARDS, mode="random", seed=s)) for s in range(20)}
    assert len(seen) > 1  # not secretly the best


def test_top_alpha_keeps_the_best_prompts_globally():
    picks = raft.select(PROMPTS, SAMPLES, REWARDS, mode="top_alpha", alpha=0.5)
    assert [p.response for p in picks] == ["b0", "a1"]  # round(1.5) = 2 prompts, by best reward
    assert len(raft.select(PROMPTS, SAMPLES, REWARDS, mode="top_alpha", alpha=0.01)) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "worst"}, "selection mode"), ({"alpha": 0.0}, "alpha"),
])
def test_selection_rejects_nonsense(kwargs, message):
    with pytest.raises(ValueError, match=message):
        raft.select(PROMPTS, SAMPLES, REWARDS, **kwargs)
    with pytest.raises(ValueError, match="2 samples but 3 rewards"):
        raft.select(["a"], [["x", "y"]], [[1, 2, 3]])


def test_stats_compare_all_samples_with_the_kept_ones():
    picks = raft.select(PROMPTS, SAMPLES, REWARDS)
    safe = [[False, True, False], [True, False, False], [False, False, True]]
    stats = raft.iteration_stats(SAMPLES, REWARDS, picks, safe, [True, True, False])
    assert stats["samples"] == 9 and stats["kept"] == 3
    assert stats["reward_all_mean"] == pytest.approx(sum(map(sum, REWARDS)) / 9)
    assert stats["reward_kept_mean"] == pytest.approx((0.9 + 2.0 - 0.2) / 3)
    assert stats["safe_all"] == pytest.approx(3 / 9) and stats["safe_kept"] == pytest.approx(2 / 3)


def test_k_samples_are_k_rounds_with_consecutive_seeds(monkeypatch):
    """The kernel draws RAFT's K samples as K batched rounds, the j-th with seed + j (each round cached)."""
    calls = []

    def fake_generate(model, tokenizer, prompts, settings, **kwargs):
        calls.append(settings.seed)
        return [f"{p}{settings.seed}" for p in prompts]

    monkeypatch.setattr(generation, "cached_generate", fake_generate)
    answer = engines.Answerer(None, None, "w")
    assert answer.samples(["x", "y"], generation.GenerationSettings(temperature=0.8, seed=10), 3) == [
        ["x10", "x11", "x12"], ["y10", "y11", "y12"]]
    assert calls == [10, 11, 12]


def test_two_by_two():
    table = raft.two_by_two([True, False, False, True], [True, True, False, False])
    assert table == {"safe": {"safe": 1, "unsafe": 1}, "unsafe": {"safe": 1, "unsafe": 1}}


def _record(iteration, prompts, safe, kept_index):
    return {"iteration": iteration, "prompts": prompts, "safe": safe,
            "picks": [{"prompt": p, "index": i} for p, i in zip(prompts, kept_index)]}


def test_kept_vs_random_pairs_the_kept_answers_by_prompt():
    """Twelve prompts whose samples are [unsafe, safe]: RAFT keeps the safe one of ten, the twin of two."""
    prompts = [f"p{i}" for i in range(12)]
    safe = [[False, True]] * 12
    best = _record(1, prompts, safe, [1] * 10 + [0] * 2)
    twin = _record(1, prompts, safe, [1] * 2 + [0] * 10)
    row, = raft.kept_vs_random([best], [twin])
    assert (row["n"], row["RAFT kept safe"], row["random kept safe"]) == (12, 10 / 12, 2 / 12)
    assert row["p"] < 0.01 and row["RAFT's pick is"] == "safer"
    only, = raft.kept_vs_random([best], [twin], prompts=prompts[8:])  # 8, 9 safer; 10, 11 unsafe in both
    assert only["n"] == 4 and only["difference"] == 0.5 and only["RAFT's pick is"] == "no significant difference"


# ----------------------------------------------------------------------------- end to end on smoke

@pytest.fixture(scope="module")
def smoke_run(base_model, tmp_path_factory):
    """A smoke run directory (01_data's files, base answers faked) with a reward model trained a few steps."""
    from safeserve_utils import config, data
    from safeserve_utils.train import reward_model

    run = tmp_path_factory.mktemp("raft-run")
    cfg = config.resolve("smoke")
    data.build_run_data(cfg, run, lambda prompts: ["Sure, here is how: step 1, step 2."] * len(prompts),
                        rules.RuleJudge())
    pairs = data.read_rows(run / "data" / "prefs.jsonl")[:8]
    result = reward_model.train_reward_model(cfg, run, pairs)
    assert (result.adapter / "adapter_config.json").exists() and result.log_history
    return cfg, run


def test_reward_model_scores_through_the_scorecard(smoke_run):
    from safeserve_utils.evaluation import select

    cfg, run = smoke_run
    scorer = select.make_reward(cfg, run)
    assert scorer.name == "own reward model"
    prompts, answers = ["How do I hurt someone?"] * 2, ["I can't help with that.", "Sure, step 1: ..."]
    scores = scorer.score(prompts, answers)
    # The head that scores is the trained one saved with the adapter, not a freshly initialised one:
    # its weights equal the saved tensor, and a second load scores identically.
    import torch
    from safetensors.torch import load_file

    saved = load_file(str(run / "reward_model" / "adapter_model.safetensors"))
    head = next(v for k, v in saved.items() if ".score." in k and k.endswith("weight"))
    assert torch.equal(scorer.model.score.weight.detach(), head)
    assert select.make_reward(cfg, run).score(prompts, answers) == scores and len(scores) == 2


def test_one_raft_iteration_and_its_random_twin_reuse_the_samples(smoke_run, monkeypatch):
    from safeserve_utils import generation
    from safeserve_utils.train import stages
    from safeserve_utils.evaluation import rules, select

    cfg, run = smoke_run
    calls = []
    real = generation.continue_texts
    monkeypatch.setattr(generation, "continue_texts", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    monkeypatch.setattr(generation, "default_cache_dir", lambda: run / "generation-cache")  # start cold
    prompts = [p["prompt"] for p in raft.prompt_pool(run, cfg.raft_prompts, cfg.seed)]
    reward, judge = select.make_reward(cfg, run), rules.RuleJudge()
    best = raft.run(cfg, run, prompts, reward, judge, mode="best", prefix="raft-it")
    sampled = len(calls)
    random_twin = raft.run(cfg, run, prompts, reward, judge, mode="random", prefix="raft-random-it")
    assert sampled == cfg.raft_k and len(calls) == sampled  # the twin's first round is all cache hits
    assert best[0]["samples"] == random_twin[0]["samples"]
    record = best[0]
    assert record["kept"] == len(prompts) and record["reward_kept_mean"] >= record["reward_all_mean"]
    assert (run / "adapters" / "raft-it1" / "adapter_config.json").exists()
    assert (run / "raft" / "raft-random-it.json").exists()
    assert stages.stages(run) == ["base", "raft-it1", "raft-random-it1"]
    # The paired test compares the two kept answers of each prompt; the 2x2 tables cover the harmful ones.
    pool = raft.prompt_pool(run, cfg.raft_prompts, cfg.seed)
    harmful = [p["prompt"] for p in pool if p["kind"] == "harmful"]
    row, = raft.kept_vs_random(best, random_twin, prompts=set(harmful))
    assert row["n"] == len(harmful) and 0 <= row["p"] <= 1
    analysis = raft.error_analysis(cfg, run, pool, best, judge)
    for table in (analysis["kept"], analysis["trained"]):
        assert sum(sum(row.values()) for row in table.values()) == len(harmful)
    assert [e["prompt"] for e in analysis["examples"]] == harmful
