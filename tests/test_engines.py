"""A separate answer engine behind the file contract: evaluation cannot tell it from the kernel's own.

The real stand-in is the workbook's HF engine as a command (``python -m safeserve_utils answer``), in
the role vLLM's script plays on GPUs; a fake engine (a few lines of Python) shows what a stacked
stage hands over and what a failed engine says.
"""

import dataclasses
import shlex
import shutil
import sys
from types import SimpleNamespace

import pytest

from conftest import guarded_env
from safeserve_utils import answer_files, config, engines, generation
from safeserve_utils.evaluation import scorecard
from safeserve_utils.evaluation.rules import RuleJudge
from safeserve_utils.io import read_json
from safeserve_utils.train import stages

FAKE = """import json, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
with open(args["--answers"], "w") as out:
    for line in open(args["--requests"]):
        r = json.loads(line)
        out.write(json.dumps({"id": r["id"], "texts": [args["--model"] + "|" + str(r["adapter"])] * r["n"]}) + "\\n")
"""


@pytest.fixture
def run(smoke_chain, tmp_path, monkeypatch):
    """A copy of the smoke run (its evaluations read back, not redone), every child behind the guard."""
    done, log, finished = smoke_chain
    assert finished.returncode == 0, finished.stderr[-2000:]
    for key, value in guarded_env(log).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(generation, "default_cache_dir", lambda: tmp_path / "generations")
    shutil.copytree(done, tmp_path / "run")
    return tmp_path / "run"


def with_engine(run_dir, argv):
    return dataclasses.replace(config.load_run_config(run_dir), answer_engine=shlex.join(argv))


def test_the_hf_engine_as_a_command_answers_a_lora_stage_as_the_kernel_did(run):
    """sit-n0 is one adapter on base: the engine gets the base model and the adapter in each request."""
    cfg = with_engine(run, [sys.executable, "-m", "safeserve_utils", "answer"])
    kernel = read_json(run / "eval" / "sit-n0.json")  # the chain's, answered in the kernel
    result = scorecard.evaluate(cfg, run, "sit-n0", RuleJudge())
    assert result["key"] != kernel["key"]  # another engine: a new evaluation, not the stored one
    ours = {(a["set"], a["prompt"]): a["answer"] for a in kernel["answers"] if "answer" in a}
    theirs = {(a["set"], a["prompt"]): a["answer"] for a in result["answers"] if "answer" in a}
    assert theirs == ours and len(ours) >= 8
    requests = answer_files.read_requests(next((run / "engine" / "sit-n0").glob("*/requests.jsonl")))
    assert {r["adapter"] for r in requests} == {str(run / "adapters" / "sit-n0")}


def test_a_stacked_stage_is_handed_over_merged_and_a_failed_engine_is_named(run, tmp_path):
    fake = tmp_path / "fake_engine.py"
    fake.write_text(FAKE)
    cfg = with_engine(run, [sys.executable, str(fake)])
    no_template = SimpleNamespace()  # prompts get the Alpaca template; the fake engine never sees weights
    answer = stages.answerer(cfg, run, "dpo", None, no_template, fingerprint="w")
    settings = generation.GenerationSettings(max_new_tokens=4)
    said = answer(["hi", "yo"], settings)
    merged, = (run / "engine" / "dpo").glob("model-*")
    assert said == [f"{merged}|None"] * 2  # smoke's DPO sits on sit-n8: handed over merged, no adapter
    assert (merged / "model.safetensors").exists()
    # RAFT's K samples: one request per prompt with n = K (vLLM's SamplingParams(n=K)), kept as K rounds
    sampled = dataclasses.replace(settings, temperature=0.8, seed=4000)
    assert answer.samples(["hi", "yo"], sampled, 3) == [[f"{merged}|None"] * 3] * 2
    asked = run / "engine" / "dpo" / f"{sampled.key()}-n3"
    assert [r["n"] for r in answer_files.read_requests(asked / "requests.jsonl")] == [3, 3]
    shutil.rmtree(asked)  # drawn once: RAFT's random twin and a re-run read them back without the engine
    assert answer.samples(["yo"], sampled, 3) == [[f"{merged}|None"] * 3] and not asked.exists()
    broken = with_engine(run, [sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(answer_files.AnswerFileError, match=r"failed \(exit code 3.*requests are in .*requests.jsonl"):
        stages.answerer(broken, run, "base", None, no_template, fingerprint="w")(["hi"], settings)
    with pytest.raises(config.ConfigError, match="`answer_engine`"):
        engines.command(dataclasses.replace(cfg, answer_engine="python 'unclosed"))

