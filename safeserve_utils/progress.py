"""Progress bars that behave in a live notebook, in a terminal and under papermill.

``tqdm.auto`` draws a widget bar in a live notebook and a console bar in a terminal, but under
papermill the widget never updates in the saved notebook and a console bar floods it with lines
(papermill#617, #765). The chain sets ``SAFESERVE_HEADLESS=1`` for its kernels; then progress is a
few plain lines (start, each quarter, end) instead.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
HEADLESS_ENV = "SAFESERVE_HEADLESS"


def headless() -> bool:
    return os.environ.get(HEADLESS_ENV) == "1"


def progress(items: Iterable[T], total: int, desc: str) -> Iterator[T]:
    """Iterate ``items`` showing progress: a tqdm bar interactively, sparse lines headless."""
    if not headless():
        from tqdm.auto import tqdm

        yield from tqdm(items, total=total, desc=desc)
        return
    start = time.perf_counter()
    marks = quarter_marks(total)
    print(f"{desc}: 0/{total}", file=sys.stderr, flush=True)
    for done, item in enumerate(items, 1):
        yield item
        if done in marks:
            print(f"{desc}: {done}/{total} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)


def quarter_marks(total: int) -> set[int]:
    """The steps at which a headless run prints a line: each quarter of ``total``."""
    return {max(1, round(total * q / 4)) for q in (1, 2, 3, 4)} if total else set()


def training_progress(desc: str) -> Any:
    """A transformers ``TrainerCallback`` that shows step, loss and time left while a stage trains: a
    tqdm bar live, a line per quarter headless. (The trainer's own bar is off: under papermill it would
    write a line per step, and it shows no time left per stage.)"""
    from transformers import TrainerCallback  # deferred: heavy, and only a training run needs it

    class TrainingProgress(TrainerCallback):
        def __init__(self) -> None:
            self.bar: Any = None
            self.loss: float | None = None
            self.start = time.perf_counter()
            self.marks: set[int] = set()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.start = time.perf_counter()
            if headless():
                self.marks = quarter_marks(state.max_steps)
                print(f"{desc}: training, {state.max_steps} steps", file=sys.stderr, flush=True)
            else:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=state.max_steps, desc=desc, unit="step")

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])
                if self.bar is not None:
                    self.bar.set_postfix(loss=f"{self.loss:.3f}")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step, total = state.global_step, state.max_steps
            if self.bar is not None:
                self.bar.update(step - self.bar.n)
            elif step in self.marks:
                elapsed = time.perf_counter() - self.start
                loss = f", loss {self.loss:.3f}" if self.loss is not None else ""
                print(f"{desc}: step {step}/{total}{loss}, {elapsed:.0f} s, about "
                      f"{elapsed / step * (total - step):.0f} s left", file=sys.stderr, flush=True)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()

    return TrainingProgress()
