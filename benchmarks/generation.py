"""Generation speed, measured side by side in one run: a naive per-prompt ``generate`` loop against
the workbook's batched engine (left padding, length-sorted batches), and a cache hit.

    .venv/bin/python benchmarks/generation.py [--prompts 32] [--max-new-tokens 48] [--batch-size 16]

Prints tokens/s of each and the ratios. Both paths produce greedy answers to the same prompts; the
token count is the number of answer tokens each actually generated.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from safeserve_utils import config, data, generation, modeling


def naive(lm, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """What a first notebook does: one ``generate`` call per prompt."""
    answers = []
    for prompt in prompts:
        batch = tokenizer(modeling.format_chat(tokenizer, prompt), return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = lm.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True))
    return answers


def count_tokens(tokenizer, answers: list[str]) -> int:
    return sum(len(tokenizer(a, add_special_tokens=False).input_ids) + 1 for a in answers)  # + end token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    cfg = config.resolve("tiny")
    config.apply_runtime(cfg)
    lm, tokenizer = modeling.load_model(cfg.model)
    rows = data.load_project("eval_helpful") + data.load_project("eval_harmful")
    prompts = [r["prompt"] for r in data.sample(rows, args.prompts, seed=0)]
    generation.generate(lm, tokenizer, prompts[:2], max_new_tokens=4)  # warm-up

    results = {}
    start = time.perf_counter()
    answers = naive(lm, tokenizer, prompts, args.max_new_tokens)
    results["naive per-prompt loop"] = (time.perf_counter() - start, count_tokens(tokenizer, answers))

    settings = generation.GenerationSettings(max_new_tokens=args.max_new_tokens)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        answers = generation.cached_generate(lm, tokenizer, prompts, settings, args.batch_size, cache)
        results[f"batched (batch {args.batch_size}), cold cache"] = (time.perf_counter() - start,
                                                                      count_tokens(tokenizer, answers))
        start = time.perf_counter()
        answers = generation.cached_generate(lm, tokenizer, prompts, settings, args.batch_size, cache)
        results["cache hit"] = (time.perf_counter() - start, count_tokens(tokenizer, answers))

    print(f"{len(prompts)} prompts, greedy, max_new_tokens={args.max_new_tokens}, "
          f"{torch.get_num_threads()} threads")
    base = None
    for name, (seconds, tokens) in results.items():
        rate = tokens / seconds
        base = base or rate
        print(f"  {name:36s} {seconds:7.1f} s  {rate:8.1f} tokens/s  x{rate / base:6.1f}")


if __name__ == "__main__":
    main()
