"""Training: LoRA on TRL's trainers (``lora``) and each method of the paper on top of it: safety
instruction tuning (``sit``, notebook ``02_sit``), the reward model RAFT ranks with (``reward_model``,
``03_reward_model``), RAFT itself (``raft``, ``04_raft``) and DPO (``dpo``, ``05_dpo``).

The notebooks call the names below (``train.train``, ``train.adapter_dir``, ``train.sit_mixes``, ...),
RAFT's loop through its module (``raft.run``) and a run's stages through ``stages`` (which exist, how
to load one); the rest of the package imports each name from the submodule that defines it.
"""

from . import dpo, entry, launch, lora, raft, reward_model, sit, stages
from .dpo import dpo_diagnostics, dpo_settings, on_policy_stage_pairs
from .entry import run_stage, train_stage
from .lora import (ADAPTERS, LORA_TARGETS, TRAINING_FILE, TrainingError, TrainResult, TrainSettings, adapter_dir,
                   lora_config, main_process, read_training_record, stacked_id, train,
                   trainer_arguments)
from .raft import raft_settings
from .reward_model import HELD_OUT, OWN_REWARD_MODEL, pair_accuracy, rm_settings, split_pairs, train_reward_model
from .sit import sit_mixes, sit_settings

__all__ = [
    "dpo", "entry", "launch", "lora", "raft", "reward_model", "sit", "stages",
    "dpo_diagnostics", "dpo_settings", "on_policy_stage_pairs",
    "run_stage", "train_stage",
    "ADAPTERS", "LORA_TARGETS", "TRAINING_FILE", "TrainingError", "TrainResult", "TrainSettings", "adapter_dir",
    "lora_config", "main_process", "read_training_record", "stacked_id", "train", "trainer_arguments",
    "raft_settings",
    "HELD_OUT", "OWN_REWARD_MODEL", "pair_accuracy", "rm_settings", "split_pairs", "train_reward_model",
    "sit_mixes", "sit_settings",
]
