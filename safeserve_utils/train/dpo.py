"""DPO on the run's preference pairs: the settings a profile gives it, and what to check on a run.

DPO trains through ``lora.train`` like every method; what is its own is its knobs (beta, an optional
SFT term on the chosen answer) and the signs of a run that went wrong, read from its ``log_history``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import generation
from ..data.build import to_dpo
from ..data.files import DataError, read_rows, write_jsonl
from . import stages
from .lora import TrainResult, TrainSettings, adapter_dir, profile_knobs, train


def dpo_settings(cfg: Any) -> TrainSettings:
    return TrainSettings(method="dpo", epochs=cfg.dpo_epochs, learning_rate=cfg.dpo_lr,
                         batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                         lora_r=cfg.dpo_lora_r, lora_alpha=cfg.dpo_lora_alpha, beta=cfg.dpo_beta,
                         sft_weight=cfg.dpo_sft_weight, **profile_knobs(cfg))


#: The pairs DPO trains on when ``dpo_on_policy`` is set, written by ``write_on_policy_pairs`` (``05``).
ON_POLICY_FILE = "dpo_pairs_on_policy.jsonl"


def on_policy(pairs: Sequence[dict[str, Any]], answers: Sequence[str], labels: Sequence[str]
              ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The pairs with each rejected side replaced by the starting model's own mistake, where it made one.

    ``answers`` and ``labels`` are the starting model's greedy answer to each pair's prompt and its
    verdict. On a harmful prompt that it complies with, that compliance becomes the rejected answer; on
    a safe prompt that it refuses, that needless refusal does. DPO then pushes down the answers this
    model actually gives rather than someone else's, which is where its probability mass is. Pairs
    whose prompt the model already handles keep their rejected answer. Returns the pairs and counts.
    """
    out, counts = [], {"harmful_replaced": 0, "safe_replaced": 0}
    for pair, answer, label in zip(pairs, answers, labels, strict=True):
        worse = 1 - pair["better_response_id"]
        harmful = not pair[f"is_response_{worse}_safe"]
        if (harmful and label == "compliance") or (not harmful and label == "refusal"):
            pair = {**pair, f"response_{worse}": answer, "rejected_origin": "on-policy"}
            counts["harmful_replaced" if harmful else "safe_replaced"] += 1
        out.append(pair)
    return out, counts


def write_on_policy_pairs(run_dir: str | Path, model: Any, tokenizer: Any, judge: Any, start_id: str,
                          max_new_tokens: int) -> dict[str, Any]:
    """Answer every pair's prompt with ``model`` (the one DPO starts from, whose id is ``start_id``),
    judge the answers with the run's judge (one meaning of "complied" everywhere) and write
    ``data/dpo_pairs_on_policy.jsonl``.

    Run once before training (``05``), so launched workers read the same file. Answers come through
    the generation cache, so a re-run costs nothing. Returns the counts of replaced answers.
    """
    folder = Path(run_dir) / "data"
    pairs = read_rows(folder / "prefs.jsonl")
    prompts = [p["prompt"] for p in pairs]
    answers = generation.cached_generate(model, tokenizer, prompts,
                                         generation.GenerationSettings(max_new_tokens=max_new_tokens))
    labels = [v.label for v in judge.judge(prompts, answers)]
    rows, counts = on_policy(pairs, answers, labels)
    write_jsonl(folder / ON_POLICY_FILE, [{**r, "on_policy_start": start_id} for r in rows])
    return {"pairs": len(rows), **counts}


def on_policy_stage_pairs(cfg: Any, run_dir: str | Path, judge: Any) -> dict[str, Any]:
    """``write_on_policy_pairs`` for the stage ``cfg.dpo_start`` of a run (what ``05`` calls)."""
    model, tokenizer = stages.load_stage(cfg, run_dir, cfg.dpo_start)
    return write_on_policy_pairs(run_dir, model, tokenizer, judge, stages.stage_id(cfg, run_dir, cfg.dpo_start),
                                 cfg.max_new_tokens)


def training_pairs(cfg: Any, run_dir: str | Path, start_id: str) -> list[dict[str, Any]]:
    """DPO's rows: the run's pairs, or with ``dpo_on_policy`` the ones ``write_on_policy_pairs`` made
    for the model ``start_id`` (a file made for another starting model is refused, not trained on)."""
    folder = Path(run_dir) / "data"
    if not cfg.dpo_on_policy:
        return [to_dpo(p) for p in read_rows(folder / "prefs.jsonl")]
    path = folder / ON_POLICY_FILE
    rows = read_rows(path) if path.exists() else []
    if not rows or any(r.get("on_policy_start") != start_id for r in rows):
        raise DataError(f"{path} {'holds answers of another model' if rows else 'does not exist'}: with "
                        "dpo_on_policy=true, answer the pairs' prompts with the model DPO starts from first "
                        "(train.on_policy_stage_pairs, as 05_dpo does)")
    return [to_dpo(p) for p in rows]


def fit(cfg: Any, run_dir: str | Path) -> dict[str, TrainResult]:
    """Train DPO on the run's pairs, from (and held to) ``cfg.dpo_start``, in this process."""
    start_id = stages.stage_id(cfg, run_dir, cfg.dpo_start)
    rows = training_pairs(cfg, run_dir, start_id)
    lm, tokenizer = stages.load_stage(cfg, run_dir, cfg.dpo_start)
    return {"dpo": train(lm, tokenizer, rows, dpo_settings(cfg), adapter_dir(run_dir, "dpo"),
                         model_id=start_id, on_top_of=cfg.dpo_start)}


def dpo_diagnostics(log_history: Sequence[dict[str, Any]], beta: float = 0.1, sft_weight: float = 0.0
                    ) -> dict[str, Any]:
    """What a teacher checks on a DPO run, from its ``log_history``.

    - the first step's loss should be ln 2 = 0.693 (policy = reference, so every margin is 0); with
      an SFT term the loss adds that term, so only the zero margin is checked;
    - reward accuracy should rise above 0.5 and the margin above 0;
    - the chosen log-probability should not collapse: naive DPO can push *both* answers down and
      learn to say nothing (the project's first DPO run on this model did), which accuracy alone
      does not show.
    """
    steps = [h for h in log_history if "loss" in h and "rewards/margins" in h]
    if not steps:
        return {"steps": 0, "warnings": ["no training steps were logged"]}
    first, tail = steps[0], steps[-max(1, len(steps) // 4):]

    def mean(key: str, rows: Sequence[dict[str, Any]]) -> float:
        values = [r[key] for r in rows if key in r]
        return sum(values) / len(values) if values else float("nan")

    out = {
        "steps": len(steps),
        "initial_loss": first["loss"],
        "initial_loss_is_ln2": abs(first["rewards/margins"]) < 0.01
        and (sft_weight > 0 or abs(first["loss"] - math.log(2)) < 0.01),
        "final_accuracy": mean("rewards/accuracies", tail),
        "final_margin": mean("rewards/margins", tail),
        # rewards/* = beta * (log p_policy - log p_reference) of the batch's answers: dividing by beta
        # gives how many nats more (or less) likely the policy makes them than the reference does.
        "chosen_logps_change": mean("rewards/chosen", tail) / beta,
        "rejected_logps_change": mean("rewards/rejected", tail) / beta,
    }
    warnings = []
    if not out["initial_loss_is_ln2"]:
        warnings.append(f"the first step is not at policy = reference (loss {first['loss']:.3f}, margin "
                        f"{first['rewards/margins']:.3f}): the adapter did not start from zero")
    if out["final_accuracy"] <= 0.6:
        warnings.append(f"not learning: reward accuracy at the end is {out['final_accuracy']:.2f} (≤ 0.6)")
    if out["final_margin"] <= 0:
        warnings.append(f"not learning: the reward margin at the end is {out['final_margin']:.3f} (≤ 0)")
    if out["chosen_logps_change"] < -5:
        warnings.append(f"chosen answers became much less likely ({out['chosen_logps_change']:.1f} nats): "
                        "the model may be unlearning fluency; add an SFT term or lower the learning rate")
    out["warnings"] = warnings
    return out
