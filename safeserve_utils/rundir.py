"""Run directories: where one may be, and who holds it.

A run writes executed notebooks, data and adapters, so a run directory that is (or is inside) the
repository's own tree would overwrite its sources: ``--run-dir ""`` once wrote an executed notebook
over the tracked ``notebooks/00_setup.ipynb``. Only ``runs/`` (git-ignored) or a folder outside the
repository may hold a run. Two runs on one directory would train the same adapters and write the same
records at once, so a run holds a lock file (owner pid and host) for its whole life; a lock left by a
process that no longer exists is taken over, with a message, and the temporary folders a killed run
left behind are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .config import PROJECT_ROOT, RUNS_DIR, ConfigError

LOCK_FILE = ".lock"


class RunLocked(RuntimeError):
    """Another live process holds the run directory."""


def checked(run_dir: str | Path, profile: str = "tiny") -> Path:
    """``run_dir`` resolved, or a ``ConfigError`` if a run may not write there."""
    path = Path(run_dir).resolve()
    root = PROJECT_ROOT.resolve()
    inside_sources = path == root or (path.is_relative_to(root) and not path.is_relative_to(RUNS_DIR.resolve()))
    if inside_sources:
        raise ConfigError(f"--run-dir {str(run_dir)!r} is {path}, inside the repository's own files: a run would "
                          f"write over them. Use a folder under runs/ (the default is runs/{profile}) or one "
                          "outside the repository")
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--run-dir {str(run_dir)!r}: {parent} is a file, not a folder; "
                                  f"choose another path (the default is runs/{profile})")
            if not os.access(parent, os.W_OK):
                raise ConfigError(f"--run-dir {str(run_dir)!r}: {parent} is not writable; "
                                  f"choose another path (the default is runs/{profile})")
            break
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temps(run_dir: Path) -> list[Path]:
    """Remove the temporary folders (``.<name>.*.tmp``, see ``io.atomic_path``) that a killed run left in
    ``run_dir``. Called with the lock held, so no live run of this directory is writing them."""
    stale = sorted(p for p in run_dir.rglob(".*.tmp") if p.is_dir())
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        print(f"removed {path}: left behind by an interrupted run", file=sys.stderr)
    return stale


@contextmanager
def locked(run_dir: Path) -> Iterator[Path]:
    """Hold ``run_dir/.lock`` while the block runs; refuse at once if a live process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text())
                pid, host = int(owner["pid"]), str(owner["host"])
            except (OSError, ValueError, KeyError, TypeError):
                owner, pid, host = {}, -1, me["host"]  # unreadable: written by a run killed mid-write
            if host != me["host"] or (pid > 0 and _alive(pid)):
                raise RunLocked(f"{run_dir} is in use by process {pid} on {host} (since {owner.get('since', '?')}): "
                                f"wait for it to finish or stop it; if that process is gone, delete {lock}") from None
            print(f"{lock}: taking over the lock of process {pid}, which no longer runs", file=sys.stderr)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        break
    clean_stale_temps(run_dir)
    try:
        yield lock
    finally:
        try:
            if json.loads(lock.read_text()).get("pid") == me["pid"]:
                lock.unlink()
        except (OSError, ValueError):
            pass
