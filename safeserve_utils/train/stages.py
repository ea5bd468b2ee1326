"""A run's stages: which ones it has, in teaching order, how to load one as a model, and how to hand
one to an answer engine in another process.

Stages are found, not listed: ``base`` plus every adapter folder under ``<run>/adapters/`` (SIT for each
n, RAFT iterations and their random baseline, DPO) whose ``training.json`` names it. A stage loads as
the base model with its adapter merged in, on top of the stage it was trained from. Training, the
scorecard and the probe all read stages through this module, which lives with training because a
stage *is* what training left in the run directory.
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import assets, engines, generation, modeling
from ..config import Profile
from ..io import atomic_path
from . import lora


def stage_sort_key(stage: str) -> tuple[int, int, str]:
    """base, then SIT by n, RAFT by iteration (best-of-K before random), then DPO."""
    number = int(m.group(1)) if (m := re.search(r"(\d+)$", stage)) else 0
    family = next((i for i, prefix in enumerate(("base", "sit", "raft-it", "raft-random", "dpo"))
                   if stage.startswith(prefix)), 5)
    return family, number, stage


def defined_stages(cfg: Profile) -> list[str]:
    """The stages a profile trains: its SIT ablation, RAFT and its random twin per iteration, DPO."""
    iterations = range(1, cfg.raft_iterations + 1)
    return ["base", *(f"sit-n{n}" for n in cfg.sit_ns), *(f"raft-it{i}" for i in iterations),
            *(f"raft-random-it{i}" for i in iterations), "dpo"]


def stages(run_dir: str | Path, cfg: Profile | None = None) -> list[str]:
    """``base`` and every stage whose adapter was trained in this run *under that name*, in teaching order.

    A folder without its ``training.json``, or whose record names another stage (an adapter copied
    over from another name), is not a stage; with ``cfg``, neither is one that profile does not train
    (a leftover of an earlier ablation).
    """
    folder = Path(run_dir) / lora.ADAPTERS
    found = [p.name for p in sorted(folder.glob("*")) if (p / "adapter_config.json").exists()
             and (lora.read_training_record(p) or {}).get("stage") == p.name] if folder.exists() else []
    if cfg is not None:
        defined = set(defined_stages(cfg))
        found = [stage for stage in found if stage in defined]
    return sorted(["base", *found], key=stage_sort_key)


def load_stage(cfg: Profile, run_dir: str | Path, stage: str) -> tuple[Any, Any]:
    """The base model, with the stage's LoRA adapter merged in (merged weights generate faster).

    A stage trained on top of another (DPO from a SIT model) has that one merged in first.
    """
    if stage == "base":
        return modeling.load_model(cfg.model, offline=cfg.offline)
    adapter = lora.adapter_dir(run_dir, stage)
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter}: no adapter_config.json; stages in this run: {stages(run_dir)}")
    model, tokenizer = load_stage(cfg, run_dir, below(run_dir, stage))
    return modeling.merge_adapter(model, adapter), tokenizer


def below(run_dir: str | Path, stage: str) -> str:
    """The stage ``stage`` was trained on top of (``base`` for most; a SIT stage for DPO from SIT)."""
    return (lora.read_training_record(lora.adapter_dir(run_dir, stage)) or {}).get("on_top_of") or "base"


def weights_id(cfg: Profile, run_dir: str | Path, stage: str) -> str | None:
    """A name for ``stage``'s weights read from files, without loading or merging anything: the base
    model's identity and the bytes of every adapter in the stack (None for a hub model). The scorecard
    finds a stage's stored evaluation by it; the evaluation's own key still names the merged weights."""
    base = modeling.model_identity(cfg.model, offline=cfg.offline)
    if base is None:
        return None
    merging = " ".join(f"{name} {metadata.version(name)}" for name in ("torch", "peft"))  # how they are merged
    digest = hashlib.sha256(f"{base} {merging}".encode())
    while stage != "base":
        adapter = lora.adapter_dir(run_dir, stage)
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            digest.update(assets.sha256_of(adapter / name).encode())
        stage = below(run_dir, stage)
    return digest.hexdigest()[:16]


def stage_id(cfg: Profile, run_dir: str | Path, stage: str) -> str:
    """The id of a stage's weights for training keys: what is trained on top of it follows its retraining."""
    return cfg.model if stage == "base" else lora.stacked_id(cfg.model, lora.adapter_dir(run_dir, stage))


def handover(cfg: Profile, run_dir: str | Path, stage: str) -> tuple[str, str | None]:
    """(model, adapter) that a separate answer engine loads for ``stage`` (``engines``): the base model
    and the stage's LoRA folder, which vLLM applies per request; or, for a stage trained on top of
    another (vLLM applies one adapter at a time), a merged copy written once under
    ``<run>/engine/<stage>/``, named by the training key so that a retrained stage is merged afresh."""
    base = modeling.resolve_model_path(cfg.model, offline=cfg.offline)
    if stage == "base":
        return base, None
    adapter = lora.adapter_dir(run_dir, stage)
    if below(run_dir, stage) == "base":
        return base, str(adapter)
    record = lora.read_training_record(adapter) or {}
    merged = Path(run_dir) / "engine" / stage / f"model-{str(record.get('key', 'unkeyed'))[:12]}"
    if not (merged / "model.safetensors").exists():
        model, tokenizer = load_stage(cfg, run_dir, stage)
        with atomic_path(merged) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    return str(merged), None


def answerer(cfg: Profile, run_dir: str | Path, stage: str, model: Any, tokenizer: Any,
             fingerprint: str | None = None) -> engines.Answerer:
    """``answer(prompts, settings)`` for ``stage``, loaded as ``model``: from the kernel's engine, or from
    the one ``answer_engine`` names (its files under ``<run>/engine/<stage>/``)."""
    return engines.answerer(cfg, model, tokenizer, fingerprint or generation.model_fingerprint(model),
                            lambda: handover(cfg, run_dir, stage), Path(run_dir) / "engine" / stage)
