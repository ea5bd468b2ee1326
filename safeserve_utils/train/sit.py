"""Safety instruction tuning (the paper's SIT): the training set for each n of the ablation, and the
LoRA SFT settings a profile gives it.

The mixes are nested: each n adds safety demonstrations to the same instructions, so a larger n
contains a smaller one (``data.build.sit_mix``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import modeling
from ..data.build import sit_mix
from ..data.files import DataError, read_rows
from .lora import TrainResult, TrainSettings, adapter_dir, profile_knobs, train


def sit_settings(cfg: Any, n_safety: int) -> TrainSettings:
    return TrainSettings(method="sft", epochs=cfg.sit_epochs, learning_rate=cfg.sit_lr,
                         batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                         lora_r=cfg.sit_lora_r, lora_alpha=cfg.sit_lora_alpha, extra={"n_safety": n_safety},
                         **profile_knobs(cfg))


def sit_mixes(run_dir: str | Path, ns: Sequence[int], seed: int) -> dict[int, list[dict[str, Any]]]:
    """The SIT training set for each n: the run's instructions plus the first n safety demos (nested)."""
    folder = Path(run_dir) / "data"
    instructions = read_rows(folder / "sit_instructions.jsonl")
    pool = read_rows(folder / "sit_safety_pool.jsonl")
    mixes = {}
    for n in ns:
        if n > len(pool):
            raise DataError(f"parameter `sit_ablation` asks for n={n}, but {folder / 'sit_safety_pool.jsonl'} "
                            f"holds {len(pool)} safety demos")
        mixes[n] = sit_mix(list(instructions), pool, n, seed)
    return mixes


def fit(cfg: Any, run_dir: str | Path, n: int | None = None) -> dict[str, TrainResult]:
    """Train SIT for every n of the ablation (or only ``n``), in this process: ``sit-n<N>`` each."""
    lm, tokenizer = modeling.load_model(cfg.model, offline=cfg.offline)
    mixes = sit_mixes(run_dir, cfg.sit_ns if n is None else [n], cfg.seed)
    return {f"sit-n{k}": train(lm, tokenizer, rows, sit_settings(cfg, k), adapter_dir(run_dir, f"sit-n{k}"),
                               model_id=cfg.model) for k, rows in mixes.items()}
