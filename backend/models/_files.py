"""Reading model folders: every error names the folder and the file it expected."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidInputError


def read_json(folder: Path, name: str, what: str = "") -> dict:
    """``folder/name`` parsed; errors name the folder and the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    p = folder / name
    if not p.exists():
        raise FileNotFoundError(f"model folder {folder} has no {name}" + (f" ({what})" if what else ""))
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{p} is not valid JSON: {exc}") from exc


def read_config(folder: Path, expected: str | None = None) -> dict:
    """``folder/config.json``; with ``expected``, its ``model_type`` must be that."""
    p = Path(folder) / "config.json"
    cfg = read_json(folder, "config.json")
    if expected and cfg.get("model_type") != expected:
        raise InvalidInputError(f"{p}: model_type is {cfg.get('model_type')!r}, expected {expected!r}")
    return cfg


def need_file(folder: Path, name: str) -> Path:
    """``folder/name``, which must exist."""
    p = Path(folder) / name
    if not p.exists():
        raise FileNotFoundError(f"model folder {folder} has no {name}")
    return p
