"""The README's command lines run as written: every `python -m backend` line parses with the real parser, and
the ones that need only the tiny world run."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from backend.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = (["python", "-m", "backend"], [".venv/bin/python", "-m", "backend"])


def readme_commands() -> list[list[str]]:
    """The argument lists (after ``python -m backend``) of every command in the README: fenced shell lines
    (continuations joined, comments dropped) and inline code spans."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            out.append(shlex.split(line, comments=True))
    for span in re.findall(r"`([^`\n]*python -m backend[^`\n]*)`", text):
        out.append(shlex.split(span))
    cmds = []
    for words in out:
        for prefix in PREFIXES:
            if words[: len(prefix)] == prefix and len(words) > len(prefix):
                cmds.append(words[len(prefix):])
    return cmds


def test_every_readme_command_parses_with_the_real_parser():
    cmds = readme_commands()
    assert len(cmds) >= 15, cmds  # the README's command block, the training line and the inline ones
    parser = build_parser()
    for args in cmds:
        ns = parser.parse_args(args)  # argparse exits (fails the test) on anything it does not accept
        assert callable(ns.func), args


def test_workspace_is_accepted_before_and_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["--workspace", "A", "info"]).workspace == "A"
    assert parser.parse_args(["import", "nsd", "R", "--subject", "subj01", "--workspace", "B"]).workspace == "B"
    assert parser.parse_args(["captions", "all"]).workspace is None


def test_readme_commands_that_need_only_the_tiny_world_run_as_written(tiny_ws, tmp_path):
    env = {**os.environ, "VOXELSCOPE_WORKSPACE": str(tiny_ws.path), "HF_HUB_OFFLINE": "1"}
    names = {"OUT_DIR": str(tmp_path / "algonauts"), "ALGONAUTS_ROOT": str(tmp_path / "algonauts"),
             "WS": str(tmp_path / "imported"), "OUT.png": str(tmp_path / "rois.png")}
    wanted = [["info"], ["demo", "export-algonauts", "OUT_DIR"], ["import", "algonauts", "ALGONAUTS_ROOT"],
              ["figure", "rois", "OUT.png"]]
    cmds = [c for c in readme_commands() if any(c[: len(w)] == w for w in wanted)]
    assert len(cmds) == len(wanted), cmds
    for args in cmds:
        run = [names.get(a, a) for a in args]
        res = subprocess.run([sys.executable, "-m", "backend", *run], cwd=ROOT, env=env, capture_output=True, text=True)
        assert res.returncode == 0, (run, res.stderr[-1500:])
    assert (tmp_path / "rois.png").stat().st_size > 10_000
    from backend.store import Workspace, subjects

    assert subjects(Workspace(tmp_path / "imported")) == ["subj01"]
