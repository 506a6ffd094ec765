"""The layout is the architecture: data flows one way through backend/, pages only lay out and call it.

Imports are read from the source (inside functions too), so a hidden cycle or a backward import fails here.
"""
from __future__ import annotations

import ast
import importlib
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend"

# Each module's stage; a module may import only modules of its own stage or earlier ones.
# errors and the ROI constants are leaves; the store and the surface geometry are what every stage stands on;
# then datasets -> models -> encoders -> methods (captions) -> explore -> jobs -> the command line.
STAGES = [
    ("backend.cli", 10), ("backend.__main__", 10),
    ("backend.jobs", 9),
    ("backend.explore", 8),
    ("backend.captions", 7), ("backend.attention", 7), ("backend.synthesis", 7), ("backend.reconstruction", 7),
    ("backend.encoders", 6), ("backend.simulate", 6),
    ("backend.models", 5),
    ("backend.datasets", 4),
    ("backend.surface.rois", 0), ("backend.surface.overlay", 1), ("backend.executor", 1), ("backend.surface", 3),
    ("backend.store", 2),
    ("backend.errors", 0), ("backend", 0),
]
# The demo world is imported directly only by code that exists for it (nothing generic depends on it).
DEMO = "backend.datasets.demo"
DEMO_USERS = ("backend.datasets.demo", "backend.models.demo", "backend.cli", "backend.captions.banks", "backend.jobs",
              "backend.simulate")


def _modules() -> dict[str, Path]:
    mods = {}
    for f in BACKEND.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> backend modules it imports (at any depth of its code), as a module or a package."""
    graph = defaultdict(set)
    for m, f in mods.items():
        pkg = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg[: len(pkg) - node.level + 1] if node.level else []
                name = ".".join(base + ([node.module] if node.module else []))
                found = [t for t in [name] + [f"{name}.{a.name}" for a in node.names] if t in mods]
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names if a.name in mods]
            else:
                continue
            graph[m].update(t for t in found if t != m and not m.startswith(t + "."))
    return graph


def _stage(module: str) -> int:
    for prefix, stage in STAGES:
        if module == prefix or module.startswith(prefix + "."):
            return stage
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


MODS = _modules()
GRAPH = _imports(MODS)


def test_no_import_cycle_in_the_backend():
    assert _cycles(GRAPH) == []


def test_the_cycle_detector_sees_a_cycle_hidden_inside_a_function():
    fake = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(fake) == [["a", "b", "c"]]


def test_data_flows_one_way_through_the_stages():
    backward = [f"{m} (stage {_stage(m)}) imports {t} (stage {_stage(t)})"
                for m, ts in GRAPH.items() for t in ts if _stage(t) > _stage(m)]
    assert backward == []


def test_only_demo_code_imports_the_demo_world():
    users = sorted(m for m, ts in GRAPH.items() for t in ts
                   if (t == DEMO or t.startswith(DEMO + ".")) and not m.startswith(DEMO_USERS))
    assert users == []


def test_the_backend_never_imports_streamlit():
    offenders = [m for m, f in MODS.items() if re.search(r"^\s*(import|from)\s+streamlit", f.read_text(), re.M)]
    assert offenders == []


def _page_files() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "views").glob("*.py"))]


@pytest.mark.parametrize("page", _page_files(), ids=lambda p: p.name)
def test_a_page_holds_no_sql_and_uses_only_the_public_backend(page):
    text = page.read_text()
    assert not re.search(r"\b(SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET|CREATE TABLE)\b", text), "SQL in a page"
    assert ".query(" not in text and ".writer(" not in text, "a page talks to the store directly"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("backend"):
            assert node.module in MODS and MODS[node.module].name == "__init__.py", \
                f"{page.name} imports the module {node.module}: pages use a package's public names"
            public = importlib.import_module(node.module).__all__
            for a in node.names:
                assert a.name in public, f"{page.name} imports {node.module}.{a.name}, which is not in its __all__"


def test_every_subpackage_says_what_it_offers():
    for m, f in MODS.items():
        if f.name != "__init__.py" or m in ("backend", "backend.models.demo"):
            continue
        mod = importlib.import_module(m)
        assert mod.__doc__ and getattr(mod, "__all__", None), f"{m} has no docstring or __all__"
        missing = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert missing == [], f"{m}.__all__ names what it does not define: {missing}"


def test_the_largest_page_is_short():
    assert max(len(p.read_text().splitlines()) for p in _page_files()) < 320


def test_the_page_side_of_the_backend_imports_without_torch():
    """Pages that read stored results start fast: importing what they import does not load torch (3-4 s on 2
    cores); only computing (fitting, embedding a query, generating) loads it."""
    import subprocess
    import sys

    code = ("import sys, backend.store, backend.surface, backend.captions, backend.explore, backend.jobs, "
            "backend.datasets, backend.models; print(sorted(m for m in ('torch', 'transformers', 'sklearn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
