"""Training speed, measured side by side in one run: the workbook's CPU configuration against TRL's
defaults (bf16 autocast and gradient checkpointing, which TRL 1.16 turns on even on a CPU), and each
of the two on its own, so the cost of each is visible.

    .venv/bin/python benchmarks/training.py [--method sft|dpo] [--rows 16] [--batch-size 4]

Both train the same LoRA adapter on the same rows from the project's SIT data (or preference pairs)
for one epoch; prints seconds, training tokens/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from safeserve_utils import config, data, modeling, training

VARIANTS = {
    "workbook (fp32, no checkpointing)": {},
    "bf16 autocast only": {"bf16": True},
    "gradient checkpointing only": {"gradient_checkpointing": True},
    "TRL defaults (bf16, checkpointing)": {"bf16": True, "gradient_checkpointing": True},
}


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
    settings = (training.sit_settings(cfg, 0) if args.method == "sft" else training.dpo_settings(cfg))
    settings = training.TrainSettings(**{**settings.__dict__, "batch_size": args.batch_size, "epochs": 1})
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for number, (name, overrides) in enumerate(VARIANTS.items()):
            results[name] = training.train(lm, tokenizer, rows, settings, Path(tmp) / str(number), arguments=overrides)
    ours = results["workbook (fp32, no checkpointing)"].tokens_per_second
    print(f"{args.method}: {len(rows)} rows, batch {args.batch_size}, one epoch")
    for name, result in results.items():
        print(f"  {name:38s} {result.seconds:7.1f} s  {result.tokens_per_second:7.1f} tokens/s  "
              f"workbook is x{ours / result.tokens_per_second:.1f} faster")


if __name__ == "__main__":
    main()
