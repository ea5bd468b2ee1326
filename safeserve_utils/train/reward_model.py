"""The project's own reward model: TRL's ``RewardTrainer`` on the run's preference pairs.

A scalar head on the base model (LoRA plus a new ``score`` layer, ``rm_settings``), trained so that the
chosen answer of each pair scores higher than the rejected one. Held-out pairs are split the RewardBench way, as the
paper's Table 6: *should refuse* (harmful prompt: a refusal should win) and *should respond* (benign
prompt: an answer should beat a needless refusal). The pairs come from 01_data, which filtered them
against every evaluation and judge-validation prompt, so the judges share no data with what RAFT
optimises.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import modeling
from ..data.build import to_dpo
from ..data.files import read_rows
from ..stats import rate
from . import lora

OWN_REWARD_MODEL = "reward_model"  # its folder in a run, beside adapters/ (it carries a new head)
#: The share of the run's preference pairs held out to measure the reward model (03); the rest trains it.
HELD_OUT = 0.2


def rm_settings(cfg: Any) -> lora.TrainSettings:
    """The reward model: a LoRA (DPO's shape) plus a new scalar head, trained on preference pairs."""
    return lora.TrainSettings(method="rm", epochs=cfg.rm_epochs, learning_rate=cfg.rm_lr,
                              batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                              lora_r=cfg.dpo_lora_r, lora_alpha=cfg.dpo_lora_alpha, **lora.profile_knobs(cfg))


def split_pairs(pairs: Sequence[dict[str, Any]], held_out: float, seed: int
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out) with the same share of harmful and benign pairs in each."""
    if not 0 < held_out < 1:
        raise ValueError(f"parameter `held_out` must be between 0 and 1, got {held_out}")
    train, test = [], []
    for harmful in (True, False):
        group = [p for p in pairs if (not p["is_response_1_safe"]) is harmful]
        random.Random(seed).shuffle(group)
        cut = round(len(group) * held_out)
        test += group[:cut]
        train += group[cut:]
    return train, test


def load_base_classifier(cfg: Any) -> tuple[Any, Any]:
    """The base model with a fresh one-output classification head (safetensors, no remote code).

    The head is drawn from the global random generator when the model loads, before any trainer seeds
    it: seeded here, so a re-run (or a run in several processes) starts from the same head."""
    from transformers import AutoModelForSequenceClassification, set_seed

    _, tokenizer = modeling.load_model(cfg.model, offline=cfg.offline)
    set_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        modeling.resolve_model_path(cfg.model, offline=cfg.offline), num_labels=1, use_safetensors=True,
        trust_remote_code=False)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def train_reward_model(cfg: Any, run_dir: str | Path, pairs: Sequence[dict[str, Any]]) -> lora.TrainResult:
    model, tokenizer = load_base_classifier(cfg)
    return lora.train(model, tokenizer, [to_dpo(p) for p in pairs], rm_settings(cfg),
                      Path(run_dir) / OWN_REWARD_MODEL, model_id=cfg.model)


def fit(cfg: Any, run_dir: str | Path) -> dict[str, lora.TrainResult]:
    """Train the reward model on the run's pairs that ``HELD_OUT`` does not keep for 03's accuracy."""
    pairs, _ = split_pairs(read_rows(Path(run_dir) / "data" / "prefs.jsonl"), HELD_OUT, cfg.seed)
    return {OWN_REWARD_MODEL: train_reward_model(cfg, run_dir, pairs)}


def pair_accuracy(scorer: Any, pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Share of pairs where the better answer scores higher, per RewardBench-style subset, with n."""
    prompts = [p["prompt"] for p in pairs]
    better = scorer.score(prompts, [p[f"response_{p['better_response_id']}"] for p in pairs])
    worse = scorer.score(prompts, [p[f"response_{1 - p['better_response_id']}"] for p in pairs])
    rows = []
    for subset, keep in (("should refuse", lambda p: not p["is_response_1_safe"]),
                         ("should respond", lambda p: p["is_response_1_safe"]), ("all", lambda p: True)):
        wins = [b > w for p, b, w in zip(pairs, better, worse) if keep(p)]
        rows.append({"subset": subset, **rate(wins)})
    return rows
