"""How the notebooks show things: readable text tables now, figures as stages land."""

from __future__ import annotations

from typing import Any


def text_table(rows: list[dict[str, Any]] | Any) -> Any:
    """A left-aligned, wrapping table for long text (prompts, answers) in a notebook."""
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    return frame.style.set_properties(**{"text-align": "left", "white-space": "pre-wrap"}).hide(axis="index")
