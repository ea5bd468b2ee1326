"""LoRA SFT and DPO on TRL's trainers, with defaults that are right on a CPU.

TRL 1.16 defaults to ``bf16=True`` and gradient checkpointing even on a CPU. ``benchmarks/training.py``
measured bf16 autocast 1.3x faster than fp32 for LoRA SFT with AMX and 1.2x faster on an AVX2-only CPU,
and checkpointing 1.4x slower there; fp32 keeps a run's numbers the same on every CPU. Every trainer here is built through
``cpu_arguments``: fp32, no checkpointing, no reporting, no intermediate checkpoints. Each trained
adapter is saved atomically into ``<run>/adapters/<stage>/`` with ``training.json`` (the settings it
was trained with, its ``log_history`` and its cost), so an interrupted stage resumes from the adapters
already on disk and the evaluation notebook finds every stage by itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import progress
from .data.build import sit_mix
from .data.files import DataError, read_rows
from .io import atomic_path, read_json

ADAPTERS = "adapters"
TRAINING_FILE = "training.json"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


class TrainingError(ValueError):
    """A training setting that cannot work, named with the parameter that holds it."""


@dataclass(frozen=True)
class TrainSettings:
    """One training run's knobs; everything in here is part of the adapter's resume key."""

    method: str  # sft | dpo | rm (a reward model: a sequence-classification head trained on pairs)
    epochs: float
    learning_rate: float
    batch_size: int
    max_length: int
    lora_r: int
    lora_alpha: int
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LORA_TARGETS
    lora_layers: int = 0  # adapt only the last k transformer layers (0: all); backward stops below them
    beta: float = 0.1  # DPO only
    sft_weight: float = 0.0  # DPO only: weight of an SFT term on the chosen answer
    seed: int = 0
    warmup_ratio: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict)  # recorded, not interpreted (e.g. n_safety)

    def __post_init__(self) -> None:
        checks = {
            "method": self.method in ("sft", "dpo", "rm"),
            "epochs": self.epochs > 0,
            "learning_rate": 0 < self.learning_rate < 1,
            "batch_size": self.batch_size >= 1,
            "max_length": self.max_length >= 16,
            "lora_r": self.lora_r >= 1,
            "lora_alpha": self.lora_alpha >= 1,
            "lora_dropout": 0 <= self.lora_dropout < 1,
            "lora_layers": self.lora_layers >= 0,
            "beta": self.beta > 0,
            "sft_weight": self.sft_weight >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise TrainingError(f"training setting `{name}` has an invalid value: {getattr(self, name)!r}")

    def key(self, data: Sequence[dict[str, Any]], model_id: str) -> str:
        blob = json.dumps({"settings": dataclasses.asdict(self), "data": list(data), "model": model_id},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def lora_config(settings: TrainSettings, num_layers: int) -> Any:
    """LoRA on the attention projections, optionally of the last ``lora_layers`` layers only.

    On a CPU the backward pass is most of a step's cost, and autograd stops at the lowest layer that
    has trainable weights: adapting the top third of the layers makes a step about twice as fast.
    """
    from peft import LoraConfig

    layers = None
    if settings.lora_layers:
        if settings.lora_layers > num_layers:
            raise TrainingError(f"training setting `lora_layers` is {settings.lora_layers}, but the model has "
                                f"{num_layers} layers")
        layers = list(range(num_layers - settings.lora_layers, num_layers))
    # SEQ_CLS makes PEFT train and save the new reward head (``score``) along with the adapter.
    task = "SEQ_CLS" if settings.method == "rm" else "CAUSAL_LM"
    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=list(settings.lora_targets), layers_to_transform=layers,
                      task_type=task, bias="none")


def cpu_arguments(settings: TrainSettings, output_dir: Path, **extra: Any) -> Any:
    """``SFTConfig``/``DPOConfig`` with the CPU-safe defaults; ``extra`` overrides (benchmarks use it)."""
    from trl import DPOConfig, RewardConfig, SFTConfig

    common: dict[str, Any] = dict(
        output_dir=str(output_dir), num_train_epochs=settings.epochs, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=1,
        max_length=settings.max_length, lr_scheduler_type="cosine", warmup_steps=settings.warmup_ratio,
        seed=settings.seed, data_seed=settings.seed, logging_steps=1, save_strategy="no", report_to="none",
        bf16=False, fp16=False, use_cpu=True, gradient_checkpointing=False, dataloader_num_workers=0,
        disable_tqdm=True,
    )
    if settings.method == "sft":
        # Batches of similar length pad less (DPO's tokenised pairs have no single length to group by).
        return SFTConfig(**{**common, "completion_only_loss": True, "train_sampling_strategy": "group_by_length",
                            **extra})
    if settings.method == "rm":
        return RewardConfig(**{**common, **extra})
    losses = ["sigmoid", "sft"] if settings.sft_weight > 0 else ["sigmoid"]
    weights = [1.0, settings.sft_weight] if settings.sft_weight > 0 else None
    return DPOConfig(**{**common, "beta": settings.beta, "loss_type": losses, "loss_weights": weights,
                        "precompute_ref_log_probs": True, **extra})


@dataclass
class TrainResult:
    adapter: Path
    log_history: list[dict[str, Any]]
    seconds: float
    examples: int
    tokens: int
    resumed: bool = False  # True when the adapter was already on disk with the same key

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")


def _count_tokens(tokenizer: Any, rows: Sequence[dict[str, Any]]) -> int:
    """Tokens the trainer sees per epoch (prompt plus every answer, chat template included)."""
    total = 0
    for row in rows:
        for side in ("completion", "chosen", "rejected"):
            if side in row:
                text = tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=False)
                total += len(tokenizer(text, add_special_tokens=False).input_ids)
    return total


def read_training_record(adapter: Path) -> dict[str, Any] | None:
    return read_json(Path(adapter) / TRAINING_FILE)  # damaged: moved aside, so the stage is retrained


def train(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    settings: TrainSettings,
    adapter: str | Path,
    model_id: str = "",
    callbacks: Sequence[Any] = (),
    trainer_hook: Callable[[Any], None] | None = None,
    arguments: dict[str, Any] | None = None,
    start_adapter: str | Path | None = None,
    on_top_of: str = "",
) -> TrainResult:
    """Train a LoRA adapter on ``rows`` (TRL conversational prompt/completion or prompt/chosen/rejected).

    Saved atomically to ``adapter`` with ``training.json``. If ``adapter`` already holds a run with the
    same settings, data and base model, it is returned as is: a re-run resumes instead of retraining.
    ``model`` is left without the adapter (the trainer's copy is unloaded), so it can be reused.
    ``arguments`` overrides trainer arguments (``benchmarks/training.py`` restores TRL's defaults).
    ``start_adapter`` continues training an existing adapter (RAFT's iterations) instead of a new one,
    so every saved adapter applies to the base model on its own. ``on_top_of`` names the stage already
    merged into ``model`` (DPO from a SIT model): recorded, so the stage is loaded on top of that one.
    """
    from datasets import Dataset

    adapter = Path(adapter)
    if not rows:
        raise TrainingError(f"{adapter.name}: no training rows")
    needed = {"sft": ("prompt", "completion"), "dpo": ("prompt", "chosen", "rejected"),
              "rm": ("prompt", "chosen", "rejected")}[settings.method]
    missing = [k for k in needed if k not in rows[0]]
    if missing:
        raise TrainingError(f"{adapter.name}: {settings.method} rows need fields {needed}; missing {missing}")
    start_record = read_training_record(Path(start_adapter)) if start_adapter else None
    if start_adapter and start_record is None:
        raise TrainingError(f"{start_adapter}: no {TRAINING_FILE}; train the earlier stage first")
    key = settings.key(rows, model_id + json.dumps(arguments or {}, sort_keys=True)
                       + (start_record["key"] if start_record else ""))
    record = read_training_record(adapter)
    if record and record.get("key") == key and (adapter / "adapter_config.json").exists():
        return TrainResult(adapter, record["log_history"], record["seconds"], record["examples"],
                           record["tokens"], resumed=True)

    dataset = Dataset.from_list([{k: r[k] for k in needed} for r in rows])
    if start_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
    with atomic_path(adapter) as tmp:
        args = cpu_arguments(settings, tmp / "trainer", **(arguments or {}))
        trainer = _trainer(settings, model, tokenizer, dataset, args,
                           [progress.training_progress(f"{adapter.name} ({settings.method})"), *callbacks])
        try:
            if trainer_hook:
                trainer_hook(trainer)
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
            trainer.model.save_pretrained(str(tmp))
        finally:
            trainer.model.unload()  # take the LoRA layers out of ``model`` again, unmerged, even on failure
        tokens = math.ceil(settings.epochs * _count_tokens(tokenizer, rows))
        record = {"key": key, "stage": adapter.name, "on_top_of": on_top_of,
                  "settings": dataclasses.asdict(settings), "model": model_id,
                  "examples": len(rows), "tokens": tokens, "seconds": round(seconds, 1),
                  "log_history": trainer.state.log_history}
        (tmp / TRAINING_FILE).write_text(json.dumps(record, indent=2, default=str))
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
    return TrainResult(adapter, record["log_history"], seconds, len(rows), tokens)


def stacked_id(model_id: str, start: Path) -> str:
    """The id of a model that is ``model_id`` with the adapter in ``start`` merged in: a retrained start
    has a new key, so whatever is trained on top of it is retrained too."""
    record = read_training_record(start)
    if record is None:
        raise TrainingError(f"{start}: no {TRAINING_FILE}; train the stage named {start.name!r} first")
    return f"{model_id}+{record['key']}"


def _trainer(settings: TrainSettings, model: Any, tokenizer: Any, dataset: Any, args: Any,
             callbacks: list[Any]) -> Any:
    from trl import DPOTrainer, RewardTrainer, SFTTrainer

    from transformers import PrinterCallback

    cls = {"sft": SFTTrainer, "dpo": DPOTrainer, "rm": RewardTrainer}[settings.method]
    peft_config = None if _has_adapter(model) else lora_config(settings, model.config.num_hidden_layers)
    trainer = cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                  peft_config=peft_config, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # a dict per step buries the notebook; curves are plotted instead
    return trainer


def _has_adapter(model: Any) -> bool:
    return hasattr(model, "peft_config")


# ------------------------------------------------------------------------------ DPO diagnostics

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


# ------------------------------------------------------------------------------ profiles -> settings

def adapter_dir(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / ADAPTERS / stage


def sit_settings(cfg: Any, n_safety: int) -> TrainSettings:
    return TrainSettings(method="sft", epochs=cfg.sit_epochs, learning_rate=cfg.sit_lr,
                         batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                         lora_r=cfg.sit_lora_r, lora_alpha=cfg.sit_lora_alpha, seed=cfg.seed,
                         extra={"n_safety": n_safety})


def dpo_settings(cfg: Any) -> TrainSettings:
    return TrainSettings(method="dpo", epochs=cfg.dpo_epochs, learning_rate=cfg.dpo_lr,
                         batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                         lora_r=cfg.dpo_lora_r, lora_alpha=cfg.dpo_lora_alpha, beta=cfg.dpo_beta,
                         sft_weight=cfg.dpo_sft_weight, seed=cfg.seed)


def raft_settings(cfg: Any) -> TrainSettings:
    """RAFT's SFT on the kept answers: SIT's LoRA shape, RAFT's own epochs and learning rate."""
    return TrainSettings(method="sft", epochs=cfg.raft_epochs, learning_rate=cfg.raft_lr,
                         batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                         lora_r=cfg.sit_lora_r, lora_alpha=cfg.sit_lora_alpha, seed=cfg.seed)


def rm_settings(cfg: Any) -> TrainSettings:
    """The reward model: a LoRA (DPO's shape) plus a new scalar head, trained on preference pairs."""
    return TrainSettings(method="rm", epochs=cfg.rm_epochs, learning_rate=cfg.rm_lr,
                         batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                         lora_r=cfg.dpo_lora_r, lora_alpha=cfg.dpo_lora_alpha, seed=cfg.seed)


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
