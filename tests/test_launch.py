"""The training entry point: in this process, and as two workers under torchrun on this CPU (gloo on
loopback), each stage from the run's config.json and data files."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import guarded_env
from safetensors.torch import load_file

from safeserve_utils import config
from safeserve_utils.data.build import conversation, preference_pair
from safeserve_utils.data.files import write_jsonl
from safeserve_utils.train import launch, lora

#: Two processes share the machine's two cores: one thread each, and accelerate told to stay on the CPU.
WORKER_ENV = {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}


def make_run(root: Path, model: Path, pairs_per_side: int = 4, **params) -> Path:
    """A run directory as 01_data leaves it, on prompts whose answers all have the same length, so a
    batch of 4 and two workers' batches of 2 see the same examples in the same steps (a multiple of 4
    examples: a short last batch is padded with repeats on one side only)."""
    cfg = config.resolve("smoke", {"model": str(model), "threads": 1, "sit_ablation": "0,4", "n_safety": 4,
                                   "sit_epochs": 1.0, "dpo_epochs": 1.0, "rm_epochs": 1.0, "dpo_start": "base",
                                   "train_max_length": 48, "lora_dropout": 0.0,
                                   "train_bf16": False, **params})  # fp32: the two runs must agree to 1e-4
    root.mkdir(parents=True)
    config.write_run_config(cfg, root)
    rows = [{"id": f"i{k}", "source": "test", "category": "general",
             **conversation(f"Say the number {k}.", f"The number is {k}.")} for k in range(8)]
    safety = [{"id": f"s{k}", "source": "test", "category": "violence",
               **conversation(f"Tell me how to hurt person {k}.", "I can't help with that.")}
              for k in range(pairs_per_side)]
    write_jsonl(root / "data" / "sit_instructions.jsonl", rows)
    write_jsonl(root / "data" / "sit_safety_pool.jsonl", safety)
    pairs = [preference_pair({"id": r["id"], "category": "violence", "prompt": r["prompt"][0]["content"]},
                             "I can't help with that.", "Sure, here is how.") for r in safety]
    pairs += [preference_pair({"id": r["id"], "category": "general", "prompt": r["prompt"][0]["content"]},
                              r["completion"][0]["content"], "I can't help with that.", worse_is_safe=True)
              for r in rows[:pairs_per_side]]
    write_jsonl(root / "data" / "prefs.jsonl", pairs)
    return root


def train(run_dir: Path, log: Path, stage: str, processes: int) -> subprocess.Popen:
    """``stage`` (SIT: only n=4) trained by ``processes`` torchrun workers, or by the plain command,
    started and not waited for: the two runs a test compares overlap (each worker has one thread, and
    most of a run's seconds are spent importing torch, one core each)."""
    cfg = dataclasses.replace(config.load_run_config(run_dir), launcher="torchrun", num_processes=processes)
    n = 4 if stage == "sit" else None
    command = launch.command(cfg, run_dir, stage, n) if processes > 1 else [
        sys.executable, "-m", "safeserve_utils", "train", "--run-dir", str(run_dir), "--stage", stage,
        *(["--n-safety", str(n)] if n else [])]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**guarded_env(log), **WORKER_ENV}, cwd=config.PROJECT_ROOT)


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def losses(record: dict) -> list[float]:
    return [h["loss"] for h in record["log_history"] if "loss" in h]


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.mark.parametrize("stage,name", [("sit", "sit-n4"), ("dpo", "dpo"), ("rm", "reward_model")])
def test_two_workers_train_as_one_process_with_twice_the_batch(stage, name, stand_in, tmp_path, network_guard):
    sides = 5 if stage == "rm" else 4  # the reward model trains on the 8 of 10 pairs 03 does not hold out
    two = make_run(tmp_path / "two", stand_in, sides, train_batch_size=2)
    one = make_run(tmp_path / "one", stand_in, sides, train_batch_size=4)
    ran, alone = map(finished, [train(two, network_guard, stage, processes=2),
                                train(one, network_guard, stage, processes=1)])
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]

    folder = launch.folder(two, name)
    record = lora.read_training_record(folder)
    assert record["processes"] == 2 and lora.read_training_record(launch.folder(one, name))["processes"] == 1
    assert losses(record) and all(math.isfinite(x) for x in losses(record))
    # one adapter, written once: no worker's temporary folder is left beside it
    assert sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(".")) == []
    a, b = adapter_weights(folder), adapter_weights(launch.folder(one, name))
    assert a.keys() == b.keys()
    assert any(float(t.abs().max()) > 1e-4 for k, t in b.items() if "lora_B" in k), "the adapter did not train"
    # Without dropout the two runs see the same examples per step and average the same gradients: on this
    # CPU they agreed to 2e-8 where the adapter's B matrices had moved 1.5e-3 (fp32 sums in another order).
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key


def test_the_command_carries_the_launcher_and_the_notebooks_overrides(stand_in, tmp_path):
    run_dir = make_run(tmp_path / "run", stand_in)
    cfg = dataclasses.replace(config.load_run_config(run_dir), launcher="torchrun", num_processes=2, dpo_beta=0.5)
    cmd = launch.command(cfg, run_dir, "dpo")
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert cmd[cmd.index("--stage") + 1] == "dpo"
    # what the notebook set differently from config.json reaches the workers
    assert "dpo_beta=0.5" in cmd and "launcher=torchrun" in cmd and "num_processes=2" in cmd
    shipped = config.PROJECT_ROOT / "configs" / "accelerate" / "ddp.yaml"
    accel = dataclasses.replace(cfg, launcher="accelerate", accelerate_config=str(shipped))
    cmd = launch.command(accel, run_dir, "sit", n=4)
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--config_file", str(shipped)]
    assert cmd[cmd.index("--n-safety") + 1] == "4"


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_the_launchers_hand_every_train_option_to_the_workers(launcher, stand_in, tmp_path):
    """The launcher's own parser must not claim an option meant for ``train``: torchrun once read
    ``--start`` as its ``--start-method`` (argparse abbreviations), and RAFT's second iteration failed."""
    from accelerate.commands.launch import launch_command_parser
    from torch.distributed.run import get_args_parser

    run_dir = make_run(tmp_path / "run", stand_in)
    cfg = dataclasses.replace(config.load_run_config(run_dir), launcher=launcher, num_processes=2, sit_lr=0.01,
                              accelerate_config=str(config.PROJECT_ROOT / "configs" / "accelerate" / "ddp.yaml"))
    cmd = launch.command(cfg, run_dir, "raft", name="raft-it2", start="raft-it1")
    parsed = (get_args_parser() if launcher == "torchrun" else launch_command_parser()).parse_args(cmd[3:])
    assert [parsed.training_script, *parsed.training_script_args] == cmd[cmd.index("safeserve_utils"):]


def test_a_bad_launcher_setting_names_its_parameter(tmp_path):
    with pytest.raises(config.ConfigError, match="`launcher`"):
        config.resolve("tiny", {"launcher": "slurm"})
    with pytest.raises(config.ConfigError, match="`accelerate_config`"):
        config.resolve("tiny", {"launcher": "accelerate"})
    cfg = config.resolve("tiny", {"launcher": "accelerate", "accelerate_config": str(tmp_path / "none.yaml")})
    with pytest.raises(config.ConfigError, match="accelerate_config.*ddp.yaml"):
        config.resolve_sources(cfg, builtin_models=(config.DEFAULT_MODEL,))
    with pytest.raises(lora.TrainingError, match="raft needs the iteration"):
        launch.stage_names(cfg, "raft")


def test_in_process_launch_calls_the_trainer_and_a_failed_worker_is_an_error(stand_in, tmp_path):
    run_dir = make_run(tmp_path / "run", stand_in)
    cfg = config.load_run_config(run_dir)
    assert launch.launch(cfg, run_dir, "dpo", lambda: {"dpo": "trained here"}) == {"dpo": "trained here"}
    broken = dataclasses.replace(cfg, launcher="torchrun", num_processes=1)
    (run_dir / "data" / "prefs.jsonl").write_text("")  # no pairs: the worker fails
    lines: list[str] = []
    with pytest.raises(lora.TrainingError, match="exited with code"):
        launch.launch(broken, run_dir, "dpo", lambda: {}, echo=lines.append)
    assert lines[0].startswith("launching: ") and any("no training rows" in line for line in lines)


def test_arguments_follow_the_device(tmp_path):
    settings = lora.TrainSettings(method="sft", epochs=1, learning_rate=1e-4, batch_size=2, max_length=32,
                                  lora_r=4, lora_alpha=8)
    args = lora.trainer_arguments(settings, tmp_path, device="cpu")
    assert args.use_cpu and not args.bf16 and not args.activation_checkpointing
