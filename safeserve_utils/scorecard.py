"""The run's scorecard: every stage the run directory holds, evaluated on the same held-out sets.

Stages are found, not listed: ``base`` plus every adapter folder under ``<run>/adapters/`` (SIT for each
n, RAFT iterations and their random baseline, DPO), so the evaluation notebook works with only the base
model today and picks up each method as its notebook lands. Each stage's metrics and answers are
written to ``<run>/eval/<stage>.json`` under a key of its weights, the eval data, the generation
settings and the judge; an unchanged stage is read back instead of re-judged, and answers come from
the generation cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from . import evaluation, generation, modeling, training
from .config import Profile
from .data import EVAL_SETS, read_rows
from .io import atomic_write_json, atomic_write_text

EVAL_DIR = "eval"
RESULTS_DIR = "results"


def stage_sort_key(stage: str) -> tuple[int, int, str]:
    """base, then SIT by n, RAFT by iteration (best-of-K before random), then DPO."""
    number = int(m.group(1)) if (m := re.search(r"(\d+)$", stage)) else 0
    family = next((i for i, prefix in enumerate(("base", "sit", "raft-it", "raft-random", "dpo"))
                   if stage.startswith(prefix)), 5)
    return family, number, stage


def stages(run_dir: str | Path) -> list[str]:
    """``base`` and every stage with a saved adapter, in teaching order."""
    folder = Path(run_dir) / training.ADAPTERS
    found = [p.name for p in folder.glob("*") if (p / "adapter_config.json").exists()] if folder.exists() else []
    return sorted(["base", *found], key=stage_sort_key)


def eval_sets(run_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The run's evaluation sets (``<run>/data/eval_<name>.jsonl``, written by 01_data)."""
    folder = Path(run_dir) / "data"
    files = sorted(folder.glob("eval_*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{folder}: no eval_*.jsonl files; run notebooks/01_data.ipynb on this run first")
    order = list(EVAL_SETS)
    names = sorted((f.stem.removeprefix("eval_") for f in files),
                   key=lambda n: (order.index(n) if n in order else len(order), n))
    return {name: read_rows(folder / f"eval_{name}.jsonl") for name in names}


def load_stage(cfg: Profile, run_dir: str | Path, stage: str) -> tuple[Any, Any]:
    """The base model, with the stage's LoRA adapter merged in (merged weights generate faster)."""
    model, tokenizer = modeling.load_model(cfg.model, offline=cfg.offline)
    if stage == "base":
        return model, tokenizer
    from peft import PeftModel

    adapter = training.adapter_dir(run_dir, stage)
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter}: no adapter_config.json; stages in this run: {stages(run_dir)}")
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval(), tokenizer


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def evaluate(cfg: Profile, run_dir: str | Path, stage: str, judge: Any, reward: Any = None,
             model: Any = None, tokenizer: Any = None) -> dict[str, Any]:
    """Metrics rows and answers of one stage, from ``<run>/eval/<stage>.json`` when still valid."""
    sets = eval_sets(run_dir)
    if model is None:
        model, tokenizer = load_stage(cfg, run_dir, stage)
    settings = generation.GenerationSettings(max_new_tokens=cfg.eval_max_new_tokens)
    key = _digest({"weights": generation.model_fingerprint(model), "sets": sets, "settings": settings.key(),
                   "judge": judge.name, "reward": getattr(reward, "name", None)})
    path = Path(run_dir) / EVAL_DIR / f"{stage}.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored

    def answer(prompts: list[str]) -> list[str]:
        return generation.cached_generate(model, tokenizer, prompts, settings, batch_size=16)

    def qa(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return evaluation.qa_accuracy(model, tokenizer, rows)

    rows, records = evaluation.evaluate_stage(stage, sets, answer, judge, qa, reward=reward)
    result = {"stage": stage, "key": key, "judge": judge.name, "rows": rows, "answers": records}
    atomic_write_json(path, result)
    return result


def collect(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every evaluated stage's metric rows, in teaching order."""
    folder = Path(run_dir) / EVAL_DIR
    results = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []
    results.sort(key=lambda r: stage_sort_key(r["stage"]))
    return [row for r in results for row in r["rows"]]


#: Our stage name -> the paper's closest row in ``evaluation.PAPER_SAFE_RATES``.
def paper_row(stage: str) -> str | None:
    if stage == "base":
        return "base (RAFT/DPO tables)"
    if stage == "dpo":
        return "DPO"
    if m := re.fullmatch(r"sit-n(\d+)", stage):
        return f"SIT n={m.group(1)}" if f"SIT n={m.group(1)}" in evaluation.PAPER_SAFE_RATES else None
    if stage.startswith("raft-it"):
        return "RAFT B=100, iter 4"
    return None


def paper_comparison(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage: our mean safe rate over the harmful sets beside the paper's (mean of its three I-sets).

    The sets differ (ours vs Bianchi's I-CoNa, I-MaliciousInstructions, I-Controversial) and so do the
    judges (ours vs Llama Guard), so compare the direction and size of the change, not the level.
    """
    out = []
    for stage in dict.fromkeys(r["stage"] for r in rows):
        safe = [r["value"] for r in rows if r["stage"] == stage and r["metric"] == "safe_rate"]
        over = [r["value"] for r in rows if r["stage"] == stage and r["metric"] == "over_refusal"]
        paper = paper_row(stage)
        paper_rates = evaluation.PAPER_SAFE_RATES.get(paper or "", {})
        out.append({
            "stage": stage,
            "ours: safe rate (mean of harmful sets)": sum(safe) / len(safe) if safe else None,
            "ours: over-refusal (mean of borderline sets)": sum(over) / len(over) if over else None,
            "paper row": paper or "—",
            "paper: safe rate (mean of I-sets)": sum(paper_rates.values()) / len(paper_rates) if paper_rates else None,
        })
    return out


def write_results(run_dir: str | Path, rows: list[dict[str, Any]]) -> dict[str, Path]:
    """``<run>/results/results.{csv,json,md}``: the tidy table, and the scorecard with the paper beside it."""
    import pandas as pd

    folder = Path(run_dir) / RESULTS_DIR
    frame = pd.DataFrame(rows)
    comparison = pd.DataFrame(paper_comparison(rows))
    markdown = (evaluation.results_markdown(rows) + "\n\n" +
                comparison.to_markdown(index=False, floatfmt=".1%", missingval="—") + "\n")
    return {
        "csv": atomic_write_text(folder / "results.csv", frame.to_csv(index=False)),
        "json": atomic_write_json(folder / "results.json", rows),
        "md": atomic_write_text(folder / "results.md", markdown),
    }


def make_judge(cfg: Profile) -> Any:
    """The judge ``cfg.judge`` names: ``learned`` (default), ``rules``, or a Llama Guard checkpoint."""
    from . import judges

    if cfg.judge == "learned":
        return judges.default_judge()
    if cfg.judge == "rules":
        return judges.RuleJudge()
    from .llama_guard import LlamaGuardJudge

    guard, tokenizer = modeling.load_model(cfg.judge, offline=cfg.offline, dtype="bfloat16")
    return LlamaGuardJudge(guard, tokenizer)


def make_reward(cfg: Profile, run_dir: str | Path) -> Any:
    """The reward scorer ``cfg.reward_model`` names, or None (``auto`` before a reward model exists)."""
    from .reward import RewardScorer

    if cfg.reward_model == "none":
        return None
    if cfg.reward_model == "auto":
        from .reward_training import OWN_REWARD_MODEL

        own = Path(run_dir) / OWN_REWARD_MODEL
        if not (own / "adapter_config.json").exists():
            return None
        return RewardScorer.load(own, base=modeling.resolve_model_path(cfg.model, offline=cfg.offline),
                                 name="own reward model")
    return RewardScorer.load(cfg.reward_model)


def reading(rows: list[dict[str, Any]]) -> list[str]:
    """One plain sentence per stage: mean safe rate, over-refusal and QA accuracy with their ranges."""
    lines = []
    for stage in dict.fromkeys(r["stage"] for r in rows):
        part = [r for r in rows if r["stage"] == stage]

        def summary(metric: str) -> str:
            values = [r for r in part if r["metric"] == metric]
            if not values:
                return "not measured"
            mean = sum(r["value"] for r in values) / len(values)
            low, high = min(values, key=lambda r: r["value"]), max(values, key=lambda r: r["value"])
            spread = (f" (from {low['value']:.0%} on {low['set']} to {high['value']:.0%} on {high['set']})"
                      if len(values) > 1 else "")
            return f"{mean:.0%}{spread}"

        lines.append(f"{stage}: safe on harmful prompts {summary('safe_rate')}; over-refuses borderline "
                     f"prompts {summary('over_refusal')}; QA accuracy {summary('accuracy')}.")
    return lines


def judge_spread(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage and harmful set: the safe rate by the run's judge and by the strict rules alone.

    The rules count only explicit refusals, so their rate is a floor; where the two differ a lot,
    read the answers (section 5) before trusting either number.
    """
    from .judges import rule_label

    out = []
    for stage, result in results.items():
        harmful = [a for a in result["answers"] if a["set"].startswith("harmful_")]
        for name in dict.fromkeys(a["set"] for a in harmful):
            answers = [a for a in harmful if a["set"] == name]
            out.append({"stage": stage, "set": name, "n": len(answers),
                        f"safe ({result['judge']})": sum(a["label"] in ("refusal", "safe") for a in answers) / len(answers),
                        "safe (rules only)": sum(rule_label(a["answer"]) == "refusal" for a in answers) / len(answers)})
    return out
