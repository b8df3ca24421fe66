"""The packages' import layers: no import cycle between modules and no import up the layers.

    envs, rewards, analysis  <  runconfig  <  factories  <  learning  <  launch  <  bench  <  scripts

A module may import its own package and the packages of lower layers, nothing above. Every
import counts, function-local ones included (a cycle through a function-local import is still a
cycle). The imports are read with `ast`, so nothing is executed and no simulator is loaded.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS: tuple[tuple[str, ...], ...] = (("envs", "rewards", "analysis"), ("runconfig",), ("factories",), ("learning",),
                                       ("launch",), ("bench",), ("scripts",))


def modules(root: Path, packages: list[str]) -> dict[str, Path]:
    """{dotted module name: file} of every .py file under the packages."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = f.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the project modules it imports}; `from a.b import c` counts a.b.c when that is a
    module, else a.b; relative imports are resolved against the importing module's package."""
    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    out: dict[str, set[str]] = {}
    for name, f in mods.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                found.update(m for a in node.names if (m := known(a.name)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for a in node.names:
                    m = known(f"{base}.{a.name}") or known(base)
                    if m:
                        found.add(m)
        found.discard(name)
        out[name] = found
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]], layers: tuple[tuple[str, ...], ...]) -> list[str]:
    """'a.x -> b.y' for every import of a higher layer's package."""
    level = {pkg: i for i, group in enumerate(layers) for pkg in group}
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                  if level[d.split(".")[0]] > level[m.split(".")[0]])


def test_the_packages_have_no_import_cycle_and_no_import_up_the_layers() -> None:
    packages = [p for group in LAYERS for p in group]
    mods = modules(ROOT, packages)
    assert {name.split(".")[0] for name in mods} == set(packages)  # every layer's package was read
    graph = imports(mods)
    assert sum(len(d) for d in graph.values()) > 100  # the project's imports were found
    assert cycles(graph) == []
    assert upward(graph, LAYERS) == []


def test_the_check_finds_a_cycle_and_an_import_up(tmp_path: Path) -> None:
    files = {"low/__init__.py": "", "low/a.py": "from low import b\n", "low/b.py": "def f():\n    import low.a\n",
             "high/__init__.py": "", "high/c.py": "from low.a import thing\n",
             "low/d.py": "from high import c\n", "low/e.py": "from .a import thing\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = imports(modules(tmp_path, ["low", "high"]))
    assert graph["low.e"] == {"low.a"} and graph["high.c"] == {"low.a"}
    assert cycles(graph) == [["low.a", "low.b"]]
    assert upward(graph, (("low",), ("high",))) == ["low.d -> high.c"]
