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


def test_training_progress_reports_step_loss_and_time_left_headless(monkeypatch, capsys):
    from types import SimpleNamespace

    monkeypatch.setenv(progress.HEADLESS_ENV, "1")
    callback = progress.training_progress("sit-n40 (sft)")
    state = SimpleNamespace(max_steps=8, global_step=0)
    callback.on_train_begin(None, state, None)
    for step in range(1, 9):
        state.global_step = step
        callback.on_log(None, state, None, logs={"loss": 2.0 / step})
        callback.on_step_end(None, state, None)
    callback.on_train_end(None, state, None)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "sit-n40 (sft): training, 8 steps"
    assert [line.split(", ")[0] for line in lines[1:]] == [f"sit-n40 (sft): step {s}/8" for s in (2, 4, 6, 8)]
    assert "loss 1.000" in lines[1] and lines[-1].endswith("about 0 s left")


def test_training_progress_draws_a_bar_live(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.delenv(progress.HEADLESS_ENV, raising=False)
    callback = progress.training_progress("dpo (dpo)")
    state = SimpleNamespace(max_steps=3, global_step=0)
    callback.on_train_begin(None, state, None)
    state.global_step = 2
    callback.on_log(None, state, None, logs={"loss": 0.5})
    callback.on_step_end(None, state, None)
    assert callback.bar.n == 2 and "0.500" in str(callback.bar.postfix)
    callback.on_train_end(None, state, None)
