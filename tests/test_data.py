"""The project's data files, their validation, and the run datasets built from them."""

import json

import pytest

from safeserve_utils import config, data
from safeserve_utils.data import dedup
from safeserve_utils.evaluation import rules

FILES = list(data.PROJECT_FILES)


@pytest.mark.parametrize("name", FILES)
def test_project_file_is_valid_and_large_enough(name):
    rows = data.load_project(name)
    assert len(rows) >= data.PROJECT_FILES[name][2]


def test_harm_categories_and_borderline_share():
    demos = data.load_project("safety_demos")
    assert len({r["category"] for r in demos}) >= 10
    borderline = [r for r in data.load_project("instructions") if r["category"].startswith("borderline")]
    assert len(borderline) >= 100


def test_labels_cover_the_hard_cases():
    rows = data.load_project("judge_labelled")
    assert {r["label"] for r in rows} == {"refusal", "compliance", "partial", "non-answer"}
    assert {c for r in rows if (c := r["category"]).startswith("hard-")} >= {
        "hard-apology-then-comply", "hard-refusal-without-apology", "hard-helpful-mentions-safety"}


def test_no_training_row_overlaps_evaluation():
    train = [r["prompt"] for n in ("safety_demos", "instructions", "safe_twins", "wordplay") for r in data.load_project(n)]
    evals = [r["prompt"] for n in ("eval_harmful", "eval_borderline", "eval_helpful", "judge_labelled")
             for r in data.load_project(n)] + [r["question"] for r in data.load_project("eval_qa")]
    hits = dedup.overlaps(train, evals)
    assert not hits, [(h.reason, h.train_text, h.eval_text) for h in hits[:5]]


def test_no_duplicate_prompts_within_the_project():
    seen = {}
    for name in ("safety_demos", "instructions", "safe_twins", "wordplay", "eval_harmful", "eval_borderline", "eval_helpful"):
        for r in data.load_project(name):
            key = " ".join(dedup.words(r["prompt"]))
            assert key not in seen, f"{r['id']} repeats {seen[key]}"
            seen[key] = r["id"]


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "category": "c", "prompt": "p"}', "line 2: missing field `response`"),
    ('{"id": "a", "category": "c", "prompt": "p", "response": 3}', "field `response` must be str"),
    ('{"id": "a", "category": "c", "prompt": " ", "response": "r"}', "field `prompt` is empty"),
    ('{"id": "a", "category": "c", "prompt": "p", "response": "r", "x": 1}', "unexpected field `x`"),
    ('{"id": "a", "category": "c", "prompt": "p", "response": "r"', "line 2: not valid JSON"),
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"id": "ok", "category": "c", "prompt": "p", "response": "r"}', "field `id` 'ok' repeats line 1"),
])
def test_malformed_rows_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "category": "c", "prompt": "p", "response": "r"}\n' + line + "\n")
    with pytest.raises(data.DataError, match=message) as err:
        data.read_jsonl(path, data.SFT)
    assert str(path) in str(err.value)


def test_qa_and_label_constraints(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q", "category": "c", "question": "?", "choices": ["a", "b"], "answer": 2}))
    with pytest.raises(data.DataError, match="`answer` 2 is not an index"):
        data.read_jsonl(qa, data.QA)
    lab = tmp_path / "lab.jsonl"
    lab.write_text(json.dumps({"id": "l", "category": "c", "prompt": "p", "response": "r", "label": "maybe"}))
    with pytest.raises(data.DataError, match="`label` is 'maybe'"):
        data.read_jsonl(lab, data.LABELLED)
    with pytest.raises(data.DataError, match="file not found"):
        data.read_jsonl(tmp_path / "none.jsonl", data.SFT)


def test_sit_mix_is_nested_and_reproducible():
    instructions = [{"id": f"i{i}"} for i in range(10)]
    pool = [{"id": f"s{i}"} for i in range(8)]
    small = data.sit_mix(instructions, pool, 2, seed=0)
    large = data.sit_mix(instructions, pool, 5, seed=0)
    assert {r["id"] for r in small} < {r["id"] for r in large}
    assert small == data.sit_mix(instructions, pool, 2, seed=0)
    with pytest.raises(data.DataError, match="`n_safety` is 9"):
        data.sit_mix(instructions, pool, 9, seed=0)


def test_to_dpo_uses_the_better_response():
    pair = data.preference_pair({"id": "x", "category": "c", "prompt": "p"}, "safe", "unsafe")
    assert data.to_dpo(pair) == {
        "prompt": [{"role": "user", "content": "p"}],
        "chosen": [{"role": "assistant", "content": "safe"}],
        "rejected": [{"role": "assistant", "content": "unsafe"}],
    }
    assert pair["is_response_0_safe"] and not pair["is_response_1_safe"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    asked = []

    def fake_base(prompts):
        asked.extend(prompts)
        # every other answer is a refusal: those must not become rejected answers
        return ["I can't help with that." if i % 2 else "Sure, here is a detailed plan you can follow, step by step."
                for i, _ in enumerate(prompts)]

    manifest = data.build_run_data(config.resolve("smoke"), run_dir, fake_base, rules.RuleJudge())
    return run_dir / "data", manifest, asked


def test_build_writes_every_file(built):
    out, manifest, _ = built
    smoke = config.PROFILES["smoke"]
    assert len(data.read_rows(out / "sit_mix.jsonl")) == manifest["sit"]["mix"] == smoke.sit_instructions + smoke.n_safety
    for name in data.EVAL_SETS:
        assert len(data.read_rows(out / f"eval_{name}.jsonl")) == smoke.eval_per_set
    row = data.read_rows(out / "sit_mix.jsonl")[0]
    assert row["prompt"][0]["role"] == "user" and row["completion"][0]["role"] == "assistant"


def test_refusing_base_answers_are_not_used_as_rejected(built):
    out, manifest, asked = built
    prefs = manifest["prefs"]
    assert prefs["base_answers_generated"] == len(asked)
    assert prefs["base_compliant"] == (len(asked) + 1) // 2
    for pair in data.read_rows(out / "prefs.jsonl"):
        assert pair["response_1"] != "I can't help with that."


def test_zero_pairs_of_a_side_means_none_of_it(tmp_path):
    def fake_base(prompts):
        return ["Sure, here is a detailed plan you can follow, step by step."] * len(prompts)

    cfg = config.resolve("smoke", {"pref_benign": 0, "pref_harmful": 3})
    data.build_run_data(cfg, tmp_path, fake_base, rules.RuleJudge())
    pairs = data.read_rows(tmp_path / "data" / "prefs.jsonl")
    assert len(pairs) == 3 and not any(p["is_response_1_safe"] for p in pairs)


def test_training_never_overlaps_evaluation(built):
    out, manifest, _ = built
    assert manifest["overlap_dropped_from_training"], "AdvBench overlaps published eval sets"
    evals = [r["prompt"] for rows in data.evaluation_sets(config.resolve("smoke")).values() for r in rows]
    index = dedup.OverlapIndex(evals)
    trained = [r["prompt"][0]["content"] for r in data.read_rows(out / "sit_safety_pool.jsonl")]
    trained += [p["prompt"] for p in data.read_rows(out / "prefs.jsonl")]
    assert not [t for t in trained if index.find(t)]


def test_dev_split_is_carved_out_of_training_evenly(tmp_path):
    cfg = config.resolve("smoke", {"dev_per_kind": 12, "sit_instructions": 0})
    manifest = data.build_run_data(cfg, tmp_path, lambda ps: ["Sure, here is how."] * len(ps), rules.RuleJudge())
    out = tmp_path / "data"
    dev = {name: data.read_rows(out / f"dev_{name}.jsonl") for name in data.DEV_SETS}
    assert {name: len(rows) for name, rows in dev.items()} == {name: 12 for name in data.DEV_SETS}
    assert {n: m["used"] for n, m in manifest["dev"].items()} == {name: 12 for name in data.DEV_SETS}
    assert all(r["category"].startswith("borderline") for r in dev["borderline_dev"])
    assert not any(r["category"].startswith("borderline") for r in dev["helpful_dev"])
    assert len({r["category"] for r in dev["harmful_dev"]}) == 12  # one per harm category: an even spread
    # no dev prompt is trained on: not in the SIT files, the preference pairs or RAFT's prompt pool
    dev_prompts = {r["prompt"] for rows in dev.values() for r in rows}
    trained = {r["prompt"][0]["content"] for f in ("sit_safety_pool", "sit_instructions", "sit_mix")
               for r in data.read_rows(out / f"{f}.jsonl")}
    trained |= {p["prompt"] for p in data.read_rows(out / "prefs.jsonl")}
    assert trained and not dev_prompts & trained
    assert all(r["reference"] for r in dev["helpful_dev"])  # scored like the helpful eval set
    judge_fitted = {r["prompt"] for r in data.load_project("judge_real_train")}
    assert not dev_prompts & judge_fitted  # the learned judge never saw answers to a dev prompt


def test_dev_split_is_held_out_per_kind_and_too_large_a_split_is_refused(built, tmp_path):
    out, manifest, _ = built
    per_kind = config.resolve("smoke").dev_per_kind
    assert per_kind and {k: v["used"] for k, v in manifest["dev"].items()} == {
        f"{kind}_dev": per_kind for kind in ("harmful", "borderline", "helpful")}
    assert len(list(out.glob("dev_*.jsonl"))) == 3
    assert config.Profile(name="default").dev_per_kind == 0, "a profile without a dev split holds nothing out"
    with pytest.raises(data.DataError, match="dev_per_kind"):
        data.build_run_data(config.resolve("smoke", {"dev_per_kind": 41}), tmp_path, lambda ps: ps,
                            rules.RuleJudge())


def test_demo_prompts_of_the_notebooks_are_new_to_every_stage():
    """The prompts 00-05 chat with and the probe's examples show what a model *learned*: none of them
    may be (nearly) a training prompt of SIT, DPO, the reward model or the judge."""
    from safeserve_utils.data import external
    from safeserve_utils.ui import probe

    demos = [p for prompts in data.DEMO_PROMPTS.values() for p in prompts]
    demos += [p for prompts in probe.EXAMPLES.values() for p in prompts]
    train = [r["prompt"] for n in ("safety_demos", "instructions", "judge_train", "judge_real_train")
             for r in data.load_project(n)]
    train += [r["prompt"] for r in external.advbench() + external.rho_pairs()]
    train += [r["benign_prompt"] for r in external.rho_pairs()]
    hits = dedup.overlaps(train, demos)
    assert not hits, [(h.reason, h.train_text, h.eval_text) for h in hits[:5]]
