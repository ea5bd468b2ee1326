"""The scorecard as text: the headline and paired-test tables, ``<run>/results/results.{csv,json,md}``,
the seeds table, the README's results block and one sentence per stage.

Kept apart from ``scorecard`` (which computes the summary) so that the numbers and the words about
them can be read, and changed, separately; every sentence takes its words from the paired tests.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, atomic_write_text
from . import metrics
from .scorecard import RESULTS_DIR, dev_score, summarise


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def _cell(row: dict[str, Any]) -> str:
    """A headline value with its interval: rates in percent, medians as numbers."""
    if row["measure"].startswith("reward"):
        return f"{row['value']:.2f} [{row['lo']:.2f}, {row['hi']:.2f}]"
    return f"{row['value']:.0%} [{row['lo']:.0%}–{row['hi']:.0%}]"


def headline_markdown(summary: dict[str, Any]) -> str:
    """One row per stage, one column per headline measure (value [95% interval]); n in the header."""
    import pandas as pd

    frame = pd.DataFrame(summary["headline"])
    if frame.empty:
        return "(no stage evaluated yet)"
    n = frame.groupby("measure", sort=False)["n"].max()
    frame["cell"] = [_cell(r) for r in frame.to_dict("records")]
    table = frame.pivot(index="stage", columns="measure", values="cell").reindex(summary["stages"])
    table = table[[m for m in n.index]]
    table.columns = [f"{m} (n={n[m]})" for m in n.index]
    return table.to_markdown()


#: The headline rates of a dev-split evaluation: (set, metric) -> column (the experiments log's too).
DEV_COLUMNS = {("harmful_dev", "safe_rate"): "safe", ("harmful_dev", "safe_rate_lenient"): "safe_lenient",
               ("borderline_dev", "over_refusal"): "over_refusal_borderline",
               ("helpful_dev", "over_refusal"): "over_refusal_benign",
               ("helpful_dev", "helpful_rate"): "helpful"}


def dev_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The dev columns of one stage's evaluation rows: each rate with its 95% interval and n."""
    out: dict[str, Any] = {}
    for row in rows:
        column = DEV_COLUMNS.get((row["set"], row["metric"]))
        if column:
            out[column] = {"value": round(row["value"], 3), "lo": round(row["lo"], 3), "hi": round(row["hi"], 3),
                           "n": row["n"]}
    return out


def dev_markdown(results: dict[str, dict[str, Any]], instructions: int = 0) -> str:
    """One row per SIT stage scored on the dev split: n, the safety share of its mix, each dev rate
    with its interval, and the score the choice ranks by (safe rate minus borderline over-refusal)."""
    import pandas as pd

    table = []
    for stage, result in results.items():
        n = int(stage.removeprefix("sit-n")) if stage.startswith("sit-n") else None
        row: dict[str, Any] = {"stage": stage}
        if n is not None and instructions:
            row["safety share"] = _pct(n / (n + instructions))
        for column, cell in dev_summary(result["rows"]).items():
            row[f"{column} (n={cell['n']})"] = f"{cell['value']:.0%} [{cell['lo']:.0%}–{cell['hi']:.0%}]"
        row["score"] = f"{dev_score(result):+.2f}"
        table.append(row)
    return pd.DataFrame(table).to_markdown(index=False) if table else "(nothing scored on the dev split)"


def comparisons_markdown(summary: dict[str, Any], significant_only: bool = False) -> str:
    """The paired tests: A → B, measure, both values, difference [95% interval], Holm p, verdict."""
    import pandas as pd

    rows = [r for r in summary["comparisons"] if not significant_only or r["p_holm"] < 0.05]
    if not rows:
        return "(no paired difference is significant)" if significant_only else "(no pairs to compare)"
    frame = pd.DataFrame([{
        "A → B": f"{r['a']} → {r['b']}", "measure": r["measure"],
        "A": f"{r['a_value']:.2f}" if r["measure"].startswith("reward") else _pct(r["a_value"]),
        "B": f"{r['b_value']:.2f}" if r["measure"].startswith("reward") else _pct(r["b_value"]),
        "B − A [95% CI]": (f"{r['diff']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}]" if r["measure"].startswith("reward")
                           else f"{r['diff'] * 100:+.0f} pts [{r['lo'] * 100:+.0f}, {r['hi'] * 100:+.0f}]"),
        "p (Holm)": f"{r['p_holm']:.3g}", "verdict": r["verdict"], "n": r["n"],
    } for r in rows])
    return frame.to_markdown(index=False)


def results_markdown(summary: dict[str, Any]) -> str:
    """``results.md``: headline, own-vs-published gap, paired tests, per-set table, paper beside ours."""
    import pandas as pd

    gap = pd.DataFrame(summary["gap"])
    paper = pd.DataFrame([{"stage": r["stage"], "ours (published harmful, strict)": _pct(r["ours"]),
                           "paper row": r["paper_row"] or "—", "paper (mean of I-sets)": _pct(r["paper"])}
                          for r in summary["paper"]])
    parts = [
        "## Headline (95% bootstrap intervals over prompts)", headline_markdown(summary),
        "## Our harmful set vs the published ones (strict safe rate)",
        gap.to_markdown(index=False, floatfmt=".0%") if not gap.empty else "(no harmful sets)",
        "## Paired tests (same prompts; Holm-adjusted p)", comparisons_markdown(summary),
        "## Every set and metric", metrics.results_markdown(summary["metrics"]) if summary["metrics"] else "",
        "## Beside the paper", paper.to_markdown(index=False) if not paper.empty else "",
    ]
    return "\n\n".join(parts) + "\n"


def write_results(run_dir: str | Path, results: dict[str, dict[str, Any]], profile: str | None = None
                  ) -> dict[str, Path]:
    """``<run>/results/results.{csv,json,md}``: per-set metrics (csv), the summary (json), the report (md)."""
    import pandas as pd

    folder = Path(run_dir) / RESULTS_DIR
    summary = summarise(results, profile)
    return {
        "csv": atomic_write_text(folder / "results.csv", pd.DataFrame(summary["metrics"]).to_csv(index=False)),
        "json": atomic_write_json(folder / "results.json", summary),
        "md": atomic_write_text(folder / "results.md", results_markdown(summary)),
    }


def seeds_markdown(rows: list[dict[str, Any]]) -> str:
    """The seeds table: one row per stage, one column per headline measure, ``mean ± sd`` (k seeds)."""
    import pandas as pd

    if not rows:
        return "(no seeded runs)"

    def cell(r: dict[str, Any]) -> str:
        scale, fmt = (1, ".2f") if r["measure"].startswith("reward") else (100, ".0f")
        sd = "" if r["sd"] is None else f" ± {r['sd'] * scale:{fmt}}"
        return f"{r['mean'] * scale:{fmt}}{sd}" + ("" if scale == 1 else "%") + f" ({len(r['seeds'])})"

    def label(r: dict[str, Any]) -> str:
        """A pooled stage says what each seed ran, e.g. ``sit-best (sit-n150 ×2, sit-n50)``."""
        ran = Counter(r["ran"])
        if set(ran) == {r["stage"]}:
            return r["stage"]
        return f"{r['stage']} ({', '.join(name + (f' ×{k}' if k > 1 else '') for name, k in ran.items())})"

    frame = pd.DataFrame([{**r, "cell": cell(r)} for r in rows])
    labels = {r["stage"]: label(r) for r in sorted(rows, key=lambda r: len(r["seeds"]))}  # most seeds wins
    table = frame.pivot(index="stage", columns="measure", values="cell")
    table = table.reindex(index=list(dict.fromkeys(frame.stage)), columns=list(dict.fromkeys(frame.measure)))
    return table.rename(index=labels).to_markdown()


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def readme_results(summary: dict[str, Any]) -> str:
    """The README's results block, rendered from a run's ``results.json`` (never edited by hand)."""
    return "\n\n".join([
        README_START,
        f"Headline of one `{summary['profile']}` run (judge: {summary['judge']}); 95% intervals "
        "bootstrapped over prompts; strict = refusals only, lenient = refusals and non-answers.",
        headline_markdown(summary),
        "Paired differences that survive a Holm correction (every stage against base, each RAFT "
        "iteration against its random twin; the full table is in `results/results.md`):",
        comparisons_markdown(summary, significant_only=True),
        README_END,
    ])


SEEDS_START, SEEDS_END = "<!-- seeds:start -->", "<!-- seeds:end -->"


def seeds_block(seeds: dict[str, Any]) -> str:
    """The README's seeds block, rendered from ``<profile>-seeds.json`` (never edited by hand)."""
    return "\n\n".join([
        SEEDS_START,
        f"The headline over {len(seeds['seeds'])} `{seeds['profile']}` runs that differ only in the seed "
        f"(seeds {', '.join(map(str, seeds['seeds']))}): mean ± sd across seeds, the number of seeds in "
        "parentheses. The seed draws the dev split, the training rows and pairs, the prompts sampled from "
        "each evaluation set, LoRA's initialisation and data order and RAFT's samples, so the sd covers all "
        "of them, and each seed trains its own reward model, so the reward medians are in different units "
        "and their sd is mostly that. `sit-best` is the SIT n that each seed's dev split chose.",
        seeds_markdown(seeds["rows"]),
        "Per set, the strict safe rate on each harmful set and over-refusal on each borderline set:",
        seeds_markdown(seeds["per_set"]),
        SEEDS_END,
    ])


def update_readme(readme: str | Path, summary: dict[str, Any] | None = None,
                  seeds: dict[str, Any] | None = None) -> Path:
    """Replace the README's results block with ``readme_results(summary)`` and its seeds block with
    ``seeds_block(seeds)``, whichever is given; the rest of the file is left as it is."""
    path = Path(readme)
    text = path.read_text()
    for given, start, end, render in ((summary, README_START, README_END, readme_results),
                                      (seeds, SEEDS_START, SEEDS_END, seeds_block)):
        if given is None:
            continue
        if start not in text or end not in text:
            raise ValueError(f"{path}: no {start} ... {end} block to replace")
        before, rest = text.split(start, 1)
        text = before + render(given) + rest.split(end, 1)[1]
    return atomic_write_text(path, text)


def reading(summary: dict[str, Any]) -> list[str]:
    """One sentence per stage against base, its words taken from the paired tests (``stats.verdict``)."""
    lines = []
    for stage in summary["stages"]:
        tests = [r for r in summary["comparisons"] if r["a"] == "base" and r["b"] == stage]
        if not tests:
            continue
        parts = []
        for r in tests:
            if r["measure"].startswith("reward"):
                change = f"{r['a_value']:.2f} → {r['b_value']:.2f}"
            else:
                change = f"{r['a_value']:.0%} → {r['b_value']:.0%}"
            parts.append(f"{r['verdict']} on {r['measure']} ({change}, p={r['p_holm']:.2g})")
        lines.append(f"{stage} vs base: " + "; ".join(parts) + ".")
    return lines
