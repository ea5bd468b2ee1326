"""Progress: every item passes through; headless runs print a few lines, not a bar per step."""

from safeserve_utils import progress


def test_interactive_passes_items_through(monkeypatch):
    monkeypatch.delenv(progress.HEADLESS_ENV, raising=False)
    assert list(progress.progress(iter(range(5)), total=5, desc="x")) == [0, 1, 2, 3, 4]


def test_headless_prints_quarters(monkeypatch, capsys):
    monkeypatch.setenv(progress.HEADLESS_ENV, "1")
    assert list(progress.progress(range(100), total=100, desc="gen")) == list(range(100))
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["gen: 0/100", "gen: 25/100", "gen: 50/100",
                                                        "gen: 75/100", "gen: 100/100"]


def test_headless_small_totals(monkeypatch, capsys):
    monkeypatch.setenv(progress.HEADLESS_ENV, "1")
    assert list(progress.progress([1], total=1, desc="one")) == [1]
    assert capsys.readouterr().err.count("one: 1/1") == 1
