"""Batched generation for chat prompts.

On 2 CPU cores generation is bound by per-token Python overhead, so prompts are batched (left
padding, sorted by length so a batch wastes little padding): about 4x the throughput of a per-prompt
loop for SmolLM2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .modeling import format_chat


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Answer each user prompt; greedy when ``temperature`` is 0, sampled otherwise.

    Returns the answers in the order of ``prompts``, without the prompt and special tokens.
    """
    import torch

    texts = [format_chat(tokenizer, p) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(tokenizer(texts[i]).input_ids))
    answers: list[str] = [""] * len(texts)
    sampling = temperature > 0
    generator_kwargs: dict[str, Any] = {"do_sample": sampling}
    if sampling:
        generator_kwargs.update(temperature=temperature, top_p=top_p)
        torch.manual_seed(seed)
    for start in range(0, len(order), batch_size):
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
