"""Answer a SafeServe requests file with vLLM (run inside the vLLM environment, on GPUs).

    python scripts/vllm_answer.py --model MODEL --requests requests.jsonl --answers answers.jsonl \
        [--tensor-parallel-size 1] [--max-lora-rank 16]

The contract is the workbook's (``safeserve_utils/answer_files.py``): each request carries a prompt
already formatted with the model's chat template, its sampling settings, ``n`` (answers wanted, e.g.
RAFT's K) and an optional LoRA folder. Requests that share settings and adapter go to vLLM in one
``generate`` call; the workbook checks the answers file when it reads it back. This file imports only
vLLM and the standard library, so the vLLM environment does not need the workbook's pins. To shard
prompts over GPUs, split the requests file and run one process per GPU (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from itertools import groupby
from typing import Any


def read_requests(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plan(requests: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str | None, list[dict[str, Any]]]]:
    """Groups of requests answered by one call: (SamplingParams keywords, adapter folder, requests)."""
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return r["max_new_tokens"], r["temperature"], r["top_p"], r["seed"], r["n"], r["adapter"] or ""

    groups = []
    for (max_new, temperature, top_p, seed, n, adapter), rows in groupby(sorted(requests, key=key), key=key):
        sampling = {"n": n, "max_tokens": max_new, "temperature": temperature, "top_p": top_p, "seed": seed}
        groups.append((sampling, adapter or None, list(rows)))
    return groups


def answer(requests: list[dict[str, Any]], generate: Callable[[list[str], dict[str, Any], str | None], list[list[str]]]
           ) -> dict[str, list[str]]:
    """``generate(prompts, sampling, adapter) -> n texts per prompt`` over every group of ``plan``."""
    out: dict[str, list[str]] = {}
    for sampling, adapter, rows in plan(requests):
        for row, texts in zip(rows, generate([r["text"] for r in rows], sampling, adapter)):
            out[row["id"]] = [t.strip() for t in texts]
    return out


def vllm_generate(model: str, tensor_parallel_size: int, max_lora_rank: int
                  ) -> Callable[[list[str], dict[str, Any], str | None], list[list[str]]]:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(model=model, enable_lora=True, max_lora_rank=max_lora_rank, tensor_parallel_size=tensor_parallel_size)
    adapters: dict[str, int] = {}

    def generate(prompts: list[str], sampling: dict[str, Any], adapter: str | None) -> list[list[str]]:
        lora = None
        if adapter:
            adapters.setdefault(adapter, len(adapters) + 1)
            lora = LoRARequest(os.path.basename(adapter.rstrip("/")), adapters[adapter], adapter)
        outputs = llm.generate(prompts, SamplingParams(**sampling), lora_request=lora)
        return [[o.text for o in request.outputs] for request in outputs]

    return generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the base model (hub id or folder) the requests were built for")
    parser.add_argument("--requests", required=True)
    parser.add_argument("--answers", required=True)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--max-lora-rank", type=int, default=16)
    args = parser.parse_args(argv)
    answers = answer(read_requests(args.requests), vllm_generate(args.model, args.tensor_parallel_size,
                                                                 args.max_lora_rank))
    partial = args.answers + ".tmp"
    with open(partial, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"id": i, "texts": t}) + "\n" for i, t in answers.items())
    os.replace(partial, args.answers)


if __name__ == "__main__":
    main()
