"""How the judge files of real answers were drawn: answers of a run's own stages, ready to label.

A judge validated only on answers the project wrote by hand says little about the answers the models
actually give (short loops, deflections, half-refusals). ``draw`` takes a trained run, gives each stage
a disjoint slice of the project's prompts of each kind, answers them with the evaluation settings
(greedy, 64 new tokens) and returns unlabelled rows in the schema of ``data/judge/real_*.jsonl``.
Readers then add ``label`` under ``data/judge/GUIDE.md`` without seeing ``stage``.

- ``split="validation"`` draws from the project's *evaluation* prompts: it validates the judge on the
  distribution the scorecard judges, and is never used to fit, select or tune anything;
- ``split="train"`` draws from the project's *training* prompts (safety demos, instructions), so the
  learned judge can learn from real answers without ever seeing a validation prompt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import generation
from ..config import Profile
from ..data.files import load_project
from ..train import stages as run_stages  # renamed: ``draw`` has a parameter called ``stages``

KINDS = ("harmful", "borderline", "helpful")


def prompt_pool(split: str) -> dict[str, list[str]]:
    """The project's prompts of each kind for ``split`` (validation: evaluation sets; train: training sets)."""
    if split == "validation":
        return {"harmful": [r["prompt"] for r in load_project("eval_harmful")],
                "borderline": [r["prompt"] for r in load_project("eval_borderline")],
                "helpful": [r["prompt"] for r in load_project("eval_helpful")]}
    if split == "train":
        instructions = load_project("instructions")
        return {"harmful": [r["prompt"] for r in load_project("safety_demos")],
                "borderline": [r["prompt"] for r in instructions if r["category"].startswith("borderline")],
                "helpful": [r["prompt"] for r in instructions if not r["category"].startswith("borderline")]}
    raise ValueError(f"split {split!r}: expected validation or train")


def assign(pool: dict[str, list[str]], stages: Sequence[str], per_stage: dict[str, int], seed: int
           ) -> dict[str, dict[str, list[str]]]:
    """Disjoint prompt slices: stage -> kind -> prompts, so no prompt is labelled twice."""
    out: dict[str, dict[str, list[str]]] = {stage: {} for stage in stages}
    for kind, prompts in pool.items():
        need = per_stage[kind] * len(stages)
        if need > len(prompts):
            raise ValueError(f"{kind}: {len(stages)} stages x {per_stage[kind]} prompts > {len(prompts)} available")
        shuffled = random.Random(f"{seed}-{kind}").sample(prompts, need)
        for i, stage in enumerate(stages):
            out[stage][kind] = shuffled[i * per_stage[kind]:(i + 1) * per_stage[kind]]
    return out


def draw(cfg: Profile, run_dir: str | Path, stages: Sequence[str], split: str, per_stage: dict[str, int],
         seed: int = 0) -> list[dict[str, Any]]:
    """Unlabelled rows ``{id, category, prompt, response, stage}`` for ``stages`` of a trained run."""
    settings = generation.GenerationSettings(max_new_tokens=cfg.eval_max_new_tokens)
    rows = []
    for stage, by_kind in assign(prompt_pool(split), stages, per_stage, seed).items():
        model, tokenizer = run_stages.load_stage(cfg, run_dir, stage)
        for kind in KINDS:
            answers = generation.cached_generate(model, tokenizer, by_kind[kind], settings)
            rows += [{"category": kind, "prompt": p, "response": a, "stage": stage}
                     for p, a in zip(by_kind[kind], answers)]
    order = random.Random(seed).sample(range(len(rows)), len(rows))  # readers must not see stages in blocks
    prefix = {"validation": "rv", "train": "rt"}[split]
    return [{"id": f"{prefix}-{n:04d}", **rows[i]} for n, i in enumerate(order, 1)]
