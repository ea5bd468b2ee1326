"""LoRA training on TRL's trainers (SFT, DPO and the reward model's head), with arguments that follow
the device.

TRL 1.16 defaults to ``bf16=True`` and gradient checkpointing even on a CPU. ``benchmarks/training.py``
measured bf16 autocast 1.2x to 1.6x faster than fp32 for LoRA SFT on CPUs (most where the CPU has bf16
instructions) and checkpointing 1.4x slower. So ``trainer_arguments`` gives a CPU no checkpointing and
fp32 unless the profile asks for bf16 (``train_bf16``: ``tiny`` does, for speed; fp32 keeps a run's
numbers the same on every CPU), and a GPU bf16 (where it has it) with checkpointing, where memory, not
arithmetic, limits a 7B model's batch; never reporting or intermediate checkpoints. Each trained
adapter is saved atomically into ``<run>/adapters/<stage>/`` with ``training.json`` (the settings it
was trained with, its ``log_history`` and its cost), so an interrupted stage resumes from the adapters
already on disk and the evaluation notebook finds every stage by itself. Launched in several processes
(``launch``), every process trains and only rank 0 writes. Each method's settings, read from a profile,
live beside the method (``sit``, ``dpo``, ``raft``, ``reward_model``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import progress
from ..io import atomic_path, read_json

ADAPTERS = "adapters"
TRAINING_FILE = "training.json"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: What the profile's ``lora_targets`` names: the attention projections, or every linear layer of a
#: block (the MLP holds two thirds of a block's weights, and with them much of what a prompt means).
LORA_TARGET_SETS = {"attention": LORA_TARGETS, "all": LORA_TARGETS + ("gate_proj", "up_proj", "down_proj")}


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
    bf16: bool = False  # bf16 autocast on a CPU too (a GPU uses bf16 wherever it has it)
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


def trainer_arguments(settings: TrainSettings, output_dir: Path, device: str | None = None, **extra: Any) -> Any:
    """``SFTConfig``/``DPOConfig``/``RewardConfig`` for ``device`` (``cpu`` or ``cuda``; the default is
    what this process sees); ``extra`` overrides (benchmarks use it)."""
    import torch
    from trl import DPOConfig, RewardConfig, SFTConfig

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device == "cuda"
    common: dict[str, Any] = dict(
        output_dir=str(output_dir), num_train_epochs=settings.epochs, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=1,
        max_length=settings.max_length, lr_scheduler_type="cosine", warmup_steps=settings.warmup_ratio,
        seed=settings.seed, data_seed=settings.seed, logging_steps=1, save_strategy="no", report_to="none",
        bf16=torch.cuda.is_bf16_supported() if gpu else settings.bf16, fp16=False, use_cpu=not gpu,
        activation_checkpointing=gpu, dataloader_num_workers=0, disable_tqdm=True,
        # LoRA leaves the base weights frozen: DDP need not search the graph for unused parameters
        ddp_find_unused_parameters=False,
    )
    if gpu:
        common["activation_checkpointing_kwargs"] = {"use_reentrant": False}  # the variant PEFT and DDP need
    if settings.method == "sft":
        # Batches of similar length pad less (DPO's tokenised pairs have no single length to group by).
        return SFTConfig(**{**common, "completion_only_loss": True, "train_sampling_strategy": "group_by_length",
                            **extra})
    if settings.method == "rm":
        return RewardConfig(**{**common, **extra})
    losses = ["sigmoid", "sft"] if settings.sft_weight > 0 else ["sigmoid"]
    weights = [1.0, settings.sft_weight] if settings.sft_weight > 0 else None
    return DPOConfig(**{**common, "beta": settings.beta, "loss_type": losses, "loss_weights": weights,
                        "precompute_ref_log_probs": True,
                        # no gradients there: a larger batch makes bigger matrix products (measured 2.5 s a batch of 8)
                        "precompute_ref_batch_size": 4 * settings.batch_size, **extra})


def profile_knobs(cfg: Any) -> dict[str, Any]:
    """The settings every method takes from the profile alike (adapter shape, precision, seed)."""
    return {"lora_dropout": cfg.lora_dropout, "lora_targets": LORA_TARGET_SETS[cfg.lora_targets],
            "lora_layers": cfg.lora_layers, "bf16": cfg.train_bf16, "seed": cfg.seed}


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

    if start_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
    main = main_process()
    with atomic_path(adapter) if main else _scratch() as tmp:
        args = trainer_arguments(settings, tmp / "trainer", **(arguments or {}))
        dataset = _dataset([{k: r[k] for k in needed} for r in rows], adapter, args.world_size)
        shown = [progress.training_progress(f"{adapter.name} ({settings.method})")] if main else []
        trainer = _trainer(settings, model, tokenizer, dataset, args, [*shown, *callbacks])
        try:
            if trainer_hook:
                trainer_hook(trainer)
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
            if args.world_size > 1:
                _shared_data_done(adapter)
            if main:
                trainer.model.save_pretrained(str(tmp))
        finally:
            trainer.model.unload()  # take the LoRA layers out of ``model`` again, unmerged, even on failure
        tokens = math.ceil(settings.epochs * _count_tokens(tokenizer, rows))
        record = {"key": key, "stage": adapter.name, "on_top_of": on_top_of,
                  "settings": dataclasses.asdict(settings), "model": model_id,
                  "examples": len(rows), "tokens": tokens, "seconds": round(seconds, 1),
                  "processes": args.world_size, "log_history": trainer.state.log_history}
        if main:
            (tmp / TRAINING_FILE).write_text(json.dumps(record, indent=2, default=str))
            shutil.rmtree(tmp / "trainer", ignore_errors=True)
    return TrainResult(adapter, record["log_history"], seconds, len(rows), tokens)


def main_process() -> bool:
    """True unless this is a worker other than rank 0 of a launched run (torchrun and accelerate set
    ``RANK``): every process trains, only rank 0 writes the adapter and its record."""
    return int(os.environ.get("RANK", "0")) == 0


def _shared_data(adapter: Path) -> Path:
    return adapter.with_name(f".{adapter.name}.data.tmp")  # ``.*.tmp``: removed if a dead run leaves it


def _dataset(rows: list[dict[str, Any]], adapter: Path, world_size: int) -> Any:
    """The training rows as a ``datasets.Dataset``: in memory for one process; for several, saved once
    by rank 0 beside the adapter and opened from there by every worker. TRL's DPO caches the
    reference log-probabilities next to the dataset's files on rank 0 and reads them back on every
    rank, which an in-memory dataset (a temporary folder per process) cannot offer."""
    from datasets import Dataset, load_from_disk

    data = Dataset.from_list(rows)
    if world_size == 1:
        return data
    from accelerate import PartialState

    folder = _shared_data(adapter)
    with PartialState().main_process_first():
        if main_process():
            shutil.rmtree(folder, ignore_errors=True)
            data.save_to_disk(str(folder))
        return load_from_disk(str(folder))


def _shared_data_done(adapter: Path) -> None:
    """Every worker has finished training: rank 0 removes the shared copy of the rows."""
    from accelerate import PartialState

    PartialState().wait_for_everyone()
    if main_process():
        shutil.rmtree(_shared_data(adapter), ignore_errors=True)


@contextmanager
def _scratch() -> Iterator[Path]:
    """Where a worker other than rank 0 points its trainer: removed afterwards, never renamed."""
    with tempfile.TemporaryDirectory(prefix="safeserve-worker-") as folder:
        yield Path(folder)


def stacked_id(model_id: str, start: Path) -> str:
    """The id of a model that is ``model_id`` with the adapter in ``start`` merged in: a retrained start
    has a new key, so whatever is trained on top of it is retrained too."""
    record = read_training_record(start)
    if record is None:
        raise TrainingError(f"{start}: no {TRAINING_FILE}; train the stage named {start.name!r} first")
    return f"{model_id}+{record['key']}"


def score_labelled_positions_only() -> None:
    """Make TRL's fused LM head score only the positions that carry a label on every device.

    SFT and DPO get their per-token log-probabilities from TRL's chunked LM head. With Triton (GPUs)
    it projects only the positions whose label is not -100; elsewhere it projects every position, a
    choice made for Neuron, which recompiles whenever the number of positions changes, and its torch
    fallback is element-wise heavy. On a CPU that made the LM head half of a DPO step: the prompt and
    system tokens were scored and then masked away. Compacting first gives the same log-probabilities
    for the answer tokens (a test checks it) and measured a DPO step 1.8x faster (9.9 s -> 5.5 s, 16
    sequences of 96 tokens). TRL 1.16 takes that choice from the name ``_use_triton`` in
    ``trl.trainer.utils`` (the kernel module keeps its own binding, which still picks the torch
    fallback here), so setting that one name changes where it scores and nothing else.
    """
    import trl.trainer.utils as trl_utils

    if not hasattr(trl_utils, "_use_triton"):
        raise TrainingError("trl.trainer.utils._use_triton is gone: this TRL version decides where the fused "
                            "LM head scores differently; check score_labelled_positions_only against it")
    trl_utils._use_triton = lambda device: True


def _trainer(settings: TrainSettings, model: Any, tokenizer: Any, dataset: Any, args: Any,
             callbacks: list[Any]) -> Any:
    from trl import DPOTrainer, RewardTrainer, SFTTrainer

    from transformers import PrinterCallback

    score_labelled_positions_only()

    cls = {"sft": SFTTrainer, "dpo": DPOTrainer, "rm": RewardTrainer}[settings.method]
    peft_config = None if _has_adapter(model) else lora_config(settings, model.config.num_hidden_layers)
    trainer = cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                  peft_config=peft_config, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # a dict per step buries the notebook; curves are plotted instead
    return trainer


def _has_adapter(model: Any) -> bool:
    return hasattr(model, "peft_config")


# ------------------------------------------------------------------------------ a run's adapters

def adapter_dir(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / ADAPTERS / stage
