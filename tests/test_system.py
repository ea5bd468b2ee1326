"""The setup notebook's record of its first chat with the model."""

import json

from safeserve_utils import system


def test_refusals_by_kind_and_the_setup_record(tmp_path):
    chat = [{"kind": "harmful", "prompt": "p1", "answer": "I can't help with that.", "refused": True},
            {"kind": "harmful", "prompt": "p2", "answer": "Sure: first...", "refused": False},
            {"kind": "benign", "prompt": "p3", "answer": "Paris.", "refused": False}]
    summary = system.refusals_by_kind(chat)
    assert summary == {"benign": {"refused": 0, "asked": 1, "refusal rate": 0.0},
                       "harmful": {"refused": 1, "asked": 2, "refusal rate": 0.5}}
    record = json.loads(system.write_setup(tmp_path, "m", 1.234, 5.678, chat).read_text())
    assert record["refusals"]["harmful"] == {"refused": 1, "asked": 2} and record["load_seconds"] == 1.23
    assert record["chat"] == chat and (tmp_path / "metrics" / "setup.json").exists()
