"""Batched, cached generation for chat prompts.

On 2 CPU cores generation is bound by per-token Python overhead, so prompts are batched (left
padding, sorted by length so a batch wastes little padding): several times the throughput of a
per-prompt loop. Answers are cached on disk under a key that hashes the model's weights (adapters
included), the prompt and the generation settings, so re-running an unchanged stage costs nothing and
changing any weight invalidates exactly what it should.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import assets
from .io import atomic_write_json
from .modeling import format_chat
from .progress import progress


@dataclass(frozen=True)
class GenerationSettings:
    """Everything besides model and prompt that changes an answer (part of the cache key)."""

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

    ``settings`` are ``continue_texts``'s (max_new_tokens, batch_size, temperature, top_p, seed).
    Returns the answers in the order of ``prompts``, without the prompt and special tokens.
    """
    return continue_texts(model, tokenizer, [format_chat(tokenizer, p) for p in prompts], **settings)


def continue_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """The batched engine on already formatted texts (a chat turn, or a guard model's task prompt)."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(tokenizer(texts[i]).input_ids))
    answers: list[str] = [""] * len(texts)
    sampling = temperature > 0
    generator_kwargs: dict[str, Any] = {"do_sample": sampling}
    if sampling:
        generator_kwargs.update(temperature=temperature, top_p=top_p)
        torch.manual_seed(seed)
    starts = range(0, len(order), batch_size)
    for start in progress(starts, total=len(starts), desc=f"generating {len(texts)} answers, batches"):
        idx = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                          add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                **generator_kwargs,
            )
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        for i, text in zip(idx, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            answers[i] = text.strip()
    return answers


def cached_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    settings: GenerationSettings = GenerationSettings(),
    batch_size: int = 8,
    cache_dir: Path | None = None,
) -> list[str]:
    """``generate`` through the on-disk cache: only prompts never answered by these weights run."""
    store = Path(cache_dir or default_cache_dir()) / model_fingerprint(model) / f"{settings.key()}.json"
    cached: dict[str, str] = json.loads(store.read_text()) if store.exists() else {}
    keys = [prompt_key(format_chat(tokenizer, p)) for p in prompts]
    missing = sorted({k: p for k, p in zip(keys, prompts) if k not in cached}.items())
    if missing:
        answers = generate(model, tokenizer, [p for _, p in missing], batch_size=batch_size,
                           **asdict(settings))
        cached.update({k: a for (k, _), a in zip(missing, answers)})
        atomic_write_json(store, cached)
    return [cached[k] for k in keys]
