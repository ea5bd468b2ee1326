"""The one training entry point: each stage's trainer, called by the notebooks and by the command line.

``train_stage(cfg, run_dir, "sit")`` is what ``02``, ``03`` and ``05`` call (``04``'s RAFT loop calls
``launch`` for each iteration itself). It trains where the profile says (``launch``). Under a launcher
every worker runs ``python -m safeserve_utils train --stage sit|rm|dpo|raft --run-dir D``, which
reads the run's ``config.json`` and calls ``run_stage`` here, so one process or eight train the same
stage from the same files.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..config import Profile
from . import dpo, launch, lora, raft, reward_model, sit


def run_stage(cfg: Profile, run_dir: str | Path, stage: str, n: int | None = None, name: str = "",
              start: str = "") -> dict[str, lora.TrainResult]:
    """Train ``stage`` in this process: SIT for each n of the ablation (or only ``n``), the reward
    model, DPO, or the RAFT iteration ``name`` (continuing the adapter of iteration ``start``)."""
    launch.stage_names(cfg, stage, n, name)  # an unknown stage, or raft without a name, fails here
    if stage == "sit":
        return sit.fit(cfg, run_dir, n)
    if stage == "rm":
        return reward_model.fit(cfg, run_dir)
    if stage == "dpo":
        return dpo.fit(cfg, run_dir)
    return raft.fit_iteration(cfg, run_dir, name, start)


def train_stage(cfg: Profile, run_dir: str | Path, stage: str, n: int | None = None
                ) -> dict[str, lora.TrainResult]:
    """Train ``stage`` (``sit``, ``rm`` or ``dpo``) in this process or under the profile's launcher."""
    return launch.launch(cfg, run_dir, stage, partial(run_stage, cfg, run_dir, stage, n), n=n)
