"""Shared fixtures. Every test runs behind the network guard: the default path must need no network."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safeserve_utils import config

NETGUARD_DIR = Path(__file__).parent / "netguard"

# Tests that call transformers directly (stand-in models, exported folders) bypass the profile's
# offline switch, and some loads then looked the hub up intermittently (two clean-clone CI runs).
# The test process takes the default profile's switch itself, at import, before any test module
# imports huggingface_hub (which reads it once).
config.apply_environment(config.resolve("tiny"))


def _load_netguard():
    spec = importlib.util.spec_from_file_location("safeserve_netguard", NETGUARD_DIR / "sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


netguard = _load_netguard()


@pytest.fixture(scope="session", autouse=True)
def network_guard(tmp_path_factory):
    """Block non-loopback sockets in the test process; fail the session if anything tried one."""
    log = tmp_path_factory.mktemp("netguard") / "attempts.log"
    os.environ["SAFESERVE_NETGUARD_LOG"] = str(log)
    netguard.install()
    yield log
    attempts = log.read_text() if log.exists() else ""
    assert not attempts, f"tests tried to reach the network:\n{attempts}"


@pytest.fixture(scope="session")
def base_model():
    """The default model and tokenizer, loaded once from the converted cache (`make fetch` made it)."""
    from safeserve_utils import config, modeling

    config.apply_runtime(config.resolve("smoke"))
    return modeling.load_model(config.DEFAULT_MODEL)


@pytest.fixture(scope="session")
def stand_in(tmp_path_factory, base_model):
    """A tiny random Llama with the default model's tokenizer, in the on-disk format of a hub
    checkpoint (what the paper profile loads; cheap enough to train in several processes)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tokenizer = base_model
    path = tmp_path_factory.mktemp("stand_in")
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def guarded_env(log: Path) -> dict[str, str]:
    """Environment for a child process that inherits the network guard (through sitecustomize)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SAFESERVE_NETGUARD_LOG"] = str(log)
    return env


@pytest.fixture(scope="session")
def smoke_chain(tmp_path_factory, network_guard):
    """The whole `smoke` chain, run once per session with every process behind the network guard.

    The chain test checks what it wrote and the browser test opens the probe on its stages, so the
    suite pays for the chain once. Returns (run directory, network log, the finished command).
    """
    root = tmp_path_factory.mktemp("smoke-chain")
    run_dir, log = root / "run", root / "net.log"
    finished = subprocess.run([sys.executable, "-m", "safeserve_utils", "run", "--profile", "smoke",
                               "--run-dir", str(run_dir)], capture_output=True, text=True, env=guarded_env(log),
                              cwd=Path(__file__).parent.parent)
    return run_dir, log, finished
