"""How the notebooks show things: readable text tables now, figures as stages land."""

from __future__ import annotations

from typing import Any


def _errors(value: Any, lo: Any, hi: Any) -> Any:
    """Error-bar lengths below and above; a Wilson bound of a 0% or 100% rate can sit a rounding
    error past the rate itself, which matplotlib refuses as a negative length."""
    import numpy as np

    value, lo, hi = (np.asarray(v, dtype=float) for v in (value, lo, hi))
    return np.clip(np.array([value - lo, hi - value]), 0, None)


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


def _labelled(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str) -> Any:
    """Axis labels, title and a small legend: the finish every one-panel line or histogram plot shares."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def similarity_histograms(similarities: dict[str, list[float]], title: str) -> Any:
    """Overlaid histograms of nearest-neighbour cosine similarities, one per named set, with medians."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3))
    bins = np.linspace(0, 1, 41)
    for name, values in similarities.items():
        line = ax.hist(values, bins=bins, alpha=0.5, density=True, label=f"{name} (median {np.median(values):.2f})")
        ax.axvline(float(np.median(values)), color=line[2][0].get_facecolor(), ls="--")
    return _labelled(fig, ax, "cosine similarity to the nearest training demonstration", "density", title)


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)


def rates_by_stage(rows: list[dict[str, Any]], metric: str = "safe_rate", title: str | None = None) -> Any:
    """Grouped bars: one group per evaluation set, one bar per stage, with 95% interval whiskers."""
    import matplotlib.pyplot as plt
    import numpy as np

    frame = _frame(rows)
    frame = frame[frame.metric == metric]
    stages, sets = list(dict.fromkeys(frame.stage)), list(dict.fromkeys(frame.set))
    width = 0.8 / max(len(stages), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(sets)), 3.2))
    if frame.empty:  # e.g. over-refusal under a Llama Guard judge, which reads harm, not refusal
        ax.text(0.5, 0.5, f"this run measured no {metric.replace('_', ' ')}", ha="center", va="center")
        ax.set_axis_off()
        return fig
    for i, stage in enumerate(stages):
        part = frame[frame.stage == stage].set_index("set").reindex(sets)
        x = np.arange(len(sets)) + (i - (len(stages) - 1) / 2) * width
        ax.bar(x, part.value, width, yerr=_errors(part.value, part.lo, part.hi), capsize=2, label=stage)
    ax.set_xticks(np.arange(len(sets)), [s.split("_", 1)[1] for s in sets], rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title or f"{metric.replace('_', ' ')} per set and stage (95% intervals)")
    ax.legend(fontsize=8, ncol=min(len(stages), 4))
    fig.tight_layout()
    return fig


def sit_curve(rows: list[dict[str, Any]], paper: dict[str, dict[str, float]] | None = None,
              instructions: int = 0) -> Any:
    """Safe rate on the harmful sets (solid) and over-refusal on the borderline ones (dashed) against the
    number of safety demonstrations n (the paper's SIT ablation). With ``instructions`` (the mix's other
    rows), a top axis gives the safety share of the mix, n / (n + instructions): a small model learns
    that share as a prior, so the two curves rise together unless the mix teaches the distinction."""
    import re

    import matplotlib.pyplot as plt

    frame = _frame(rows)
    frame = frame[frame.stage.str.fullmatch(r"sit-n\d+")
                  & (((frame.metric == "safe_rate") & ~frame.set.str.contains("borderline"))
                     | ((frame.metric == "over_refusal") & frame.set.str.contains("borderline")))]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (name, metric), part in frame.groupby(["set", "metric"], sort=False):
        part = part.assign(n_safety=part.stage.str.extract(r"(\d+)$")[0].astype(int)).sort_values("n_safety")
        label = name.split("_", 1)[1] + (" (over-refusal)" if metric == "over_refusal" else "")
        ax.errorbar(part.n_safety, part.value, yerr=_errors(part.value, part.lo, part.hi), marker="o",
                    capsize=2, label=label, linestyle="--" if metric == "over_refusal" else "-")
    for row, rates in (paper or {}).items():
        if m := re.fullmatch(r"SIT n=(\d+)", row):
            ax.scatter([int(m.group(1))], [sum(rates.values()) / len(rates)], marker="x", color="black")
    if instructions > 0:
        top = ax.secondary_xaxis("top", functions=(lambda n: n / (n + instructions),
                                                   lambda share: share * instructions / (1 - share)))
        top.set_xlabel("safety share of the SIT mix")
    ax.set_xlabel("safety demonstrations n")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1.05)
    ax.set_title("SIT: safe rate (solid) and over-refusal (dashed) vs n; x = paper")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def tradeoff(headline: list[dict[str, Any]], safe: str = "safe, published harmful (strict)",
             over: str = "over-refusal, borderline") -> Any:
    """Each stage as a point with its intervals: over-refusal (x) against strict safe rate (y)."""
    import matplotlib.pyplot as plt

    frame = _frame(headline)
    y, x = (frame[frame.measure == m].set_index("stage") for m in (safe, over))
    fig, ax = plt.subplots(figsize=(5, 4.2))
    for stage in y.index.intersection(x.index):
        ax.errorbar(x.value[stage], y.value[stage], xerr=_errors([x.value[stage]], [x.lo[stage]], [x.hi[stage]]),
                    yerr=_errors([y.value[stage]], [y.lo[stage]], [y.hi[stage]]), fmt="o", capsize=2)
        ax.annotate(stage, (x.value[stage], y.value[stage]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.axhspan(0.9, 1.05, xmin=0, xmax=0.12 / 1.07, color="#55A868", alpha=0.15,
               label="target: ≥90% safe, ≤10% over-refusal")
    ax.set_xlim(-0.02, 1.05)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(over)
    ax.set_ylabel(safe)
    ax.set_title("Safety vs over-refusal (95% intervals)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def qa_accuracy(rows: list[dict[str, Any]]) -> Any:
    """Multiple-choice accuracy per stage and QA set with 95% intervals, and the chance line of each set."""
    fig = rates_by_stage(rows, "accuracy", title="QA accuracy (95% intervals); dashed: chance")
    ax = fig.axes[0]
    frame = _frame(rows)
    chance = frame[frame.metric == "chance"].drop_duplicates("set").set_index("set").value
    for i, name in enumerate(dict.fromkeys(frame[frame.metric == "accuracy"].set)):
        ax.hlines(chance.get(name), i - 0.45, i + 0.45, colors="black", linestyles="dashed")
    return fig


def loss_curves(histories: dict[str, list[dict[str, Any]]], title: str = "Training loss") -> Any:
    """Loss against step for each named run (a trainer's ``log_history``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, history in histories.items():
        steps = [h for h in history if "loss" in h and "step" in h]
        ax.plot([h["step"] for h in steps], [h["loss"] for h in steps], label=name)
    return _labelled(fig, ax, "step", "loss", title)


def dpo_curves(history: list[dict[str, Any]]) -> Any:
    """The four panels of a DPO run: loss (from ln 2), reward accuracy, margin, and how the policy
    moved the chosen and rejected answers away from the reference (rewards/beta = nats)."""
    import math

    import matplotlib.pyplot as plt

    steps = [h for h in history if "rewards/margins" in h]
    x = [h["step"] for h in steps]
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.9))
    axes[0].plot(x, [h["loss"] for h in steps])
    axes[0].axhline(math.log(2), ls="--", color="grey", label="ln 2")
    axes[1].plot(x, [h["rewards/accuracies"] for h in steps])
    axes[1].axhline(0.5, ls="--", color="grey", label="chance")
    axes[2].plot(x, [h["rewards/margins"] for h in steps])
    axes[2].axhline(0, ls="--", color="grey")
    axes[3].plot(x, [h["rewards/chosen"] for h in steps], label="chosen")
    axes[3].plot(x, [h["rewards/rejected"] for h in steps], label="rejected")
    axes[3].axhline(0, ls="--", color="grey")
    for ax, name in zip(axes, ("loss", "reward accuracy", "reward margin", "reward vs reference")):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def raft_curves(runs: dict[str, list[dict[str, Any]]]) -> Any:
    """Per iteration, for each run (RAFT and its random baseline): mean reward and judge safe rate of
    all samples (dashed) against the kept ones (solid). Ranking works when solid sits above dashed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for name, history in runs.items():
        x = [h["iteration"] for h in history]
        for ax, key in zip(axes, ("reward", "safe")):
            all_key, kept_key = (f"{key}_all_mean", f"{key}_kept_mean") if key == "reward" else ("safe_all", "safe_kept")
            line, = ax.plot(x, [h[kept_key] for h in history], marker="o", label=f"{name}: kept")
            ax.plot(x, [h[all_key] for h in history], ls="--", marker=".", color=line.get_color(),
                    label=f"{name}: all samples")
    axes[0].set_title("mean reward")
    axes[1].set_title("judge's safe rate")
    axes[1].set_ylim(0, 1.05)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
