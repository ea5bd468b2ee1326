"""Run the numbered notebooks in order with papermill, into one run directory.

Each stage is a notebook ``notebooks/NN_name.ipynb``. The chain injects into each notebook the run
directory, the profile name and those of its parameters that the profile defines, and writes the
executed copy to ``<run_dir>/notebooks/``. A stage is skipped on re-run when its *fingerprint* is
unchanged: the notebook's source, its injected parameters, the package's code and ``data/``, and the
fingerprint of the stage before it (so a change upstream redoes everything downstream).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config, modeling, params, rundir
from .io import atomic_write_json, read_json
from .progress import HEADLESS_ENV

STAGES_FILE = "stages.json"
class StageFailed(RuntimeError):
    """A notebook of the chain raised; the message names the notebook, the cell and the error."""


@dataclass
class StageResult:
    notebook: str
    status: str  # "ran" | "skipped" | "failed"
    seconds: float
    output: Path


def notebooks(directory: Path = params.NOTEBOOKS_DIR) -> list[Path]:
    """The chain's stages in order: notebooks whose names start with two digits."""
    return sorted(directory.glob("[0-9][0-9]_*.ipynb"))


def stage_parameters(path: Path, cfg: config.Profile, run_dir: Path) -> dict[str, Any]:
    """What the chain injects into one notebook: run_dir, profile and the profile's matching fields."""
    values: dict[str, Any] = {"profile": cfg.name, "run_dir": str(run_dir)}
    declared = params.declared(path)
    if "interactive" in declared:
        values["interactive"] = False
    for name in declared:
        if name not in params.CHAIN_PARAMETERS:
            values[name] = getattr(cfg, name)
    return values


def _tree_digest(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_and_data_digest(root: Path = config.PROJECT_ROOT) -> str:
    """Digest of the package source and the project's data: a change to either redoes the chain."""
    files = list((root / "safeserve_utils").rglob("*.py"))
    files += [p for p in (root / "data").rglob("*") if p.is_file()]
    return _tree_digest(files, root)


def fingerprint(path: Path, injected: dict[str, Any], upstream: str, code_digest: str) -> str:
    """What a stage's result depends on. The run directory's own path is left out: every artifact is
    found relative to it, so a run moved or copied elsewhere resumes instead of starting over."""
    digest = hashlib.sha256()
    kept = {k: v for k, v in injected.items() if k != "run_dir"}
    for part in (path.read_bytes(), json.dumps(kept, sort_keys=True).encode(), upstream.encode(),
                 code_digest.encode()):
        digest.update(part)
    return digest.hexdigest()


def load_stages(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / STAGES_FILE) or {}  # a damaged record is moved aside: it costs a re-run


def execute(path: Path, output: Path, injected: dict[str, Any]) -> None:
    """Execute one notebook with papermill; turn its failure into a message naming notebook and cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(path), str(output), parameters=injected, cwd=str(path.parent),
            progress_bar=sys.stderr.isatty(), request_save_on_cell_execute=True,
            # Kernel and client talk over local sockets (IPC), not loopback TCP: nothing listens on a
            # port, and the kernel's "running over TCP without encryption" warning is not printed.
            config=Config({"KernelManager": {"transport": "ipc"}}),
        )
    except PapermillExecutionError as exc:
        first_line = (exc.source or "").strip().splitlines()[:1]
        raise StageFailed(
            f"{path.name} failed in cell In [{exc.exec_count}] (cell index {exc.cell_index}"
            f"{', starting ' + repr(first_line[0][:60]) if first_line else ''}): "
            f"{exc.ename}: {exc.evalue}\n  partial output kept at {output}"
        ) from exc
    except Exception as exc:  # kernel died, timed out, could not start...
        raise StageFailed(
            f"{path.name} could not be executed: {type(exc).__name__}: {exc}\n"
            f"  partial output (if any) at {output}"
        ) from exc


def run_chain(
    profile: str,
    run_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    stages: list[Path] | None = None,
    log: Callable[[str], None] = print,
) -> list[StageResult]:
    """Run (or resume) the chain; returns one result per stage. Raises ``StageFailed`` on error."""
    with claimed(profile, run_dir, overrides) as (cfg, run_dir):
        return _run_stages(cfg, run_dir, force, stages if stages is not None else notebooks(), log)


@contextmanager
def claimed(profile: str, run_dir: Path | None, overrides: dict[str, Any] | None = None
            ) -> Iterator[tuple[config.Profile, Path]]:
    """What every command that writes into a run starts with, before any work: the profile with the
    models and datasets it names found (``config.resolve_sources``), the run directory checked and
    locked. Yields (profile, run directory); the lock is released on the way out."""
    cfg = config.resolve_sources(config.resolve(profile, overrides), tuple(modeling.BUILTIN_MODELS))
    run_dir = rundir.checked(run_dir if run_dir is not None else config.default_run_dir(profile), profile)
    with rundir.locked(run_dir):
        yield cfg, run_dir


def _run_stages(cfg: config.Profile, run_dir: Path, force: bool, chain: list[Path],
                log: Callable[[str], None]) -> list[StageResult]:
    guard_profile(cfg, run_dir, force)
    config.write_run_config(cfg, run_dir)
    config.apply_environment(cfg)  # kernels inherit it: no hub look-ups from any stage
    os.environ[HEADLESS_ENV] = "1"  # sparse progress lines instead of widgets nobody sees
    record = load_stages(run_dir)
    code_digest = code_and_data_digest()
    upstream = ""
    results: list[StageResult] = []
    for number, path in enumerate(chain, 1):
        injected = stage_parameters(path, cfg, run_dir)
        stamp = fingerprint(path, injected, upstream, code_digest)
        output = run_dir / "notebooks" / path.name
        previous = record.get(path.name, {})
        label = f"[{number}/{len(chain)}] {path.name}"
        if not force and previous.get("fingerprint") == stamp and previous.get("status") == "ok":
            lost = missing_outputs(run_dir, previous) + ([] if output.exists() else [f"notebooks/{path.name}"])
            if not lost:
                log(f"{label}: unchanged, skipped (ran {previous.get('finished')})")
                results.append(StageResult(path.name, "skipped", 0.0, output))
                upstream = stamp
                continue
            log(f"{label}: its outputs changed on disk ({', '.join(lost[:3])}{' ...' if len(lost) > 3 else ''}): re-running")
        log(f"{label}: running ...")
        before = snapshot(run_dir)
        # Until it succeeds the stage is not "ok": a Ctrl-C or a kill leaves this record, not the old one.
        record[path.name] = {"fingerprint": stamp, "status": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_json(run_dir / STAGES_FILE, record)
        start = time.perf_counter()
        try:
            execute(path, output, injected)
        except StageFailed:
            record[path.name] = {"fingerprint": stamp, "status": "failed",
                                 "seconds": round(time.perf_counter() - start, 1)}
            atomic_write_json(run_dir / STAGES_FILE, record)
            raise
        seconds = time.perf_counter() - start
        after = snapshot(run_dir)
        outputs = {name: size for name, size in after.items() if before.get(name) != size}
        for other in record.values():  # a file this stage rewrote is now this stage's to prove
            other["outputs"] = {k: v for k, v in other.get("outputs", {}).items() if k not in outputs}
        record[path.name] = {
            "fingerprint": stamp, "status": "ok", "seconds": round(seconds, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "parameters": injected, "outputs": outputs,
        }
        atomic_write_json(run_dir / STAGES_FILE, record)
        log(f"{label}: done in {seconds:.0f} s")
        results.append(StageResult(path.name, "ran", seconds, output))
        upstream = stamp
    return results


#: Files of a run directory that belong to the run, not to a stage.
RUN_FILES = (config.CONFIG_FILE, STAGES_FILE, rundir.LOCK_FILE)
#: Logs a user or a scheduler keeps in the run directory (``run ... > runs/tiny/chain.log``): they grow
#: while every stage runs, so they are no stage's output.
LOG_SUFFIX, LOG_DIR = ".log", "logs"


def snapshot(run_dir: Path) -> dict[str, int]:
    """Every file of the run directory (relative path -> size), but the run's own records and logs."""
    files = {p.relative_to(run_dir): p for p in sorted(run_dir.rglob("*")) if p.is_file()}
    return {str(name): p.stat().st_size for name, p in files.items() if str(name) not in RUN_FILES
            and not any(part.endswith((".tmp", ".corrupt")) for part in name.parts)
            and name.suffix != LOG_SUFFIX and name.parts[0] != LOG_DIR}


def missing_outputs(run_dir: Path, record: dict[str, Any]) -> list[str]:
    """The files a stage wrote (its record's manifest) that are gone or changed size since."""
    return [name for name, size in record.get("outputs", {}).items()
            if not (run_dir / name).is_file() or (run_dir / name).stat().st_size != size]


def guard_profile(cfg: config.Profile, run_dir: Path, force: bool) -> None:
    """A run directory holds one profile's run: another profile would overwrite its config and mix stages."""
    existing = read_json(run_dir / config.CONFIG_FILE)
    name = ((existing or {}).get("profile") or {}).get("name")
    if name and name != cfg.name and not force:
        raise config.ConfigError(f"{run_dir} holds a {name!r} run: use --profile {name} to resume it, another "
                                 f"--run-dir for a {cfg.name!r} run, or --force to replace it")


def describe_parameters(profile: str) -> str:
    """Text for ``--list``: each notebook's parameters, its default and the value the profile gives."""
    cfg = config.resolve(profile)
    lines = [f"Parameters per notebook (values under profile {profile!r}; override with -p key=value):"]
    for path in notebooks():
        lines.append(f"\n{path.name}")
        for name in params.declared(path):
            kind, default, help_text = params.spec(name)
            value = "(set by the chain)" if name in params.CHAIN_PARAMETERS else repr(getattr(cfg, name))
            lines.append(f"  {name}: {kind.__name__} = {default!r}  -> {value}  # {help_text}")
    return "\n".join(lines)
