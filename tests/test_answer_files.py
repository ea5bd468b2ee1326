"""The JSONL contract between the workbook and an engine in another process: the HF engine and vLLM's
script (against a fake vLLM) both satisfy it, and a file that breaks it is named with its line."""

import importlib.util
import json
import sys
import types

import pytest

from safeserve_utils import answer_files, config, generation, modeling
from safeserve_utils.__main__ import main

SCRIPT = config.PROJECT_ROOT / "scripts" / "vllm_answer.py"


def vllm_script():
    spec = importlib.util.spec_from_file_location("vllm_answer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requests_round_trip_through_vllms_script_and_back_in_order(tmp_path):
    settings = generation.GenerationSettings(max_new_tokens=8, temperature=0.7, seed=3)
    ids = answer_files.write_requests(tmp_path / "r.jsonl", ["<chat>b", "<chat>a"], settings, n=2, adapter="/a/raft-it1")
    requests = answer_files.read_requests(tmp_path / "r.jsonl")
    assert [r["id"] for r in requests] == ids and requests[0]["adapter"] == "/a/raft-it1"
    calls = []

    def fake_generate(prompts, sampling, adapter):
        calls.append((prompts, sampling, adapter))
        return [[f" {p} #{k} " for k in range(sampling["n"])] for p in prompts]

    script = vllm_script()
    answer_files.write_answers(tmp_path / "a.jsonl", script.answer(requests, fake_generate))
    assert answer_files.read_answers(tmp_path / "a.jsonl", requests) == [["<chat>b #0", "<chat>b #1"],
                                                                        ["<chat>a #0", "<chat>a #1"]]
    assert calls == [(["<chat>b", "<chat>a"], {"n": 2, "max_tokens": 8, "temperature": 0.7, "top_p": 1.0, "seed": 3},
                      "/a/raft-it1")]


def test_the_script_groups_by_settings_and_adapter_and_drives_vllm(tmp_path, monkeypatch):
    """A fake vllm package records what the script asks of it: one LLM, a LoRARequest per adapter."""
    seen = {"generate": []}

    class LLM:
        def __init__(self, **kwargs):
            seen["llm"] = kwargs

        def generate(self, prompts, params, lora_request=None):
            seen["generate"].append((prompts, params.kwargs, lora_request))
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="ok")] * params.kwargs["n"])
                    for _ in prompts]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, lambda **kw: types.SimpleNamespace(kwargs=kw)
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda name, number, path: (name, number, path)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)
    greedy = generation.GenerationSettings(max_new_tokens=4)
    answer_files.write_requests(tmp_path / "base.jsonl", ["x", "y"], greedy)
    answer_files.write_requests(tmp_path / "lora.jsonl", ["z"], greedy, n=3, adapter="/runs/t/adapters/dpo/")
    (tmp_path / "r.jsonl").write_text((tmp_path / "base.jsonl").read_text() + (tmp_path / "lora.jsonl").read_text())
    vllm_script().main(["--model", "meta-llama/Llama-2-7b-hf", "--requests", str(tmp_path / "r.jsonl"),
                        "--answers", str(tmp_path / "a.jsonl")])
    assert seen["llm"]["enable_lora"] and seen["llm"]["model"] == "meta-llama/Llama-2-7b-hf"
    assert sorted((p, lr) for p, _, lr in seen["generate"]) == [(["x", "y"], None), (["z"], ("dpo", 1, "/runs/t/adapters/dpo/"))]
    answers = answer_files.read_answers(tmp_path / "a.jsonl", answer_files.read_requests(tmp_path / "r.jsonl"))
    assert answers == [["ok"], ["ok"], ["ok"] * 3] and not (tmp_path / "a.jsonl.tmp").exists()


def test_the_hf_engine_behind_the_contract_answers_as_the_workbook(base_model, tmp_path, capsys):
    lm, tok = base_model
    texts = [modeling.format_chat(tok, p) for p in ["Name a fruit.", "Say hi."]]
    greedy = generation.GenerationSettings(max_new_tokens=8)
    answer_files.write_requests(tmp_path / "r.jsonl", texts, greedy, n=2)
    requests = answer_files.read_requests(tmp_path / "r.jsonl")
    assert answer_files.answer_with_hf(tmp_path / "r.jsonl", tmp_path / "a.jsonl", lm, tok) == 2
    expected = generation.continue_texts(lm, tok, texts, max_new_tokens=8)
    assert answer_files.read_answers(tmp_path / "a.jsonl", requests) == [[e, e] for e in expected]
    assert main(["answer", "--model", config.DEFAULT_MODEL, "--requests", str(tmp_path / "r.jsonl"),
                 "--answers", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "b.jsonl").read_text() == (tmp_path / "a.jsonl").read_text()


@pytest.mark.parametrize("answers, message", [
    ('{"id": "0-x", "texts": ["a"]}\n', "1 of 2 requests have no answer"),
    ('{"id": "0-x", "texts": ["a", "b"]}\n{"id": "1-y", "texts": ["c"]}\n', "line 1: field `texts` must be a list of 1"),
    ('{"id": "9-z", "texts": ["a"]}\n', "line 1: id '9-z' was not requested"),
    ('{"id": "0-x", "texts": ["a"]}\n{"id": "1-y", "texts": [\n', "line 2: not valid JSON"),
])
def test_an_answers_file_that_breaks_the_contract_is_named_with_its_line(tmp_path, answers, message):
    requests = [{"id": "0-x", "n": 1}, {"id": "1-y", "n": 1}]
    (tmp_path / "a.jsonl").write_text(answers)
    with pytest.raises(answer_files.AnswerFileError, match=message):
        answer_files.read_answers(tmp_path / "a.jsonl", requests)
    with pytest.raises(answer_files.AnswerFileError, match="wrote no answers file"):
        answer_files.read_answers(tmp_path / "none.jsonl", requests)


def test_a_request_without_a_field_is_named_with_its_line(tmp_path):
    row = {"id": "0-x", "text": "t", "max_new_tokens": 4, "temperature": 0.0, "top_p": 1.0, "n": 1, "seed": 0,
           "adapter": None}
    (tmp_path / "r.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "n": "2"}) + "\n")
    with pytest.raises(answer_files.AnswerFileError, match=r"r.jsonl, line 2: field `n` has the wrong type \(str\)"):
        answer_files.read_requests(tmp_path / "r.jsonl")
    del row["seed"]
    (tmp_path / "r.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(answer_files.AnswerFileError, match="line 1: field `seed` is missing"):
        answer_files.read_requests(tmp_path / "r.jsonl")
