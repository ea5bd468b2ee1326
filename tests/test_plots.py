"""The figures the notebooks show, drawn from rows in the scorecard's shape."""

import matplotlib

matplotlib.use("Agg")

from safeserve_utils.ui import plots  # noqa: E402


def _row(stage, set_, metric, value):
    return {"stage": stage, "set": set_, "metric": metric, "value": value, "lo": value - 0.1, "hi": value + 0.1, "n": 40}


def test_sit_curve_shows_safe_rate_and_over_refusal_against_n_and_the_safety_share():
    rows = [_row(f"sit-n{n}", s, m, v) for n, v in ((0, 0.1), (100, 0.8)) for s, m in
            (("harmful_ours", "safe_rate"), ("borderline_ours", "over_refusal"), ("borderline_ours", "safe_rate"))]
    rows.append(_row("dpo", "harmful_ours", "safe_rate", 0.9))  # not a SIT stage: not drawn
    fig = plots.sit_curve(rows, instructions=300)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["ours", "ours (over-refusal)"]
    assert [list(line.get_xdata()) for line in ax.get_lines()[:2]] == [[0, 100], [0, 100]]
    assert [a.get_xlabel() for a in ax.child_axes] == ["safety share of the SIT mix"]
    assert plots.sit_curve(rows).axes[0].child_axes == []  # no instruction count: no share axis


def test_error_bars_of_a_rate_at_its_bound_are_never_negative():
    """A Wilson bound a rounding error past a 0% rate once stopped 06 (matplotlib refuses negative yerr)."""
    from safeserve_utils.ui.plots import _errors

    assert (_errors([0.0, 0.5], [1e-17, 0.4], [0.2, 0.6]) >= 0).all()
