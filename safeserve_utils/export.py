"""Take a trained stage out of the workbook: one folder that loads without PEFT or this package.

``export_stage`` merges the stage's LoRA adapter (and the stage it was trained on top of) into the base
model and writes plain fp32 safetensors, the tokenizer with its chat template, and a model card: what
the stage was trained on, its row of the run's scorecard, and its limits. The folder is written under a
temporary name and renamed when complete, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from . import config
from .evaluation import scorecard
from .io import read_json
from .train import lora, stages

CARD = "README.md"


class ExportError(config.ConfigError):
    """A stage that cannot be exported, or a destination that would be overwritten."""


def export_stage(run_dir: str | Path, stage: str, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``stage`` of the run in ``run_dir`` as a standalone model folder at ``out``."""
    run_dir, out = Path(run_dir), Path(out).resolve()
    cfg = config.load_run_config(run_dir)
    trained = [s for s in stages.stages(run_dir, cfg) if s != "base"]
    if stage not in trained:
        raise ExportError(f"stage {stage!r}: {run_dir} has trained {', '.join(trained) or 'no stage yet'}; "
                          "`base` is the model as shipped and is not exported")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists: choose another folder or pass --overwrite")
    model, tokenizer = stages.load_stage(cfg, run_dir, stage)
    partial = out.parent / f".{out.name}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    (partial / CARD).write_text(model_card(cfg, run_dir, stage))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out


def model_card(cfg: config.Profile, run_dir: Path, stage: str) -> str:
    """The card's text: provenance, the training record, the scorecard row, limits and licences."""
    record = lora.read_training_record(lora.adapter_dir(run_dir, stage)) or {}
    chain = []
    below: str | None = stage
    while below and below != "base":
        chain.append(below)
        below = (lora.read_training_record(lora.adapter_dir(run_dir, below)) or {}).get("on_top_of")
    lines = [
        f"# SafeServe `{stage}` of {cfg.model}",
        "",
        f"A stage of the SafeServe workbook (profile `{cfg.name}`, run `{run_dir.name}`): the base model "
        f"with {' then '.join(reversed(chain))} merged in, saved as plain safetensors. It loads with "
        "`AutoModelForCausalLM.from_pretrained(folder)`; no adapter library is needed.",
        "",
        "## Training",
        "",
        f"- method `{record.get('settings', {}).get('method', '?')}`, {record.get('examples', '?')} examples, "
        f"{record.get('tokens', '?')} tokens, {record.get('seconds', '?')} s on {record.get('processes', 1)} "
        "process(es)",
        f"- settings: `{json.dumps(record.get('settings', {}), sort_keys=True)}`",
        "",
        "## Scorecard",
        "",
        *_scorecard_rows(run_dir, stage),
        "",
        "## Limits",
        "",
        "- A teaching artefact: the rates above are one run's, on the workbook's prompt sets, judged by an "
        "automatic judge with its own error rate (the run's `results/results.md` says which and how good).",
        "- Safety training moves a trade-off: a model that refuses more harmful requests may also refuse "
        "safe ones; read the over-refusal and helpful-answer rows beside the safe rate.",
        "- Not evaluated against adaptive jailbreaks, long conversations or languages other than English.",
        "",
        "## Licences",
        "",
        "The weights inherit the base model's licence. Data written by the SafeServe project is Apache-2.0; "
        "a run on the paper's sources (PKU-SafeRLHF, Alpaca: CC BY-NC 4.0) is for non-commercial use.",
        "",
    ]
    return "\n".join(lines)


def _scorecard_rows(run_dir: Path, stage: str) -> list[str]:
    results: dict[str, Any] | None = read_json(run_dir / scorecard.RESULTS_DIR / "results.json")
    rows = [r for r in (results or {}).get("headline", []) if r.get("stage") == stage]
    if not rows:
        return ["Not evaluated yet: run `06_evaluation` on this run, then export again."]
    out = [f"Judge: {results.get('judge', '?')}; 95% intervals bootstrapped over prompts.", "",
           "| measure | value | 95% interval | n |", "|---|---|---|---|"]
    for r in rows:
        shown = "{:.2f}" if r["measure"].startswith("reward") else "{:.0%}"  # a median, or a rate
        out.append(f"| {r['measure']} | {shown.format(r['value'])} | {shown.format(r['lo'])} – "
                   f"{shown.format(r['hi'])} | {r['n']} |")
    return out
