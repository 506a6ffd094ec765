"""Progress reporting shared by the command line (tqdm bars) and the pages (st.progress).

Long functions take ``progress``: a callable ``progress(stage, done, total)``. ``None`` is silent.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional

__all__ = ["ProgressFn", "report", "TerminalProgress", "Eta"]

ProgressFn = Optional[Callable[[str, int, int], None]]


def report(progress: ProgressFn, stage: str, done: int, total: int) -> None:
    """Call ``progress(stage, done, total)`` unless ``progress`` is None."""
    if progress is not None:
        progress(stage, done, total)


class TerminalProgress:
    """One tqdm bar per stage, with counts, rate and ETA."""

    def __init__(self):
        self.stage = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage, unit="", dynamic_ncols=True, initial=done,
                            mininterval=0.5 if sys.stderr.isatty() else 10.0)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None


class Eta:
    """Text such as 'Rendering stimuli: 5,000 / 20,000 (250/s, 60 s left)' for a page's progress bar."""

    def __init__(self):
        self.stage = None
        self.t0 = 0.0
        self.d0 = 0

    def text(self, stage: str, done: int, total: int) -> str:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.t0, self.d0 = stage, now, done
        rate = (done - self.d0) / max(now - self.t0, 1e-9)
        left = f", {((total - done) / rate):.0f} s left" if rate > 0 and done < total else ""
        return f"{stage}: {done:,} / {total:,}" + (f" ({rate:,.0f}/s{left})" if done > self.d0 else "")
