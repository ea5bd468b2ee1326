"""The `paper` profile's code path end to end, offline, on local stand-ins (the `paper-dry` profile).

Not part of the default suite (it takes minutes): `make paper-dry` runs it, and CI runs it after the
suite. What it covers that nothing else does: the hub-format loaders feeding every notebook, every
training stage launched as two torchrun workers from the notebooks, and every answer (RAFT's samples,
the evaluation) written by a separate engine process through the file contract that vLLM serves at scale.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import guarded_env

from safeserve_utils import assets, config, standins
from safeserve_utils.answer_files import read_requests

pytestmark = pytest.mark.paper_dry

TRAINED = ("sit-n4", "sit-n8", "raft-it1", "raft-it2", "raft-random-it1", "raft-random-it2", "dpo")


@pytest.mark.timeout(1800)
def test_the_paper_profile_runs_end_to_end_on_stand_ins(tmp_path):
    run_dir, log, cache = tmp_path / "run", tmp_path / "net.log", tmp_path / "cache"
    # the SafeServe cache without its answers, so that every answer below comes from the engine
    standins.ensure()
    cache.mkdir()
    for item in assets.cache_dir().iterdir():
        if item.name != "generations":
            (cache / item.name).symlink_to(item)
    done = subprocess.run([sys.executable, "-m", "safeserve_utils", "run", "--profile", "paper-dry",
                           "--run-dir", str(run_dir)], capture_output=True, text=True,
                          env={**guarded_env(log), "SAFESERVE_CACHE": str(cache)}, cwd=config.PROJECT_ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not log.exists() or not log.read_text(), "the dry run tried to reach the network"

    manifest = json.loads((run_dir / "data" / "manifest.json").read_text())
    assert manifest["prefs"]["by_source"] == {"pku_saferlhf": 16}  # the two-safe-answer pairs were filtered out
    assert set(manifest["eval"]) == {"harmful_i_cona", "harmful_i_malicious", "harmful_i_controversial",
                                     "helpful_i_alpaca", "borderline_xstest", "qa_boolq", "qa_piqa", "qa_openbookqa"}
    assert {row["licence"] for row in manifest["licences"]} >= {"CC BY-NC 4.0"}

    for stage in TRAINED:
        record = json.loads((run_dir / "adapters" / stage / "training.json").read_text())
        assert record["processes"] == 2, stage

    # The engine answered every stage as vLLM is asked to: base alone, each trained stage as base + its own
    # LoRA folder (RAFT's later iterations continue one adapter; DPO starts from base, as in the paper).
    def requests(stage):
        return [r for path in sorted((run_dir / "engine" / stage).glob("*/requests.jsonl")) for r in read_requests(path)]
    assert requests("base") and all(r["adapter"] is None for r in requests("base"))
    for stage in TRAINED:
        assert {r["adapter"] for r in requests(stage)} == {str(run_dir / "adapters" / stage)}, stage
    # the greedy evaluation, and RAFT's K samples of each iteration's policy asked for as n = K a request
    k = config.PROFILES["paper-dry"].raft_k
    for stage in ("base", "raft-it1"):
        assert {(r["temperature"] > 0, r["n"]) for r in requests(stage)} == {(False, 1), (True, k)}, stage

    results = json.loads((run_dir / "results" / "results.json").read_text())
    assert {row["stage"] for row in results["metrics"]} == {"base", *TRAINED}
    evaluated = json.loads((run_dir / "eval" / "dpo.json").read_text())
    assert evaluated["judge"] == "llama-guard"
