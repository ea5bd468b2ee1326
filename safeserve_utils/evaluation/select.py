"""The judge and the reward model a profile names (``cfg.judge``, ``cfg.reward_model``), built for the
notebooks, the experiments and the probe from one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import modeling
from ..config import Profile
from ..train.reward_model import OWN_REWARD_MODEL
from . import judges
from .llama_guard import LlamaGuardJudge
from .reward import RewardScorer
from .rules import RuleJudge


def make_judge(cfg: Profile) -> Any:
    """The judge ``cfg.judge`` names: ``learned`` (default), ``rules``, or a Llama Guard checkpoint."""
    if cfg.judge == "learned":
        return judges.default_judge()
    if cfg.judge == "rules":
        return RuleJudge()
    guard, tokenizer = modeling.load_model(cfg.judge, offline=cfg.offline, dtype="bfloat16")
    return LlamaGuardJudge(guard, tokenizer, rule=cfg.guard_rule)


def make_reward(cfg: Profile, run_dir: str | Path) -> Any:
    """The reward scorer ``cfg.reward_model`` names, or None (``auto`` before a reward model exists)."""
    if cfg.reward_model == "none":
        return None
    if cfg.reward_model == "auto":
        own = Path(run_dir) / OWN_REWARD_MODEL
        if not (own / "adapter_config.json").exists():
            return None
        return RewardScorer.load(own, base=modeling.resolve_model_path(cfg.model, offline=cfg.offline),
                                 name="own reward model")
    return RewardScorer.load(cfg.reward_model)
