"""How the notebooks show things: readable text tables now, figures as stages land."""

from __future__ import annotations

from typing import Any


def text_table(rows: list[dict[str, Any]] | Any) -> Any:
    """A left-aligned, wrapping table for long text (prompts, answers) in a notebook."""
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    return frame.style.set_properties(**{"text-align": "left", "white-space": "pre-wrap"}).hide(axis="index")


def length_histograms(sets: dict[str, list[str]], title: str = "Length in words") -> Any:
    """One histogram per named list of texts, on shared axes, so set lengths can be compared."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(3.2 * len(sets), 2.6), sharey=False)
    for ax, (name, texts) in zip(axes if len(sets) > 1 else [axes], sets.items()):
        ax.hist([len(t.split()) for t in texts], bins=20, color="#4C72B0")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("words")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
