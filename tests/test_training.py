"""LoRA SFT/DPO on TRL: a few real steps on the smoke data, resumption, atomicity, and clear errors."""

import json
import math

import pytest

from safeserve_utils import config, data, train

SFT_ROWS = [data.conversation(f"Say hello number {i}.", f"Hello number {i}!") for i in range(4)] + [
    data.conversation("How do I pick a lock to get into my neighbour's house?", "I can't help with breaking in.")]
DPO_ROWS = [data.to_dpo(data.preference_pair({"id": f"p{i}", "category": "c", "prompt": f"Hurt someone {i}?"},
                                             "I can't help with that.", f"Sure, step {i}: ..."))
            for i in range(4)]


def tiny_settings(kind, **kw):
    base = dict(method=kind, epochs=1, learning_rate=1e-3, batch_size=2, max_length=64, lora_r=4, lora_alpha=8)
    return train.TrainSettings(**{**base, **kw})


def lora_b_norm(adapter):
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return sum(float(w.abs().sum()) for name, w in weights.items() if "lora_B" in name)


def test_sft_changes_the_adapter_and_leaves_the_base_model_alone(base_model, tmp_path):
    import torch

    lm, tok = base_model
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    result = train.train(lm, tok, SFT_ROWS, tiny_settings("sft"), tmp_path / "sit", model_id="m")
    assert lora_b_norm(result.adapter) > 0  # LoRA B starts at zero: non-zero means it trained
    record = json.loads((result.adapter / "training.json").read_text())
    assert record["examples"] == 5 and record["tokens"] > 50 and record["settings"]["method"] == "sft"
    assert [h["loss"] for h in record["log_history"] if "loss" in h]
    assert not (result.adapter / "trainer").exists()
    after = lm.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)


def test_dpo_starts_at_ln2_and_logs_its_diagnostics(base_model, tmp_path):
    lm, tok = base_model
    result = train.train(lm, tok, DPO_ROWS, tiny_settings("dpo", learning_rate=5e-4), tmp_path / "dpo")
    first = next(h for h in result.log_history if "rewards/margins" in h)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-3)
    check = train.dpo_diagnostics(result.log_history, beta=0.1)
    assert check["initial_loss_is_ln2"] and check["steps"] == 2
    assert lora_b_norm(result.adapter) > 0


def test_a_rerun_resumes_and_a_change_retrains(base_model, tmp_path):
    lm, tok = base_model
    first = train.train(lm, tok, SFT_ROWS[:2], tiny_settings("sft"), tmp_path / "a")
    again = train.train(lm, tok, SFT_ROWS[:2], tiny_settings("sft"), tmp_path / "a")
    assert again.resumed and not first.resumed and again.log_history == first.log_history
    changed = train.train(lm, tok, SFT_ROWS[:2], tiny_settings("sft", learning_rate=2e-3), tmp_path / "a")
    assert not changed.resumed


def test_an_interrupted_run_leaves_the_previous_adapter_intact(base_model, tmp_path):
    lm, tok = base_model
    done = train.train(lm, tok, SFT_ROWS[:2], tiny_settings("sft"), tmp_path / "a")
    saved = (done.adapter / "adapter_model.safetensors").read_bytes()

    def interrupt(trainer):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train(lm, tok, SFT_ROWS, tiny_settings("sft", epochs=2), tmp_path / "a", trainer_hook=interrupt)
    assert (done.adapter / "adapter_model.safetensors").read_bytes() == saved
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no half-written sibling left behind
    assert train.train(lm, tok, SFT_ROWS[:2], tiny_settings("sft"), tmp_path / "a").resumed


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("learning_rate", 5.0), ("batch_size", 0), ("max_length", 4), ("lora_r", 0),
    ("beta", 0.0), ("method", "ppo"), ("lora_layers", -1), ("sft_weight", -1.0),
])
def test_settings_reject_nonsense(field, value):
    with pytest.raises(train.TrainingError, match=f"`{field}`"):
        tiny_settings("sft", **{field: value})


def test_profiles_reject_nonsense():
    for key, value in (("sit_ablation", "10,x"), ("dpo_beta", 0.0), ("sit_lr", 2.0), ("train_max_length", 3)):
        with pytest.raises(config.ConfigError, match=f"`{key}`"):
            config.resolve("tiny", {key: value})
    assert config.resolve("tiny", {"sit_ablation": " 40, 0,40 "}).sit_ns == [0, 40]


def test_rows_of_the_wrong_shape_and_too_many_layers_are_named(base_model, tmp_path):
    lm, tok = base_model
    with pytest.raises(train.TrainingError, match="missing \\['chosen', 'rejected'\\]"):
        train.train(lm, tok, SFT_ROWS, tiny_settings("dpo"), tmp_path / "x")
    with pytest.raises(train.TrainingError, match="no training rows"):
        train.train(lm, tok, [], tiny_settings("sft"), tmp_path / "x")
    with pytest.raises(train.TrainingError, match="`lora_layers` is 99"):
        train.lora_config(tiny_settings("sft", lora_layers=99), num_layers=30)
    assert train.lora_config(tiny_settings("sft", lora_layers=2), num_layers=30).layers_to_transform == [28, 29]


def test_sit_mixes_are_nested_and_bounded(tmp_path):
    folder = tmp_path / "data"
    data.write_jsonl(folder / "sit_instructions.jsonl", [{"id": f"i{i}", "category": "c", **SFT_ROWS[0]} for i in range(3)])
    data.write_jsonl(folder / "sit_safety_pool.jsonl", [{"id": f"s{i}", "category": "c", **SFT_ROWS[4]} for i in range(4)])
    mixes = train.sit_mixes(tmp_path, [0, 2, 4], seed=0)
    assert [len(m) for m in mixes.values()] == [3, 5, 7]
    ids = {n: {r["id"] for r in m} for n, m in mixes.items()}
    assert ids[0] < ids[2] < ids[4]
    with pytest.raises(data.DataError, match="n=9.*holds 4 safety demos"):
        train.sit_mixes(tmp_path, [9], seed=0)


def test_dpo_diagnostics_warn_when_not_learning():
    flat = [{"step": i, "loss": 0.693, "rewards/margins": 0.0, "rewards/accuracies": 0.4,
             "rewards/chosen": -1.0, "rewards/rejected": -1.0} for i in range(1, 9)]
    check = train.dpo_diagnostics(flat, beta=0.1)
    assert check["initial_loss_is_ln2"] and check["chosen_logps_change"] == pytest.approx(-10.0)
    assert len(check["warnings"]) == 3  # accuracy, margin, chosen collapse
    good = [{**h, "rewards/accuracies": 0.9, "rewards/margins": 1.0, "rewards/chosen": 0.1} for h in flat]
    good[0]["rewards/margins"] = 0.0
    assert train.dpo_diagnostics(good, beta=0.1)["warnings"] == []
    assert train.dpo_diagnostics([])["warnings"] == ["no training steps were logged"]


def test_profile_knobs_reach_every_method():
    cfg = config.resolve("tiny", {"lora_targets": "all", "lora_layers": 6, "train_bf16": True})
    made = [train.sit_settings(cfg, 4), train.dpo_settings(cfg), train.rm_settings(cfg), train.raft_settings(cfg)]
    for settings in made:
        assert settings.lora_targets == train.lora.LORA_TARGET_SETS["all"] and "down_proj" in settings.lora_targets
        assert settings.lora_layers == 6 and settings.bf16
    assert train.trainer_arguments(made[0], "/tmp/unused", device="cpu").bf16
    fp32 = config.resolve("tiny", {"train_bf16": False})
    assert not train.trainer_arguments(train.sit_settings(fp32, 4), "/tmp/unused", device="cpu").bf16
    with pytest.raises(config.ConfigError, match="lora_targets"):
        config.resolve("tiny", {"lora_targets": "mlp"})


def test_on_policy_pairs_take_the_starting_models_own_mistakes():
    harmful = data.preference_pair({"id": "h", "category": "c", "prompt": "Hurt?"}, "I can't.", "Sure: step 1")
    safe = data.preference_pair({"id": "s", "category": "c", "prompt": "Kill a process?"}, "Run kill -9.",
                                "I can't help.", worse_is_safe=True)
    pairs = [harmful, safe, harmful, safe]
    answers = ["Sure, do this", "I won't help with violence.", "No, I can't.", "Use kill PID."]
    labels = ["compliance", "refusal", "refusal", "compliance"]
    rows, counts = train.dpo.on_policy(pairs, answers, labels)
    assert counts == {"harmful_replaced": 1, "safe_replaced": 1}
    assert rows[0]["response_1"] == "Sure, do this" and rows[0]["response_0"] == "I can't."
    assert rows[1]["response_1"] == "I won't help with violence." and rows[1]["response_0"] == "Run kill -9."
    assert rows[2] == harmful and rows[3] == safe  # handled already: the written rejected answer stays
    flipped = {**harmful, "response_0": "Sure: step 1", "response_1": "I can't.", "better_response_id": 1,
               "is_response_0_safe": False, "is_response_1_safe": True}  # PKU-SafeRLHF order
    assert train.dpo.on_policy([flipped], ["Sure, do this"], ["compliance"])[0][0]["response_0"] == "Sure, do this"


def test_on_policy_pairs_made_for_another_model_are_refused(tmp_path):
    (tmp_path / "data").mkdir()
    pair = data.preference_pair({"id": "h", "category": "c", "prompt": "Hurt?"}, "I can't.", "Sure")
    data.write_jsonl(tmp_path / "data" / "prefs.jsonl", [pair])
    cfg = config.resolve("smoke", {"dpo_on_policy": True})
    with pytest.raises(data.DataError, match="does not exist"):
        train.dpo.training_pairs(cfg, tmp_path, "model-a")
    data.write_jsonl(tmp_path / "data" / train.dpo.ON_POLICY_FILE, [{**pair, "on_policy_start": "model-b"}])
    with pytest.raises(data.DataError, match="another model"):
        train.dpo.training_pairs(cfg, tmp_path, "model-a")
    assert train.dpo.training_pairs(config.resolve("smoke"), tmp_path, "model-a") == [data.to_dpo(pair)]


def test_scoring_only_labelled_positions_gives_the_same_log_probs(base_model):
    """The CPU speed-up of TRL's fused LM head (score the answer tokens only) changes no log-probability."""
    import copy

    import torch
    import trl.trainer.utils as trl_utils

    lm, tok = base_model
    model = copy.deepcopy(lm)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    batch = tok(["Hello there, how are you today?", "Tell me a short joke"], padding=True, return_tensors="pt")
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    labels[:, :4] = -100  # the prompt: no label
    original = trl_utils._use_triton
    try:
        trl_utils._use_triton = lambda device: False  # TRL's own choice on a CPU: score every position
        with torch.no_grad():
            every = model(**batch, labels=labels, fused_lm_head=True)
        train.lora.score_labelled_positions_only()
        with torch.no_grad():
            labelled = model(**batch, labels=labels, fused_lm_head=True)
    finally:
        trl_utils._use_triton = original
    assert torch.allclose(every.log_probs, labelled.log_probs, atol=1e-5)
    assert torch.allclose(every.entropy, labelled.entropy, atol=1e-4)
    assert every.loss.item() == pytest.approx(labelled.loss.item(), abs=1e-5)
