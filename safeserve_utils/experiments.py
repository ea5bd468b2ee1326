"""Recipes tried on the dev split: train one stage's adapter with a profile's settings, score it on
the dev split, log the try.

Defaults are chosen here, on training prompts held back by ``dev_per_kind``, never on the evaluation
sets. One run directory holds one data recipe (its ``data/`` is built once, as ``01_data`` builds
it); every try in it trains into ``<run>/experiments/<name>/`` and is appended to
``<run>/experiments/log.jsonl`` with its settings, dev-split rates, minutes and the DPO diagnostics,
so failures are kept beside successes. ``docs/experiments.md`` is where the tries are written up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import config, generation, modeling, params
from .data.build import build_run_data
from .evaluation import report, scorecard, select
from .io import atomic_write_text
from .train import dpo, lora, sit

EXPERIMENTS = "experiments"
LOG_FILE = "log.jsonl"
#: Each method's notebook: its parameters cell lists the settings a try of that method records.
#: ``base`` trains nothing: it scores the starting model, the line every try is read against.
NOTEBOOKS = {"base": "00_setup.ipynb", "sit": "02_sit.ipynb", "dpo": "05_dpo.ipynb"}
def declared(notebook: str) -> list[str]:
    return [p for p in params.declared(params.notebook_path(notebook)) if p not in params.CHAIN_PARAMETERS]


def data_parameters() -> list[str]:
    """The parameters that shape a run's ``data/``: those ``01_data`` declares, but ``n_safety``, which
    shapes only ``sit_mix.jsonl`` (a SIT try builds its own mix from the run's safety pool)."""
    return [p for p in declared("01_data.ipynb") if p != "n_safety"]


def ensure_data(cfg: config.Profile, run_dir: Path, model: Any, tokenizer: Any, judge: Any) -> dict[str, Any]:
    """The run's data, built once (as ``01_data`` builds it) and refused if a data parameter changed."""
    manifest = run_dir / "data" / "manifest.json"
    built = run_dir / EXPERIMENTS / "data_parameters.json"
    wanted = {p: getattr(cfg, p) for p in data_parameters()}
    if manifest.exists() and built.exists():
        recorded = json.loads(built.read_text())
        changed = sorted(p for p in wanted if recorded.get(p) != wanted[p])
        if changed:
            raise config.ConfigError(f"{run_dir}: its data was built with other {', '.join(changed)} "
                                     f"({', '.join(f'{p}={recorded.get(p)!r}' for p in changed)}); "
                                     "one run directory holds one data recipe: use another --run-dir")
        return json.loads(manifest.read_text())
    settings = generation.GenerationSettings(max_new_tokens=cfg.max_new_tokens)
    result = build_run_data(cfg, run_dir,
                            lambda prompts: generation.cached_generate(model, tokenizer, prompts, settings),
                            judge)
    atomic_write_text(built, json.dumps(wanted, indent=2) + "\n")
    return result


def training_rows(cfg: config.Profile, run_dir: Path, method: str, start_id: str
                  ) -> tuple[list[dict[str, Any]], lora.TrainSettings]:
    """SIT: the run's instructions plus ``n_safety`` demos; DPO: the run's preference pairs (made on-policy
    for the model ``start_id`` when ``dpo_on_policy`` is set)."""
    if method == "sit":
        return sit.sit_mixes(run_dir, [cfg.n_safety], cfg.seed)[cfg.n_safety], sit.sit_settings(cfg, cfg.n_safety)
    return dpo.training_pairs(cfg, run_dir, start_id), dpo.dpo_settings(cfg)


def merged(model: Any, adapter: Path) -> Any:
    """``model`` with a try's adapter merged in; a try that was never trained is a clear error."""
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter}: no adapter_config.json; train the try named {adapter.name!r} first")
    return modeling.merge_adapter(model, adapter)


def append_log(run_dir: Path, record: dict[str, Any]) -> Path:
    """Add one try to ``<run>/experiments/log.jsonl`` (rewritten atomically, so a crash loses no line)."""
    path = run_dir / EXPERIMENTS / LOG_FILE
    before = path.read_text() if path.exists() else ""
    return atomic_write_text(path, before + json.dumps(record, default=str) + "\n")


def run_recipe(cfg: config.Profile, run_dir: str | Path, method: str, name: str, start: str | None = None,
               note: str = "") -> dict[str, Any]:
    """Train one try of ``method`` under ``cfg``, score it on the dev split, log it, return the record.

    ``start`` trains on top of an earlier try merged into the base model (e.g. DPO from a SIT try), so
    that try is also DPO's reference model. A re-run with the same settings and data reuses the adapter.
    """
    if method not in NOTEBOOKS:
        raise config.ConfigError(f"method {method!r}: choose one of {', '.join(NOTEBOOKS)}")
    run_dir = Path(run_dir)
    if cfg.dev_per_kind <= 0:
        raise config.ConfigError("parameter `dev_per_kind` is 0: a try is scored on the dev split, so give it "
                                 "prompts, e.g. -p dev_per_kind=40")
    config.apply_runtime(cfg)
    judge = select.make_judge(cfg)
    model, tokenizer = modeling.load_model(cfg.model, offline=cfg.offline)
    ensure_data(cfg, run_dir, model, tokenizer, judge)
    origin = cfg.model
    if start:
        model = merged(model, run_dir / EXPERIMENTS / start)
        origin = lora.stacked_id(origin, run_dir / EXPERIMENTS / start)
    clock = time.perf_counter()
    record: dict[str, Any] = {
        "name": name, "method": method, "start": start, "note": note,
        "settings": {p: getattr(cfg, p) for p in dict.fromkeys([*declared("01_data.ipynb"), *declared(NOTEBOOKS[method])])},
    }
    if method == "dpo" and cfg.dpo_on_policy:
        record["on_policy"] = dpo.write_on_policy_pairs(run_dir, model, tokenizer, judge, origin, cfg.max_new_tokens)
    if method != "base":
        rows, settings = training_rows(cfg, run_dir, method, origin)
        adapter = run_dir / EXPERIMENTS / name
        result = lora.train(model, tokenizer, rows, settings, adapter, model_id=origin)
        model = merged(model, adapter)
        record |= {"examples": result.examples, "train_seconds": round(result.seconds), "resumed": result.resumed}
        if method == "dpo":
            record["diagnostics"] = dpo.dpo_diagnostics(result.log_history, beta=cfg.dpo_beta,
                                                        sft_weight=cfg.dpo_sft_weight)
    dev = scorecard.evaluate(cfg, run_dir, name, judge, model=model, tokenizer=tokenizer, split="dev")
    record |= {"dev_seconds": dev["seconds"], "minutes": round((time.perf_counter() - clock) / 60, 1),
               "dev": report.dev_summary(dev["rows"])}
    append_log(run_dir, record)
    return record
