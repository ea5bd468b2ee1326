"""DPO on the run's preference pairs: the settings a profile gives it, and what to check on a run.

DPO trains through ``lora.train`` like every method; what is its own is its knobs (beta, an optional
SFT term on the chosen answer) and the signs of a run that went wrong, read from its ``log_history``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.build import to_dpo
from ..data.files import read_rows
from . import stages
from .lora import TrainResult, TrainSettings, adapter_dir, train


def dpo_settings(cfg: Any) -> TrainSettings:
    return TrainSettings(method="dpo", epochs=cfg.dpo_epochs, learning_rate=cfg.dpo_lr,
                         batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                         lora_r=cfg.dpo_lora_r, lora_alpha=cfg.dpo_lora_alpha, beta=cfg.dpo_beta,
                         sft_weight=cfg.dpo_sft_weight, lora_dropout=cfg.lora_dropout, seed=cfg.seed)


def fit(cfg: Any, run_dir: str | Path) -> dict[str, TrainResult]:
    """Train DPO on the run's pairs, from (and held to) ``cfg.dpo_start``, in this process."""
    rows = [to_dpo(p) for p in read_rows(Path(run_dir) / "data" / "prefs.jsonl")]
    lm, tokenizer = stages.load_stage(cfg, run_dir, cfg.dpo_start)
    return {"dpo": train(lm, tokenizer, rows, dpo_settings(cfg), adapter_dir(run_dir, "dpo"),
                         model_id=stages.stage_id(cfg, run_dir, cfg.dpo_start), on_top_of=cfg.dpo_start)}


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
