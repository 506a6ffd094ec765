"""Progress reporting: long functions report to a callback; the command line shows tqdm bars, background jobs
write it where the pages read it (:mod:`backend.jobs`).

Long functions take ``progress``: a callable ``progress(stage, done, total)``. ``None`` is silent.
"""
from __future__ import annotations

import sys
from typing import Callable, Optional

__all__ = ["ProgressFn", "report", "TerminalProgress"]

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

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        from tqdm import tqdm

        tqdm.write(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None
