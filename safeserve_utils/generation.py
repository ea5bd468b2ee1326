"""One function for answers (``cached_generate``), with the engine behind it chosen by measurement.

On a 2-core CPU a 135M model's decoding is bound by memory traffic and per-step overhead, not by
arithmetic: a per-prompt loop re-reads every weight for each token of each prompt. The engine
therefore answers many prompts per step:

- prompts are sorted by length and packed into batches under a token budget (little padding, big
  matrix products: a 128-row product runs near the CPU's measured matmul rate, a 16-row one at half);
- the KV cache is *static* (allocated once per batch), which removes the per-step concatenations
  of a growing cache. On the workbook's CPU this is the fastest exact path that was measured
  (``benchmarks/generation.py`` prints the comparison; the README records it);
- everything stays fp32, so the answers are identical to plain ``model.generate`` (the ``reference``
  engine, kept for comparison and tested to agree token for token).

Answers are cached on disk under a key that hashes the model's weights (adapters merged in), the
prompt and the generation settings, so re-running an unchanged stage costs nothing and changing any
weight invalidates exactly what it should.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import assets
from .io import atomic_write_json, read_json
from .modeling import format_chat
from .progress import progress

#: ``static``: big length-sorted batches with a static KV cache (the default); ``reference``: batches
#: of 16 through ``generate``'s default dynamic cache, the path every faster engine is checked against.
ENGINES = ("static", "reference")
#: Padded tokens (rows x (longest prompt + new tokens)) per batch of the static engine: 128 typical
#: prompts of ~60 tokens with 64 new ones. Bigger batches measured no faster on 2 cores.
TOKEN_BUDGET = 16384
MAX_ROWS = 128
REFERENCE_BATCH = 16


@dataclass(frozen=True)
class GenerationSettings:
    """Everything besides model and prompt that changes an answer (part of the cache key).

    The engine is not part of the key: every engine must give the same answers (a test checks it).
    """

    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def model_fingerprint(model: Any) -> str:
    """Digest of every parameter and buffer (names, dtypes, values): adapters and merges change it."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tensor.dtype).encode())
            digest.update(tensor.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def prompt_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def default_cache_dir() -> Path:
    return assets.cache_dir() / "generations"


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], **settings: Any) -> list[str]:
    """Answer each user prompt (uncached); greedy when ``temperature`` is 0, sampled otherwise.

    ``settings`` are ``continue_texts``'s (max_new_tokens, temperature, top_p, seed, engine).
    Returns the answers in the order of ``prompts``, without the prompt and special tokens.
    """
    return continue_texts(model, tokenizer, [format_chat(tokenizer, p) for p in prompts], **settings)


def batches(lengths: Sequence[int], max_new_tokens: int, engine: str = "static") -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, shortest prompts first.

    The static engine fills a batch until it holds ``MAX_ROWS`` rows or its padded size (rows times
    the longest prompt plus the new tokens) would pass ``TOKEN_BUDGET``; the reference engine takes
    fixed batches of ``REFERENCE_BATCH``.
    """
    if engine not in ENGINES:
        raise ValueError(f"generation engine {engine!r}: expected one of {', '.join(ENGINES)}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if engine == "reference":
        return [order[i:i + REFERENCE_BATCH] for i in range(0, len(order), REFERENCE_BATCH)]
    out: list[list[int]] = []
    for i in order:
        width = lengths[i] + max_new_tokens  # sorted: the newest row is the longest
        if out and len(out[-1]) < MAX_ROWS and (len(out[-1]) + 1) * width <= TOKEN_BUDGET:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def continue_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    engine: str = "static",
) -> list[str]:
    """The batched engine on already formatted texts (a chat turn, or a guard model's task prompt)."""
    import torch

    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False).input_ids]
    groups = batches(lengths, max_new_tokens, engine)
    answers: list[str] = [""] * len(texts)
    sampling = temperature > 0
    kwargs: dict[str, Any] = {"do_sample": sampling}
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p)
        torch.manual_seed(seed)
    if engine == "static":
        kwargs["cache_implementation"] = "static"
    for idx in progress(groups, total=len(groups), desc=f"generating {len(texts)} answers, batches"):
        batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 **kwargs)
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        for i, text in zip(idx, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            answers[i] = text.strip()
    return answers


def cached_rounds(tokenizer: Any, prompts: Sequence[str], rounds: Sequence[GenerationSettings], fingerprint: str,
                  answer_n: Callable[[list[str]], list[list[str]]], cache_dir: Path | None = None) -> list[list[str]]:
    """One answer per prompt and round through the on-disk cache, which every run shares (a damaged file
    is moved aside): ``answer_n(texts)`` is called once, for the chat-formatted prompts missing from any
    round, and gives each of them one answer per round (for several rounds, another engine's n samples
    of a prompt, e.g. vLLM's ``SamplingParams(n=K)``: the j-th is kept under ``rounds[j]``). An answer
    already cached is never replaced."""
    stores = [Path(cache_dir or default_cache_dir()) / fingerprint / f"{settings.key()}.json" for settings in rounds]
    cached: list[dict[str, str]] = [read_json(store) or {} for store in stores]
    formatted = [format_chat(tokenizer, p) for p in prompts]
    keys = [prompt_key(t) for t in formatted]
    texts = dict(zip(keys, formatted))
    missing = sorted(key for key in texts if any(key not in c for c in cached))
    if missing:
        drawn = answer_n([texts[key] for key in missing])
        for j, (store, c) in enumerate(zip(stores, cached)):
            for key, answers in zip(missing, drawn):
                c.setdefault(key, answers[j])
            atomic_write_json(store, c)
    return [[c[key] for c in cached] for key in keys]


def cached_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    settings: GenerationSettings = GenerationSettings(),
    cache_dir: Path | None = None,
    engine: str = "static",
    fingerprint: str | None = None,
    answer: Callable[[list[str]], list[str]] | None = None,
) -> list[str]:
    """``generate`` through the on-disk cache: only prompts never answered by these weights run.

    ``fingerprint`` is ``model_fingerprint(model)`` when the caller already has it (hashing 135M
    parameters takes about a second, and an evaluation calls this once per set). ``answer``, given the
    missing prompts as chat-formatted texts, stands in for this process's engine when another one
    answers (``engines``; its fingerprint then names that engine too).
    """
    def answer_one(texts: list[str]) -> list[list[str]]:
        answers = answer(texts) if answer else continue_texts(model, tokenizer, texts, engine=engine, **asdict(settings))
        return [[a] for a in answers]

    rounds = cached_rounds(tokenizer, prompts, [settings], fingerprint or model_fingerprint(model), answer_one, cache_dir)
    return [only for only, in rounds]
