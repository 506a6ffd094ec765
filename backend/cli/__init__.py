"""Command line: ``python -m backend <command>``, one small module per command group.

    python -m backend info                      what the workspace holds
    python -m backend demo build [--tiny]       build the synthetic world (resumable)
    python -m backend demo export-nsd DIR       write the world in the NSD release layout
    python -m backend demo export-algonauts DIR write the world in the Algonauts 2023 layout
    python -m backend import nsd DIR --subject subj01 [--sessions 1-40]
    python -m backend import algonauts DIR --subject subj01
    python -m backend models train [all|embedder|judge|captioner|generator] [--seed 0]
    python -m backend models extend-embedder    the caption words the embedder lacks (after a grammar change)
    python -m backend encoder fit [--subject subj01] [--cv gcv|loo] [--device cpu]
    python -m backend encoder halves            the same encoders on each half of the training images
    python -m backend captions all              demo bank, BrainSCUBA + LaVCa captions, evaluation
    python -m backend captions search "food" [--semantic]
    python -m backend attention fit|compare|evaluate   the attention-routing encoder vs ridge and ground truth
    python -m backend attention map OUT.png --stim-id 7   every ROI's attention over one image
    python -m backend simulate check|respond IMG.png   the demo world's subjects looking at any image
    python -m backend synthesis run "FFA-1 - PPA" --seeds 32 --out kept.png   BrainDiVE (stored, resumable)
    python -m backend synthesis evaluate         every category ROI held to the simulated subjects
    python -m backend reconstruction evaluate    Brain-IT vs ridge, full and 1-hour data, the field's metrics
    python -m backend figure rois OUT.png       render the ROI map (PyVista, off-screen)
    python -m backend figure overlay OUT.png --overlay concept --concept "a smiling face"
    python -m backend jobs submit world|encoders|captions; jobs list; jobs cancel ID; jobs worker

``--workspace PATH`` (or $VOXELSCOPE_WORKSPACE) selects the workspace folder. Each group registers its
subcommands with ``set_defaults(func=...)``; ``main`` dispatches through the parser. Errors a user can
fix (:class:`backend.errors.VoxelScopeError`, missing files) print as ``error: <message>`` with exit code 2.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import VoxelScopeError
from . import (attention, captions, datasets, demo, encoder, figure, info, jobs, models, reconstruction, simulate,
               synthesis)

__all__ = ["main", "build_parser", "GROUPS"]

GROUPS = (info, demo, datasets, models, encoder, captions, attention, simulate, synthesis, reconstruction, figure, jobs)


WORKSPACE_HELP = "workspace folder (default $VOXELSCOPE_WORKSPACE or ./workspace)"


def _commands(parser: argparse.ArgumentParser):
    """The parsers of every (sub)command below ``parser`` that takes no further subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in action.choices.values():
            yield from _commands(child)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: every command group's subcommands, each with its handler as ``func``.
    ``--workspace`` is accepted before the command and after it."""
    p = argparse.ArgumentParser(prog="python -m backend", description="VoxelScope backend")
    p.add_argument("--workspace", help=WORKSPACE_HELP)
    sub = p.add_subparsers(dest="cmd", required=True)
    for group in GROUPS:
        group.add_parser(sub)
    for command in _commands(p):
        if command is not p:  # SUPPRESS: not given after the command, the value before it stays
            command.add_argument("--workspace", default=argparse.SUPPRESS, help=WORKSPACE_HELP)
    return p


def main(argv=None) -> int:
    """Parse ``argv``, run the chosen command on the workspace; returns the exit code (2 for a user error)."""
    from ..store import Workspace

    args = build_parser().parse_args(argv)
    if getattr(args, "device", None) == "auto":
        from ..models import default_device

        args.device = default_device()
    ws = Workspace(args.workspace)
    try:
        return args.func(ws, args)
    except (VoxelScopeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
