"""Progress that a user sees: a bar on a terminal, and a line with the rate and the time left every
``every_s`` seconds when output goes to a file (under ``make`` or a scheduler), where a bar would print nothing."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
LINE_EVERY_S = 60.0


def progress(items: Iterable[T], total: int, desc: str, initial: int = 0, enabled: bool = True,
             every_s: float = LINE_EVERY_S, unit: str = "it") -> Iterator[T]:
    """``items`` with progress shown on stderr: tqdm's bar on a terminal, a line every ``every_s`` s otherwise."""
    if not enabled:
        yield from items
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, initial=initial, desc=desc, unit=unit, leave=False)
        return
    began = last = time.monotonic()
    done = initial
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s or done == total:
            rate = (done - initial) / max(now - began, 1e-9)
            left = (total - done) / rate if rate > 0 else float("inf")
            print(f"{desc}: {done}/{total} {unit} ({rate:.2f} {unit}/s, {_duration(left)} left)", file=sys.stderr,
                  flush=True)
            last = now


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
