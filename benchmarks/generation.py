"""Generation speed, side by side in one run, against the CPU's own measured ceiling.

    .venv/bin/python benchmarks/generation.py [--prompts 64] [--max-new-tokens 64] [--bf16] [--ctranslate2]

Every path answers the same prompts greedily (the project's own harmful, borderline and helpful
evaluation prompts, a fixed sample):

- the naive per-prompt ``generate`` loop (what a first notebook does);
- the reference engine: batches of 16 through ``generate``'s default dynamic KV cache;
- the workbook's engine: length-sorted batches under a token budget with a static KV cache;
- optional candidates: the same engine on a bfloat16 copy of the weights (``--bf16``), CTranslate2
  float32 and int8 on a converted copy (``--ctranslate2``, needs ``pip install ctranslate2``), and
  transformers' continuous batching, ``generate_batch`` (``--continuous``).

For each: tokens/s, the ratio to the naive loop, and the share of the compute ceiling it reaches
(FLOPs actually needed: 2 x non-embedding parameters per prompt token, 2 x all parameters per
generated token; the ceiling is the fp32 matmul rate of this machine, measured in this run). Each
candidate's answers are compared with the reference: the share of identical answers and of identical
verdicts (the workbook's default judge). A path that changes verdicts may not be the default.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections.abc import Callable

import torch

from safeserve_utils import config, data, generation, modeling, system
from safeserve_utils.evaluation import judges


def naive(lm, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """One ``generate`` call per prompt."""
    answers = []
    for prompt in prompts:
        batch = tokenizer(modeling.format_chat(tokenizer, prompt), return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = lm.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return answers


def ctranslate2_paths(lm, tokenizer, folder: str) -> dict[str, Callable[[list[str], int], list[str]]]:
    """CTranslate2 float32 and int8 generators on a converted copy of ``lm`` (written to ``folder``)."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    lm.save_pretrained(f"{folder}/hf", safe_serialization=True)
    tokenizer.save_pretrained(f"{folder}/hf")
    TransformersConverter(f"{folder}/hf").convert(f"{folder}/ct2", force=True)

    def path(compute_type: str) -> Callable[[list[str], int], list[str]]:
        generator = ctranslate2.Generator(f"{folder}/ct2", device="cpu", compute_type=compute_type,
                                          intra_threads=torch.get_num_threads())

        def answer(prompts: list[str], max_new_tokens: int) -> list[str]:
            starts = [tokenizer.convert_ids_to_tokens(tokenizer(modeling.format_chat(tokenizer, p),
                                                                add_special_tokens=False).input_ids) for p in prompts]
            results = generator.generate_batch(starts, max_batch_size=generation.MAX_ROWS, max_length=max_new_tokens,
                                               sampling_topk=1, include_prompt_in_result=False,
                                               end_token=tokenizer.eos_token)
            return [tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in results]
        return answer

    return {"CTranslate2 float32": path("float32"), "CTranslate2 int8": path("int8")}


def continuous(lm, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy answers through transformers' continuous batching (a paged KV cache; a finished
    answer's slot goes to the next prompt), on the model's own SDPA attention (no flash kernels on CPU)."""
    from transformers.generation import ContinuousBatchingConfig, GenerationConfig

    ids = [tokenizer(modeling.format_chat(tokenizer, p), add_special_tokens=False).input_ids for p in prompts]
    greedy = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    out = lm.generate_batch(ids, generation_config=greedy, progress_bar=False,
                            continuous_batching_config=ContinuousBatchingConfig(auto_switch_to_flash=False))
    return [tokenizer.decode(r.generated_tokens, skip_special_tokens=True).strip() for r in out.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--bf16", action="store_true", help="also measure the engine on a bfloat16 copy")
    parser.add_argument("--ctranslate2", action="store_true", help="also measure CTranslate2 (if installed)")
    parser.add_argument("--continuous", action="store_true", help="also measure transformers' continuous batching")
    args = parser.parse_args()

    cfg = config.resolve("tiny")
    config.apply_runtime(cfg)
    lm, tokenizer = modeling.load_model(cfg.model)
    rows = data.load_project("eval_harmful") + data.load_project("eval_borderline") + data.load_project("eval_helpful")
    prompts = [r["prompt"] for r in data.sample(rows, args.prompts, seed=0)]
    n = args.max_new_tokens

    def engine(model, name: str) -> Callable[[list[str], int], list[str]]:
        return lambda ps, k: generation.generate(model, tokenizer, ps, max_new_tokens=k, engine=name)

    paths: dict[str, Callable[[list[str], int], list[str]]] = {
        "naive per-prompt loop": lambda ps, k: naive(lm, tokenizer, ps, k),
        "reference (batches of 16, dynamic cache)": engine(lm, "reference"),
        "workbook engine (static cache, token budget)": engine(lm, "static"),
    }
    if args.bf16:
        paths["workbook engine, bfloat16 weights"] = engine(copy.deepcopy(lm).to(torch.bfloat16), "static")
    if args.continuous:
        paths["continuous batching (generate_batch)"] = lambda ps, k: continuous(lm, tokenizer, ps, k)
    folder = tempfile.TemporaryDirectory()
    if args.ctranslate2:
        paths.update(ctranslate2_paths(lm, tokenizer, folder.name))

    gflops = system.matmul_gflops()
    params = sum(p.numel() for p in lm.parameters())
    embedding = lm.get_input_embeddings().weight.numel()
    prompt_tokens = sum(len(tokenizer(modeling.format_chat(tokenizer, p), add_special_tokens=False).input_ids)
                        for p in prompts)
    judge = judges.default_judge()
    for answer in paths.values():
        answer(prompts[:2], 4)  # warm-up: first-call allocations, thread pools
    results, reference = {}, None
    for name, answer in paths.items():
        start = time.perf_counter()
        answers = answer(prompts, n)
        seconds = time.perf_counter() - start
        generated = sum(len(tokenizer(a, add_special_tokens=False).input_ids) + 1 for a in answers)  # + end token
        flops = prompt_tokens * 2 * (params - embedding) + generated * 2 * params
        labels = [v.label for v in judge.judge(prompts, answers)]
        if name.startswith("reference"):
            reference = (answers, labels)
        results[name] = (seconds, generated, flops, answers, labels)

    print(f"{len(prompts)} prompts, greedy, up to {n} new tokens, {torch.get_num_threads()} threads; "
          f"fp32 matmul measured at {gflops:.0f} GFLOP/s = a ceiling of {gflops * 1e9 / (2 * params):.0f} "
          f"generated tokens/s for {params / 1e6:.0f}M parameters")
    print(f"  {'path':46s} {'seconds':>8s} {'tokens/s':>9s} {'x naive':>8s} {'ceiling':>8s} "
          f"{'same answer':>12s} {'same verdict':>13s}")
    naive_rate = None
    for name, (seconds, generated, flops, answers, labels) in results.items():
        rate = generated / seconds
        naive_rate = naive_rate or rate
        same = sum(a == b for a, b in zip(answers, reference[0])) / len(answers)
        same_verdict = sum(a == b for a, b in zip(labels, reference[1])) / len(labels)
        print(f"  {name:46s} {seconds:8.1f} {rate:9.1f} {rate / naive_rate:8.1f} {flops / seconds / 1e9 / gflops:8.0%} "
              f"{same:12.0%} {same_verdict:13.0%}")
    folder.cleanup()


if __name__ == "__main__":
    main()
