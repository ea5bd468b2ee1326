"""Training speed, measured side by side in one run, against the CPU's own measured ceiling: the
workbook's CPU configuration (the `tiny` profile's: bf16 autocast, no gradient checkpointing, LoRA on
every linear layer), fp32, fp32 with checkpointing, TRL's defaults (bf16 autocast and gradient
checkpointing, which TRL 1.16 turns on even on a CPU), and LoRA on the last 8 of 30 layers only
(`lora_layers`, so the backward pass stops early).

    .venv/bin/python benchmarks/training.py [--method sft|dpo] [--rows 16] [--batch-size 4]

Every variant trains a LoRA adapter on the same rows from the project's SIT data (or preference
pairs) for one epoch. Printed for each: seconds, training tokens/s, the workbook's speed over it, and
the share of the ceiling it reaches. The ceiling is the fp32 matmul rate measured in this run at a
training batch's shape, divided by ~4 x parameters FLOPs per token (forward 2x, backward through the
activations 2x; a LoRA adapter adds no weight gradients of note; full fine-tuning would be 6x). DPO's
tokens count the chosen and the rejected sequence; its reference pass is precomputed and not counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from safeserve_utils import config, data, modeling, system, train

#: name -> (trainer argument overrides, training-setting overrides)
WORKBOOK = "workbook (bf16 autocast, no checkpointing)"
VARIANTS = {
    WORKBOOK: ({}, {"bf16": True}),
    "fp32 (train_bf16=false)": ({}, {"bf16": False}),
    "gradient checkpointing, fp32": ({"gradient_checkpointing": True}, {"bf16": False}),
    "TRL defaults (bf16, checkpointing)": ({"gradient_checkpointing": True}, {"bf16": True}),
    "LoRA on the last 8 layers, bf16": ({}, {"bf16": True, "lora_layers": 8}),
}
#: FLOPs per trained token as a multiple of the parameter count (LoRA: forward + activation gradients).
LORA_FLOPS_PER_PARAMETER = 4


def rows_for(method: str, count: int) -> list[dict]:
    if method == "sft":
        return [data.conversation(r["prompt"], r["response"]) for r in data.load_project("safety_demos")[:count]]
    harmful = data.load_project("safety_demos")[:count]
    return [data.to_dpo(data.preference_pair(r, r["response"], "Sure! Here is what you asked for.")) for r in harmful]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=("sft", "dpo"), default="sft")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    cfg = config.resolve("tiny")
    config.apply_runtime(cfg)
    lm, tokenizer = modeling.load_model(cfg.model)
    rows = rows_for(args.method, args.rows)
    settings = (train.sit_settings(cfg, 0) if args.method == "sft" else train.dpo_settings(cfg))
    settings = dataclasses.replace(settings, batch_size=args.batch_size, epochs=1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for number, (name, (arguments, changes)) in enumerate(VARIANTS.items()):
            results[name] = train.train(lm, tokenizer, rows, dataclasses.replace(settings, **changes),
                                        Path(tmp) / str(number), arguments=arguments)
    gflops = system.matmul_gflops(rows=args.batch_size * 128)
    params = sum(p.numel() for p in lm.parameters())
    ceiling = gflops * 1e9 / (LORA_FLOPS_PER_PARAMETER * params)
    ours = results[WORKBOOK].tokens_per_second
    print(f"{args.method}: {len(rows)} rows, batch {args.batch_size}, one epoch; fp32 matmul measured at "
          f"{gflops:.0f} GFLOP/s = a ceiling of {ceiling:.0f} trained tokens/s for {params / 1e6:.0f}M parameters")
    for name, result in results.items():
        print(f"  {name:38s} {result.seconds:7.1f} s  {result.tokens_per_second:7.1f} tokens/s  "
              f"workbook x{ours / result.tokens_per_second:.2f}  {result.tokens_per_second / ceiling:4.0%} of ceiling")


if __name__ == "__main__":
    main()
