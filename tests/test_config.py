"""Profiles, overrides and the run record."""

import dataclasses
import json

import pytest

from safeserve_utils import config


def test_profiles_exist_and_smoke_matches_tiny_sources():
    assert set(config.PROFILES) == {"smoke", "tiny", "paper", "paper-dry"}
    smoke, tiny = config.PROFILES["smoke"], config.PROFILES["tiny"]
    # The smoke chain stands in for the default main job in CI: same model, same offline sources.
    assert (smoke.model, smoke.offline) == (tiny.model, tiny.offline) == (config.DEFAULT_MODEL, True)
    assert config.PROFILES["paper"].offline is False
    assert "/" in config.PROFILES["paper"].model


def test_overrides_are_typed():
    parsed = config.parse_overrides(["max_new_tokens=16", "offline=false", "model=./m", "notes=a=b"])
    assert parsed == {"max_new_tokens": 16, "offline": False, "model": "./m", "notes": "a=b"}
    cfg = config.resolve("tiny", parsed)
    assert cfg.max_new_tokens == 16 and cfg.offline is False and cfg.name == "tiny"


@pytest.mark.parametrize(
    "pairs, message",
    [
        (["max_new_token=16"], "unknown parameter `max_new_token`"),
        (["max_new_tokens=lots"], "parameter `max_new_tokens` expects int"),
        (["offline=maybe"], "parameter `offline` expects bool"),
        (["threads"], "must look like key=value"),
    ],
)
def test_bad_overrides_name_the_parameter(pairs, message):
    with pytest.raises(config.ConfigError, match=message):
        config.parse_overrides(pairs)


def test_nonsense_values_are_rejected():
    with pytest.raises(config.ConfigError, match="`threads`"):
        config.resolve("tiny", {"threads": 0})
    with pytest.raises(config.ConfigError, match="`max_new_tokens` expects int"):
        config.resolve("tiny", {"max_new_tokens": True})
    with pytest.raises(config.ConfigError, match="unknown profile 'huge'"):
        config.resolve("huge")
    with pytest.raises(config.ConfigError, match="--profile"):
        config.resolve("tiny", {"name": "paper"})


@pytest.mark.parametrize("key, value", [
    ("dpo_beta", float("inf")), ("sit_lr", float("nan")), ("sit_epochs", 1e-300), ("threads", 1_000_000),
    ("max_new_tokens", 1_000_000_000), ("train_batch_size", 1_000_000_000), ("seed", -1),
    ("judge", "bogus"), ("reward_model", "bogus"),
])
def test_values_that_would_fail_late_are_refused_when_the_profile_is_built(key, value):
    """Each of these used to pass and fail (or hang) only inside the stage that used it."""
    with pytest.raises(config.ConfigError, match=f"parameter `{key}`"):
        config.resolve("tiny", {key: value})


def test_judge_and_reward_model_accept_keywords_folders_and_hub_ids(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    for judge in ("learned", "rules", "meta-llama/Llama-Guard-3-1B", str(tmp_path)):
        assert config.resolve("tiny", {"judge": judge}).judge == judge
    # a folder is looked for on disk before the first stage, not when the profile is built (`paper-dry`
    # names folders that `make fetch` writes)
    missing = config.resolve("tiny", {"reward_model": str(tmp_path / "missing")})
    with pytest.raises(config.ConfigError, match="parameter `reward_model`: directory .*missing does not exist"):
        config.resolve_sources(missing, (config.DEFAULT_MODEL,))


def test_paper_dry_is_the_paper_profile_on_local_stand_ins():
    """Only sizes, where things come from and how they run may differ: the code path is `paper`'s."""
    paper, dry = config.PROFILES["paper"], config.PROFILES["paper-dry"]
    may_differ = {"name", "offline", "threads", "launcher", "num_processes", "answer_engine", "demo_prompts",
                  "max_new_tokens", "eval_max_new_tokens", "n_safety", "sit_instructions", "sit_ablation",
                  "pref_harmful", "train_batch_size", "train_max_length", "sit_epochs", "dpo_epochs",
                  "rm_epochs", "raft_epochs", "raft_prompts", "raft_k", "raft_iterations", "raft_max_new_tokens",
                  *config.stand_in_paths()}
    differ = {f.name for f in dataclasses.fields(paper) if getattr(paper, f.name) != getattr(dry, f.name)}
    assert differ <= may_differ, differ - may_differ
    assert dry.data_source == "paper" and dry.offline and dry.launcher == "torchrun" and dry.num_processes == 2
    assert all(value.startswith(str(config.stand_ins_dir())) for value in config.stand_in_paths().values())


def test_a_guard_is_read_by_probability_unless_a_paper_rule_is_named():
    assert config.PROFILES["paper"].judge == "meta-llama/Llama-Guard-3-1B"
    assert config.resolve("paper", {}).guard_rule == "probability"
    assert config.resolve("tiny", {"guard_rule": "substring"}).guard_rule == "substring"
    with pytest.raises(config.ConfigError, match="`guard_rule` has an invalid value: 'fuzzy' .probability, exact or substring"):
        config.resolve("tiny", {"guard_rule": "fuzzy"})


def test_dpo_start_must_be_base_or_a_sit_stage_the_run_trains():
    tiny = config.PROFILES["tiny"]
    trained = [f"sit-n{n}" for n in tiny.sit_ns]
    assert config.resolve("tiny", {"dpo_start": trained[0]}).dpo_start == trained[0]
    with pytest.raises(config.ConfigError, match="`dpo_start` has an invalid value: 'raft-it1'"):
        config.resolve("tiny", {"dpo_start": "raft-it1"})
    with pytest.raises(config.ConfigError, match=f"`sit_ablation` trains only {', '.join(trained)}"):
        config.resolve("tiny", {"dpo_start": "sit-n7"})


def test_run_config_records_profile_and_versions(tmp_path):
    cfg = config.resolve("smoke", {"max_new_tokens": 7})
    path = config.write_run_config(cfg, tmp_path)
    record = json.loads(path.read_text())
    assert record["profile"]["max_new_tokens"] == 7
    for package in ("torch", "transformers", "trl", "peft", "papermill"):
        assert record["versions"][package] != "not installed"
    assert config.load_run_config(tmp_path) == cfg


def test_open_run_creates_then_reuses_the_record(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = config.open_run(run, "smoke", demo_prompts=1)
    assert (run / "config.json").exists() and cfg.demo_prompts == 1
    again = config.open_run(run, "smoke", demo_prompts=3)
    assert again.demo_prompts == 3
    assert "overrides the run's demo_prompts" in capsys.readouterr().out
    with pytest.raises(config.ConfigError, match="made with profile 'smoke'"):
        config.open_run(run, "tiny")


def test_broken_run_config_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(config.ConfigError, match="config.json is not a SafeServe run config"):
        config.load_run_config(tmp_path)
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load_run_config(tmp_path / "missing")


def test_every_field_is_documented():
    for field in dataclasses.fields(config.Profile):
        assert field.metadata.get("help"), f"Profile.{field.name} has no help text"


def test_the_runtime_silences_peft_s_deprecation_warning_and_no_other():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config.apply_runtime(config.resolve("smoke"))
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]
