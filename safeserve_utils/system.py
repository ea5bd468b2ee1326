"""What machine a run is on, checked against what the workbook needs; the setup notebook's first chat
with the model, recorded in ``metrics/setup.json``; and the one way a notebook runs another program
(a training launcher, an answer engine) with its output streamed into the cell."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from . import config, generation
from .io import atomic_write_json

#: Below this much memory the `tiny` profile's DPO stage (policy + reference on CPU) may not fit.
MIN_MEMORY_GIB = 8


def run_streamed(cmd: list[str], echo: Callable[[str], None] = print, cwd: Path | None = None) -> int:
    """Run ``cmd``, echoing its output (stderr merged) line by line as it comes; return its exit code.
    A kernel's ``sys.stdout`` has no file descriptor to hand a child, so the lines pass through Python.
    The child gets its own session, so a signal a launcher sends its process group (torchrun stopping its
    workers) never reaches the kernel; interrupting the kernel stops the child."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                          start_new_session=True) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                echo(line.rstrip("\n"))
        except BaseException:
            proc.terminate()
            raise
    return proc.returncode


def matmul_gflops(rows: int = 128, seconds: float = 3.0) -> float:
    """This machine's fp32 matrix-multiply rate in GFLOP/s, at the shape of a SmolLM2-135M MLP projection
    (576 -> 1536) on ``rows`` tokens at once: 128 for a batched decoding step, ~1,000 for a training
    batch. The benchmarks divide their throughput by it, so a speed is read against what the CPU allows."""
    import torch  # deferred: the machine report must not pay for it

    a, w = torch.randn(rows, 576), torch.randn(1536, 576)
    for _ in range(10):
        torch.nn.functional.linear(a, w)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.nn.functional.linear(a, w)
        count += 1
    return 2 * rows * 576 * 1536 * count / (time.perf_counter() - start) / 1e9


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def pinned_requirements() -> dict[str, str]:
    """Package -> exact version pinned by this project's own metadata (the pyproject's dependencies)."""
    pins: dict[str, str] = {}
    for req in metadata.requires("safeserve-utils") or []:
        spec = req.split(";")[0].strip()
        if "==" in spec and "extra ==" not in req:
            name, version = spec.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def environment_report(cfg: config.Profile) -> list[dict[str, Any]]:
    """Rows of (check, value, ok, note) for the setup notebook: versions, threads, memory, disk, device."""
    import psutil
    import torch

    versions = config.environment_versions()
    memory_gib = psutil.virtual_memory().total / 2**30
    free_gib = shutil.disk_usage(config.PROJECT_ROOT).free / 2**30
    flags = cpu_flags()
    native_bf16 = bool(flags & {"avx512_bf16", "amx_bf16"})
    rows: list[tuple[str, Any, bool, str]] = [
        ("python", versions["python"], sys.version_info >= (3, 11), "3.11 or newer"),
    ]
    for name, pin in pinned_requirements().items():
        installed = config.installed_version(name)
        rows.append((name, installed, installed.split("+")[0] == pin, f"pinned {pin}"))
    rows += [
        ("CPU cores", os.cpu_count(), True, platform.machine()),
        ("torch threads", torch.get_num_threads(), torch.get_num_threads() == cfg.threads,
         f"profile asks for {cfg.threads}"),
        ("memory (GiB)", round(memory_gib, 1), memory_gib >= MIN_MEMORY_GIB, f"needs {MIN_MEMORY_GIB}+"),
        ("free disk (GiB)", round(free_gib, 1), free_gib >= 2, "model cache and runs need ~2"),
        ("GPU", torch.cuda.is_available(), True,
         "not needed for smoke/tiny; the paper profile wants one"),
        ("native bf16", native_bf16, True,
         "emulated without it; training stays fp32 either way"),
        ("offline", cfg.offline, True, "HF_HUB_OFFLINE=1: nothing is fetched from a hub"),
    ]
    return [dict(check=c, value=v, ok=bool(ok), note=n) for c, v, ok, n in rows]


def first_chat(model: Any, tokenizer: Any, prompts: list[tuple[str, str]], max_new_tokens: int,
               judge: Callable[[str], bool]) -> tuple[list[dict[str, Any]], float]:
    """The setup notebook's first conversation: each (kind, prompt) answered, and whether ``judge``
    (the strict refusal rules) calls the answer a refusal; with the seconds it took."""
    start = time.perf_counter()
    answers = generation.generate(model, tokenizer, [p for _, p in prompts], max_new_tokens=max_new_tokens)
    seconds = time.perf_counter() - start
    return [{"kind": kind, "prompt": p, "answer": a, "refused": judge(a)} for (kind, p), a in zip(prompts, answers)], seconds


def refusals_by_kind(chat: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """kind -> refused, asked and the refusal rate."""
    out: dict[str, dict[str, Any]] = {}
    for row in chat:
        entry = out.setdefault(row["kind"], {"refused": 0, "asked": 0})
        entry["refused"] += bool(row["refused"])
        entry["asked"] += 1
    return {kind: {**e, "refusal rate": e["refused"] / e["asked"]} for kind, e in sorted(out.items())}


def write_setup(run_dir: str | Path, model: str, load_seconds: float, chat_seconds: float,
                chat: list[dict[str, Any]]) -> Path:
    """``metrics/setup.json``: the model, how long it took to load and to answer, and the chat itself."""
    return atomic_write_json(Path(run_dir) / "metrics" / "setup.json", {
        "model": model, "load_seconds": round(load_seconds, 2), "chat_seconds": round(chat_seconds, 2),
        "refusals": {k: {"refused": v["refused"], "asked": v["asked"]} for k, v in refusals_by_kind(chat).items()},
        "chat": chat,
    })
