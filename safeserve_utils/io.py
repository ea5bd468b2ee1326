"""Atomic file writes: a crash or a full disk never leaves a half-written artifact behind.

Every stage writes through these helpers, so a re-run sees either the old complete file or the new
complete file, and an interrupted run can resume from what is on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    Works for files and for directories (e.g. a model or adapter folder written by
    ``save_pretrained``): the temporary sibling lives on the same filesystem, so the final rename is
    atomic, and on error it is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)) / (
        "payload" + suffix
    )
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | Path, kind: type = dict) -> Any:
    """The JSON record at ``path``, or None if there is none *or it is damaged*.

    A record that does not parse (a kill mid-write on a filesystem without atomic rename, a disk
    error, a hand edit) or is not a ``kind`` is moved aside to ``<name>.corrupt``, with a message naming
    both paths, so the caller rebuilds it instead of failing on every re-run.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(value, kind):
            return value
        problem = f"holds a {type(value).__name__}, not a {kind.__name__}"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = f"does not parse ({exc})"
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    print(f"{path} {problem}: moved aside to {aside}; it will be rebuilt", file=sys.stderr)
    return None


def json_lines(path: str | Path, error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSONL file that is not ours to repair (the
    project's data, an engine's answers): a line that is not UTF-8 or not JSON raises ``error``
    naming the file, the line and the column."""
    for number, raw in enumerate(Path(path).read_bytes().splitlines(), 1):
        where = f"{path}, line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where}: not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
                        "save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        yield number, value
