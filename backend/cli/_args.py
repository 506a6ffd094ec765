"""Argument helpers shared by the command groups."""
from __future__ import annotations

from ..errors import InvalidInputError

DEVICE_HELP = "cpu, cuda, cuda:1, ... (default auto: $VOXELSCOPE_DEVICE, else cuda when a GPU is visible, else cpu)"


def int_ranges(text: str | None) -> list[int] | None:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``; None for an empty value (meaning: all)."""
    if not text:
        return None
    out = []
    for part in text.split(","):
        try:
            if "-" in part:
                a, b = part.split("-")
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise InvalidInputError(f"{text!r} is not a list of numbers and ranges (e.g. 1-10 or 1,3,5)") from None
    return out


def progress_bar():
    """A terminal progress bar (counts, rate, ETA) as the backend's ``progress`` callback."""
    from ..store import TerminalProgress

    return TerminalProgress()
