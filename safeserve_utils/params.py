"""Notebook parameters: each declared once, in ``config.Profile``.

A notebook's ``parameters`` cell names the profile fields it uses; their types, defaults (the ``tiny``
profile's) and help text are rendered from the dataclass, never typed by hand, so the cell cannot drift
from the profile. ``python -m safeserve_utils parameters --write`` re-renders every cell after a field
changes (a test fails until it is run). The notebook then opens its run with ``open_notebook``, which
reads the same names back from the cell instead of listing them a third time.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import config
from .io import atomic_write_text

NOTEBOOKS_DIR = config.PROJECT_ROOT / "notebooks"
#: Parameters the chain fills in rather than the profile: every notebook has the first two; a notebook
#: with widgets declares ``interactive``, which the chain sets to False (headless).
CHAIN_PARAMETERS: dict[str, tuple[type, Any, str]] = {
    "profile": (str, "tiny", "smoke | tiny | paper | paper-dry: which profile's defaults the run uses"),
    "run_dir": (str, "../runs/tiny", "run directory: every artifact of this run is written here"),
    "interactive": (bool, True, "show the widget panel (the chain runs headless: False)"),
}
_NAME = re.compile(r"\s*([A-Za-z_]\w*)\s*[:=]")


def notebook_path(notebook: str) -> Path:
    """``02_sit`` or ``02_sit.ipynb`` -> the committed notebook."""
    return NOTEBOOKS_DIR / (notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb")


def _parameters_cell(notebook: dict[str, Any], path: Path) -> dict[str, Any]:
    cells = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise config.ConfigError(f"{path}: {len(cells)} cells are tagged `parameters`; a notebook needs exactly one")
    return cells[0]


def _names(cell: dict[str, Any]) -> list[str]:
    return [m.group(1) for line in "".join(cell["source"]).splitlines() if (m := _NAME.match(line))]


def declared(path: Path) -> list[str]:
    """The names a notebook's parameters cell declares, in order."""
    return _names(_parameters_cell(json.loads(path.read_text()), path))


def spec(name: str) -> tuple[type, Any, str]:
    """(type, default under ``tiny``, help) of a notebook parameter; an unknown name is an error."""
    if name in CHAIN_PARAMETERS:
        return CHAIN_PARAMETERS[name]
    fields = {f.name: f for f in dataclasses.fields(config.Profile)}
    if name not in fields or name == "name":
        raise config.ConfigError(f"notebook parameter `{name}` is not a field of config.Profile")
    kind = typing.get_type_hints(config.Profile)[name]
    return kind, getattr(config.PROFILES["tiny"], name), fields[name].metadata["help"]


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def render(names: Sequence[str]) -> str:
    """The parameters cell for these names, as the profile defines them."""
    lines = []
    for name in names:
        kind, default, help_text = spec(name)
        lines.append(f"{name}: {kind.__name__} = {_literal(default)}  # {help_text}")
    return "\n".join(lines)


def stale(directory: Path = NOTEBOOKS_DIR, write: bool = False) -> list[Path]:
    """Notebooks whose parameters cell is not what the profile renders; ``write`` re-renders them."""
    out = []
    for path in sorted(directory.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        cell = _parameters_cell(nb, path)
        text = render(_names(cell))
        if "".join(cell["source"]) != text:
            out.append(path)
            if write:
                cell["source"] = text.splitlines(keepends=True)
                atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return out


def open_notebook(notebook: str, namespace: Mapping[str, Any]) -> config.Profile:
    """What a notebook's first cell calls with ``globals()``: ``config.open_run`` with the values of
    the parameters its cell declares (as papermill or the reader set them)."""
    names = declared(notebook_path(notebook))
    missing = [n for n in ("run_dir", "profile", *names) if n not in namespace]
    if missing:
        raise config.ConfigError(f"{notebook}: run its parameters cell first (not defined: {', '.join(missing)})")
    overrides = {n: namespace[n] for n in names if n not in CHAIN_PARAMETERS}
    return config.open_run(namespace["run_dir"], namespace["profile"], **overrides)
