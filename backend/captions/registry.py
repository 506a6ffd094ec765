"""The caption methods VoxelScope knows, by name (like himalaya's solver dict).

Each entry is a class with ``name``, ``label`` (for display), ``how`` (one line for the voxel card),
``defaults`` (parameters), ``roles`` (the model roles it needs beyond the embedder) and, built with
``(params, bank, bank_captions, models, device)``, a ``caption(W, intercept)`` method and ``model_ids``.
Pages and the command line read method names and labels from here. A new method is one module and
one line below.
"""
from __future__ import annotations

from ..errors import InvalidInputError
from .brainscuba import BrainSCUBA
from .lavca import LaVCa

__all__ = ["CAPTION_METHODS", "caption_method", "method_label"]

CAPTION_METHODS = {m.name: m for m in (BrainSCUBA, LaVCa)}


def caption_method(name: str):
    """The class registered as ``name``; a clear error naming the known methods otherwise."""
    if name not in CAPTION_METHODS:
        raise InvalidInputError(f"unknown caption method {name!r} (known: {', '.join(CAPTION_METHODS)})")
    return CAPTION_METHODS[name]


def method_label(name: str) -> str:
    """The display label of a method (its name when it is not registered)."""
    return CAPTION_METHODS[name].label if name in CAPTION_METHODS else name
