"""Where a training stage runs: in the notebook's kernel, or under a distributed launcher.

With the profile's ``launcher = inprocess`` (``smoke`` and ``tiny``, on a CPU) ``launch`` calls the
stage's trainer in this process, exactly as a plain function call. With ``torchrun`` or ``accelerate``
it starts ``python -m safeserve_utils train --stage … --run-dir …`` under that launcher as a
subprocess with ``num_processes`` workers, streams the output into the cell and reads the adapters
and their ``training.json`` back from the run directory. Every worker trains; only rank 0 writes
(``lora.main_process``). The workers read the profile from the run's ``config.json``, so a parameter a
notebook set differently is passed on with ``-p``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import config, system
from . import lora
from .reward_model import OWN_REWARD_MODEL

STAGES = ("sit", "rm", "dpo", "raft")


def folder(run_dir: str | Path, name: str) -> Path:
    """Where a trained stage is saved: ``<run>/reward_model`` or ``<run>/adapters/<name>``."""
    return Path(run_dir) / OWN_REWARD_MODEL if name == OWN_REWARD_MODEL else lora.adapter_dir(run_dir, name)


def stage_names(cfg: config.Profile, stage: str, n: int | None = None, name: str = "") -> list[str]:
    """What one call trains: every SIT n of the ablation (or only ``n``), the reward model, DPO, or
    the RAFT iteration ``name``."""
    if stage not in STAGES:
        raise lora.TrainingError(f"training stage {stage!r}: expected one of {', '.join(STAGES)}")
    if stage == "sit":
        return [f"sit-n{k}" for k in (cfg.sit_ns if n is None else [n])]
    if stage == "raft":
        if not name:
            raise lora.TrainingError("training stage raft needs the iteration's name (e.g. --name raft-it1)")
        return [name]
    return [OWN_REWARD_MODEL if stage == "rm" else "dpo"]


def command(cfg: config.Profile, run_dir: str | Path, stage: str, n: int | None = None, name: str = "",
            start: str = "") -> list[str]:
    """The launcher's command line for one stage: ``torchrun`` (``torch.distributed.run``, shipped with
    torch) or ``accelerate launch`` with the profile's config file, then this package's ``train``."""
    args = ["-m", "safeserve_utils", "train", "--stage", stage, "--run-dir", str(Path(run_dir).resolve())]
    args += ["--n-safety", str(n)] if n is not None else []
    args += ["--name", name] if name else []
    args += ["--continues", start] if start else []
    for key, value in _differences(cfg, run_dir).items():
        args += ["-p", f"{key}={value}"]
    if cfg.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(cfg.num_processes), *args]
    if cfg.launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", cfg.accelerate_config,
                "--num_processes", str(cfg.num_processes), *args]
    raise lora.TrainingError(f"parameter `launcher` is {cfg.launcher!r}: inprocess runs no command")


def _differences(cfg: config.Profile, run_dir: str | Path) -> dict[str, Any]:
    """The parameters in which ``cfg`` (a notebook's, with its overrides) differs from the run's record."""
    recorded = config.load_run_config(run_dir)
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if f.compare and getattr(cfg, f.name) != getattr(recorded, f.name)}


def launch(cfg: config.Profile, run_dir: str | Path, stage: str, fit: Callable[[], dict[str, lora.TrainResult]],
           n: int | None = None, name: str = "", start: str = "", echo: Callable[[str], None] = print
           ) -> dict[str, lora.TrainResult]:
    """``fit()`` in this process, or the same stage under the profile's launcher (see the module)."""
    if cfg.launcher == "inprocess":
        return fit()
    names = stage_names(cfg, stage, n, name)
    before = {s: (lora.read_training_record(folder(run_dir, s)) or {}).get("key") for s in names}
    cmd = command(cfg, run_dir, stage, n, name, start)
    echo("launching: " + " ".join(cmd))
    returncode = system.run_streamed(cmd, echo, cwd=config.PROJECT_ROOT)
    if returncode:
        raise lora.TrainingError(f"training stage {stage} under {cfg.launcher} exited with code "
                                 f"{returncode} (its output is above); stages trained before it are kept")
    results = {}
    for s in names:
        record = lora.read_training_record(folder(run_dir, s))
        if record is None:
            raise lora.TrainingError(f"{folder(run_dir, s)}: the launched run ended without writing "
                                     f"{lora.TRAINING_FILE}")
        results[s] = lora.TrainResult(folder(run_dir, s), record["log_history"], record["seconds"],
                                      record["examples"], record["tokens"], resumed=record["key"] == before[s])
    return results
