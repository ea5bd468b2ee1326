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
from typing import TypeVar

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
    marks = {max(1, round(total * q / 4)) for q in (1, 2, 3, 4)} if total else set()
    print(f"{desc}: 0/{total}", file=sys.stderr, flush=True)
    for done, item in enumerate(items, 1):
        yield item
        if done in marks:
            print(f"{desc}: {done}/{total} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
