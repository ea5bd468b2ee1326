"""Recipes tried on the dev split: one adapter per try, scored on held-back training prompts, logged."""

import json

import pytest

from safeserve_utils import config, experiments
from safeserve_utils.evaluation import report

QUICK = {"dev_per_kind": 2, "judge": "rules", "sit_instructions": 8, "n_safety": 4, "pref_harmful": 2,
         "pref_benign": 2, "train_max_length": 64, "max_new_tokens": 8, "eval_max_new_tokens": 8}


def test_a_try_is_trained_scored_on_the_dev_split_and_logged(tmp_path):
    cfg = config.resolve("smoke", QUICK)
    sit = experiments.run_recipe(cfg, tmp_path, "sit", "sit-a", note="first try")
    assert sit["examples"] == 8 + 4 and not sit["resumed"] and sit["note"] == "first try"
    assert set(sit["dev"]) == set(report.DEV_COLUMNS.values())
    assert all(v["n"] == 2 and 0 <= v["lo"] <= v["value"] <= v["hi"] <= 1 for v in sit["dev"].values())
    assert sit["settings"]["sit_lr"] == cfg.sit_lr and sit["settings"]["dev_per_kind"] == 2
    assert (tmp_path / "experiments" / "sit-a" / "adapter_config.json").exists()
    assert not (tmp_path / "eval").exists()  # tries never enter the run's scorecard

    # DPO on top of the SIT try (its reference model is then the SIT model); another n reuses the data
    dpo = experiments.run_recipe(config.resolve("smoke", {**QUICK, "n_safety": 2}), tmp_path, "dpo", "dpo-on-a",
                                 start="sit-a")
    assert dpo["start"] == "sit-a" and dpo["diagnostics"]["steps"] >= 1
    again = experiments.run_recipe(cfg, tmp_path, "sit", "sit-a")
    assert again["resumed"] and again["dev"] == sit["dev"]
    base = experiments.run_recipe(cfg, tmp_path, "base", "base")
    assert "examples" not in base and set(base["dev"]) == set(sit["dev"])
    log = [json.loads(line) for line in (tmp_path / "experiments" / "log.jsonl").read_text().splitlines()]
    assert [r["name"] for r in log] == ["sit-a", "dpo-on-a", "sit-a", "base"]


def test_a_try_needs_a_dev_split_the_same_data_and_a_known_method(tmp_path):
    with pytest.raises(config.ConfigError, match="dev_per_kind"):
        experiments.run_recipe(config.resolve("smoke", {"dev_per_kind": 0}), tmp_path, "sit", "x")
    with pytest.raises(config.ConfigError, match="method 'ppo'"):
        experiments.run_recipe(config.resolve("smoke", QUICK), tmp_path, "ppo", "x")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text("{}")
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "data_parameters.json").write_text(json.dumps({"pref_harmful": 99}))
    with pytest.raises(config.ConfigError, match="pref_harmful=99"):
        experiments.ensure_data(config.resolve("smoke", QUICK), tmp_path, None, None, None)
