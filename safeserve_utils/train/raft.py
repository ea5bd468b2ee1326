"""RAFT: reward-ranked fine-tuning, the one training loop TRL lacks (the paper's §3.3, after LMFlow).

Each iteration samples K answers per prompt from the current model (temperature 0.85, top-p 0.95, as
in the paper), scores them with a reward model, keeps one per prompt and LoRA-SFTs on the kept set
(``raft_settings``: a profile's RAFT knobs). The next iteration starts from that adapter, so every saved
adapter applies to the base model on its own.

The matched **random baseline** runs the same loop on the same prompts and samples but keeps a random
answer instead of the best. If RAFT beats it, reward ranking moved the model; if not, the gain (or
loss) came from extra SFT on the model's own samples. ``iteration_stats`` makes the ranking itself
visible: the mean reward and the judge's safe rate of all samples against those kept.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from .. import generation, modeling, stats
from ..data.build import conversation
from ..data.files import read_rows, write_jsonl
from ..io import atomic_write_json
from . import launch, lora, stages

MODES = ("best", "random", "top_alpha")


def raft_settings(cfg: Any) -> lora.TrainSettings:
    """RAFT's SFT on the kept answers: SIT's LoRA shape, RAFT's own epochs and learning rate."""
    return lora.TrainSettings(method="sft", epochs=cfg.raft_epochs, learning_rate=cfg.raft_lr,
                              batch_size=cfg.train_batch_size, max_length=cfg.train_max_length,
                              lora_r=cfg.sit_lora_r, lora_alpha=cfg.sit_lora_alpha, **lora.profile_knobs(cfg))


@dataclass(frozen=True)
class Pick:
    prompt: str
    response: str
    reward: float
    index: int  # which of the K samples


def select(prompts: Sequence[str], samples: Sequence[Sequence[str]], rewards: Sequence[Sequence[float]],
           mode: str = "best", alpha: float = 0.5, seed: int = 0) -> list[Pick]:
    """One kept answer per prompt (``best``/``random``), or LMFlow's global ``top_alpha``: the best
    answer of each prompt, then only the ``alpha`` share of prompts whose best reward is highest."""
    if mode not in MODES:
        raise ValueError(f"RAFT selection mode {mode!r}: expected one of {MODES}")
    if not 0 < alpha <= 1:
        raise ValueError(f"RAFT parameter `alpha` must be in (0, 1], got {alpha}")
    if not (len(prompts) == len(samples) == len(rewards)):
        raise ValueError(f"{len(prompts)} prompts, {len(samples)} sample lists, {len(rewards)} reward lists")
    rng = random.Random(seed)
    picks = []
    for prompt, answers, scores in zip(prompts, samples, rewards):
        if len(answers) != len(scores) or not answers:
            raise ValueError(f"prompt {prompt[:40]!r}: {len(answers)} samples but {len(scores)} rewards")
        i = rng.randrange(len(answers)) if mode == "random" else max(range(len(scores)), key=scores.__getitem__)
        picks.append(Pick(prompt, answers[i], float(scores[i]), i))
    if mode == "top_alpha":
        keep = max(1, round(alpha * len(picks)))
        picks = sorted(picks, key=lambda p: p.reward, reverse=True)[:keep]
    return picks


def iteration_stats(samples: Sequence[Sequence[str]], rewards: Sequence[Sequence[float]], picks: Sequence[Pick],
                    safe_all: Sequence[Sequence[bool]] | None = None,
                    safe_picked: Sequence[bool] | None = None) -> dict[str, Any]:
    """Mean reward of all samples vs of the kept ones (and the judge's safe rate of each if given)."""
    flat = [r for row in rewards for r in row]
    out = {
        "samples": sum(len(s) for s in samples), "kept": len(picks),
        "reward_all_mean": statistics.fmean(flat) if flat else float("nan"),
        "reward_kept_mean": statistics.fmean(p.reward for p in picks) if picks else float("nan"),
    }
    if safe_all is not None and safe_picked is not None:
        every = [s for row in safe_all for s in row]
        out["safe_all"] = sum(every) / len(every) if every else float("nan")
        out["safe_kept"] = sum(safe_picked) / len(safe_picked) if safe_picked else float("nan")
    return out


def two_by_two(base_safe: Sequence[bool], picked_safe: Sequence[bool]) -> dict[str, dict[str, int]]:
    """The paper's Table 7/8 error analysis: base answer safe/unsafe x RAFT's answer safe/unsafe."""
    table = {b: {p: 0 for p in ("safe", "unsafe")} for b in ("safe", "unsafe")}
    for b, p in zip(base_safe, picked_safe):
        table["safe" if b else "unsafe"]["safe" if p else "unsafe"] += 1
    return table


def kept_safe(record: dict[str, Any]) -> dict[str, bool]:
    """One iteration's record: the judge's verdict on the answer kept for each prompt (prompt -> safe)."""
    index = {p: i for i, p in enumerate(record["prompts"])}
    return {pick["prompt"]: record["safe"][index[pick["prompt"]]][pick["index"]] for pick in record["picks"]}


def kept_vs_random(best: Sequence[dict[str, Any]], random_twin: Sequence[dict[str, Any]],
                   prompts: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per iteration: is the answer RAFT kept safer than the one its random twin kept for the same
    prompt? An exact McNemar test on the prompts both kept (only ``prompts`` if given, e.g. the harmful
    ones). In iteration 1 both choose among the very same K samples, so the test isolates the ranking."""
    rows = []
    for ours, twin in zip(best, random_twin):
        a, b = kept_safe(twin), kept_safe(ours)
        common = [p for p in b if p in a and (prompts is None or p in prompts)]
        if not common:
            continue
        test = stats.mcnemar([a[p] for p in common], [b[p] for p in common])
        rows.append({"iteration": ours["iteration"], "n": test["n"], "random kept safe": test["rate_a"],
                     "RAFT kept safe": test["rate_b"], "difference": test["diff"], "lo": test["lo"],
                     "hi": test["hi"], "p": test["p"], "RAFT's pick is": stats.verdict(test["diff"], test["p"])})
    return rows


def prompt_pool(run_dir: Any, count: int, seed: int) -> list[dict[str, Any]]:
    """RAFT's training prompts: half harmful (the SIT safety pool's requests), half benign (the SIT
    instructions), as the paper's 50% safe / 50% unsafe mix. Never an evaluation prompt: both files
    were filtered against every evaluation set in 01_data."""
    folder = Path(run_dir) / "data"
    harmful = read_rows(folder / "sit_safety_pool.jsonl")
    benign = read_rows(folder / "sit_instructions.jsonl")
    rng = random.Random(seed)
    chosen = ([("harmful", r) for r in rng.sample(harmful, min(len(harmful), count - count // 2))]
              + [("benign", r) for r in rng.sample(benign, min(len(benign), count // 2))])
    return [{"prompt": r["prompt"][0]["content"], "kind": kind} for kind, r in chosen]


def kept_file(run_dir: str | Path, stage: str) -> Path:
    """The answers RAFT iteration ``stage`` kept, one conversation per prompt: what its SFT trains on."""
    return Path(run_dir) / "raft" / f"{stage}.kept.jsonl"


def fit_iteration(cfg: Any, run_dir: str | Path, stage: str, start: str = "") -> dict[str, lora.TrainResult]:
    """RAFT's SFT step in this process: the base model with a LoRA adapter (continuing ``start``'s,
    so every saved adapter applies to the base model alone) trained on the iteration's kept answers."""
    base, tokenizer = modeling.load_model(cfg.model, offline=cfg.offline)
    return {stage: lora.train(base, tokenizer, read_rows(kept_file(run_dir, stage)), raft_settings(cfg),
                              lora.adapter_dir(run_dir, stage), model_id=cfg.model,
                              start_adapter=lora.adapter_dir(run_dir, start) if start else None)}


def run(cfg: Any, run_dir: Any, prompts: Sequence[str], reward: Any, judge: Any, mode: str = "best",
        prefix: str = "raft-it") -> list[dict[str, Any]]:
    """``cfg.raft_iterations`` rounds of sample K -> score -> keep -> LoRA-SFT; one adapter per round.

    Returns one record per iteration (statistics, the picks and every sample's reward and verdict),
    also written to ``<run>/raft/<prefix>.json``. Sampling goes through the cached batched engine, so
    a re-run, and the random baseline's first round, reuse the samples already drawn.
    """
    sampling = generation.GenerationSettings(max_new_tokens=cfg.raft_max_new_tokens,
                                             temperature=cfg.raft_temperature, top_p=0.95)
    history: list[dict[str, Any]] = []
    previous: str | None = None
    for iteration in range(1, cfg.raft_iterations + 1):
        stage = f"{prefix}{iteration}"
        policy, tok = stages.load_stage(cfg, run_dir, previous or "base")
        start = time.perf_counter()
        answer = stages.answerer(cfg, run_dir, previous or "base", policy, tok)
        samples = answer.samples(prompts, replace(sampling, seed=cfg.seed * 1000), cfg.raft_k)
        sample_seconds = time.perf_counter() - start
        flat_prompts = [p for p, row in zip(prompts, samples) for _ in row]
        flat = [s for row in samples for s in row]
        scores, verdicts = reward.score(flat_prompts, flat), judge.judge(flat_prompts, flat)
        rewards = [scores[i * cfg.raft_k:(i + 1) * cfg.raft_k] for i in range(len(prompts))]
        safe = [[v.safe for v in verdicts[i * cfg.raft_k:(i + 1) * cfg.raft_k]] for i in range(len(prompts))]
        picks = select(prompts, samples, rewards, mode=mode, alpha=cfg.raft_alpha, seed=cfg.seed + iteration)
        index = {p: i for i, p in enumerate(prompts)}
        picked_safe = [safe[index[p.prompt]][p.index] for p in picks]
        write_jsonl(kept_file(run_dir, stage), [conversation(p.prompt, p.response) for p in picks])
        result = launch.launch(cfg, run_dir, "raft", partial(fit_iteration, cfg, run_dir, stage, previous or ""),
                               name=stage, start=previous or "")[stage]
        sampled_tokens = sum(len(tok(s, add_special_tokens=False).input_ids) for s in flat)
        history.append({
            "iteration": iteration, "stage": stage, "mode": mode, "prompts": list(prompts),
            **iteration_stats(samples, rewards, picks, safe, picked_safe),
            "sample_seconds": round(sample_seconds, 1), "sampled_tokens": sampled_tokens,
            "train_seconds": result.seconds, "resumed": result.resumed,
            "picks": [asdict(p) for p in picks], "rewards": rewards, "safe": safe, "samples": samples,
        })
        previous = stage
    atomic_write_json(Path(run_dir) / "raft" / f"{prefix}.json", history)
    return history


def error_analysis(cfg: Any, run_dir: Any, pool: Sequence[dict[str, Any]], best: Sequence[dict[str, Any]],
                   judge: Any) -> dict[str, Any]:
    """The paper's Tables 7 and 8 on the harmful prompts of the pool: the base model's greedy answer
    against the answer RAFT kept in iteration 1 (did ranking pick an unsafe answer where the model
    would have refused?), and against the first RAFT model's greedy answer (did training move it?)."""
    harmful = [p["prompt"] for p in pool if p["kind"] == "harmful"]
    greedy = generation.GenerationSettings(max_new_tokens=cfg.raft_max_new_tokens)

    def answers(stage: str) -> tuple[list[str], list[bool]]:
        model, tokenizer = stages.load_stage(cfg, run_dir, stage)
        said = generation.cached_generate(model, tokenizer, harmful, greedy)
        return said, [v.safe for v in judge.judge(harmful, said)]

    base_answers, base_safe = answers("base")
    first = best[0]
    kept = kept_safe(first)
    with_kept = [(b, kept[p]) for p, b in zip(harmful, base_safe) if p in kept]
    trained_answers, trained_safe = answers(first["stage"])
    return {"kept": two_by_two([b for b, _ in with_kept], [k for _, k in with_kept]),
            "trained": two_by_two(base_safe, trained_safe),
            "examples": [{"prompt": p, "base": b, first["stage"]: t}
                         for p, b, t in zip(harmful, base_answers, trained_answers)]}
