"""The paper profile's loaders, offline, on small fixtures in each dataset's published on-disk format."""

from pathlib import Path

import pytest

from safeserve_utils import data
from safeserve_utils.data import paper
from safeserve_utils.evaluation import rules

FIX = Path(__file__).parent / "fixtures" / "paper"


def test_pku_filter_matches_the_paper():
    rows = paper.pku_saferlhf(str(FIX / "pku_train.jsonl"))
    # kept: safe+better (row 0) and unsafe/safe with the safe one better (row 1, re-ordered);
    # dropped: both safe (row 2) and the unsafe answer preferred (row 3)
    assert [r["prompt"] for r in rows] == ["How can I get back at my neighbour?", "How do I cheat on my taxes?"]
    assert rows[1]["response_0"].startswith("I can't help with tax fraud")
    assert data.to_dpo(rows[1])["rejected"][0]["content"] == "Hide cash income from the tax office."


def test_alpaca_and_bianchi_formats():
    rows = paper.alpaca_style(str(FIX / "alpaca_data_cleaned.json"))
    assert rows[1]["prompt"] == "Summarise the text.\n\nThe cat sat on the mat."
    assert rows[0]["response"] == "Eat well, exercise, sleep."
    evals = paper.bianchi_eval(str(FIX / "I-CoNa.json"))
    assert [r["category"] for r in evals] == ["I-CoNa", "I-CoNa"] and evals[0]["prompt"].startswith("Write")


def test_xstest_and_qa_sets():
    xs = paper.xstest(str(FIX / "xstest_prompts.csv"))
    assert [r["label"] for r in xs] == ["safe", "unsafe"]
    assert [r["answer"] for r in paper.boolq(str(FIX / "boolq_validation.jsonl"))] == [0, 1]
    piqa = paper.piqa(str(FIX / "piqa_validation.jsonl"))
    assert len(piqa) == 1 and piqa[0]["choices"][piqa[0]["answer"]] == "Stuff them with newspaper."
    obqa = paper.openbookqa(str(FIX / "openbookqa_validation.jsonl"))
    assert obqa[0]["choices"][obqa[0]["answer"]].startswith("plants sprouting")
    for row in piqa + obqa:
        data.validate_row({k: row[k] for k in data.QA.fields}, data.QA, row["id"])


def test_errors_name_source_and_field(tmp_path):
    bad = tmp_path / "pku.jsonl"
    bad.write_text('{"prompt": "p", "response_0": "a", "response_1": "b"}\n')
    with pytest.raises(paper.SourceError, match="record 0 has no field `is_response_0_safe`"):
        paper.pku_saferlhf(str(bad))
    with pytest.raises(paper.SourceError, match="unsupported file type '.txt'"):
        (tmp_path / "x.txt").write_text("hi")
        paper.read_records(str(tmp_path / "x.txt"))
    with pytest.raises(paper.SourceError, match="not a file"):
        paper.read_records(str(tmp_path / "missing.json"))


def test_paper_profile_builds_from_local_copies(tmp_path):
    """The whole data stage of the paper profile, pointed at the fixtures instead of hub ids."""
    from safeserve_utils import config

    cfg = config.resolve("paper", {
        "pku_source": str(FIX / "pku_train.jsonl"), "alpaca_source": str(FIX / "alpaca_data_cleaned.json"),
        "bianchi_safety_source": str(FIX / "alpaca_data_cleaned.json"), "bianchi_eval_dir": str(FIX),
        "xstest_source": str(FIX / "xstest_prompts.csv"), "boolq_source": str(FIX / "boolq_validation.jsonl"),
        "piqa_source": str(FIX / "piqa_validation.jsonl"), "obqa_source": str(FIX / "openbookqa_validation.jsonl"),
        "n_safety": 1, "sit_instructions": 0, "pref_benign": 1,
    })
    manifest = data.build_run_data(cfg, tmp_path, base_answers=lambda prompts: pytest.fail("no generation"),
                                   judge=rules.RuleJudge())
    assert manifest["prefs"]["by_source"] == {"pku_saferlhf": 2, "alpaca": 1}
    assert manifest["eval"]["borderline_xstest"]["used"] == 1
    assert set(manifest["eval"]) >= {"harmful_i_cona", "harmful_i_malicious", "qa_boolq", "qa_openbookqa"}


def test_the_dry_runs_stand_in_datasets_are_read_by_the_paper_loaders(tmp_path):
    """`paper-dry` feeds the loaders files in each dataset's published format, written from data/."""
    from safeserve_utils import config, standins

    where = config.stand_in_paths(tmp_path)
    standins.write_datasets(where)
    pairs = paper.pku_saferlhf(where["pku_source"])
    assert len(pairs) == standins.ROWS  # the pairs of two safe answers are filtered out
    assert all(data.to_dpo(p)["rejected"][0]["content"] == standins.UNSAFE_ANSWER for p in pairs)
    assert len(paper.alpaca_style(where["alpaca_source"])) == standins.ROWS
    assert {r["label"] for r in paper.xstest(where["xstest_source"])} == {"safe", "unsafe"}
    for file in data.PAPER_EVAL_FILES.values():
        assert len(paper.bianchi_eval(str(Path(where["bianchi_eval_dir"]) / file))) == standins.ROWS
    own = data.load_project("eval_qa")[:standins.ROWS]
    for loaded in (paper.piqa(where["piqa_source"]), paper.openbookqa(where["obqa_source"])):
        assert [q["choices"][q["answer"]] for q in loaded] == [q["choices"][q["answer"]] for q in own]
    # BoolQ asks whether a named choice is right; the loader's choices are (yes, no)
    assert [q["answer"] for q in paper.boolq(where["boolq_source"])] == [
        0 if q["answer"] == i % 2 else 1 for i, q in enumerate(own)]
