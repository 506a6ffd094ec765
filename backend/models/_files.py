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


def load_weights(module, folder: Path, name: str = "model.safetensors") -> None:
    """Load ``folder/name`` (safetensors only: a pickle or any other file is refused, never unpickled) into
    ``module``; a missing file, a file that is not safetensors, or tensors whose names or shapes do not match the
    folder's config each raise an error that names the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = need_file(folder, name)
    try:
        state = load_file(str(p))
    except SafetensorError as exc:
        raise InvalidInputError(f"{p} is not a safetensors file ({exc}); weights are read only from safetensors, "
                                "never unpickled") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise InvalidInputError(f"{p} does not match {Path(folder) / 'config.json'}: "
                                f"{str(exc).splitlines()[0]} ...") from None
