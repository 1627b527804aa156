"""The engine's layers import downward only and no module graph has a cycle (read with ast, no
code executed). Layers, bottom to top: base <- data <- models <- training <- analysis <- live <- cli;
the package's own API modules (``poco_core/__init__``, ``demo``, ``_moved``) sit above the engine,
and nothing imports ``cli`` except ``cli`` itself."""
from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("base", "data", "models", "training", "analysis", "live", "cli")
API = "api"  # poco_core/__init__.py and the top-level modules beside the subpackages


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every poco_core module `path` imports, anywhere in the file (function bodies included)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from pkg import submodule`
    return {m for m in found if m == "poco_core" or m.startswith("poco_core.")}


def module_graph(root: Path, package: str = "poco_core") -> dict[str, set[str]]:
    """module -> the modules of the package it imports (names that are not modules are dropped)."""
    files = {module_name(p, root): p for p in (root / package).rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        graph[mod] = {m for m in imports_of(path, root) if m in files and m != mod}
    return graph


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else API


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)} | {API: len(LAYERS)}
    bad = []
    for mod, deps in graph.items():
        for dep in deps:
            src, dst = layer_of(mod), layer_of(dep)
            if dst == "cli" and src != "cli":
                bad.append(f"{mod} -> {dep} (nothing imports the CLI)")
            elif rank[dst] > rank[src]:
                bad.append(f"{mod} ({src}) -> {dep} ({dst})")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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


# -- the checks themselves, on a tiny synthetic package first -----------------------------------

def write_package(root: Path, modules: dict[str, str]) -> None:
    for name, source in modules.items():
        path = root / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        for parent in path.relative_to(root).parents:
            if str(parent) != ".":
                (root / parent / "__init__.py").touch()


def test_checker_catches_an_upward_import_and_a_cycle(tmp_path):
    write_package(tmp_path, {
        "poco_core.data.recording": "from poco_core.base.errors import PocoError\n",
        "poco_core.base.errors": "class PocoError(Exception): ...\n",
        "poco_core.training.loop": "from poco_core.data.recording import x\n",
    })
    assert upward_imports(module_graph(tmp_path)) == [] and cycles(module_graph(tmp_path)) == []
    # a deliberate upward import, inside a function body, in relative form: data -> training
    (tmp_path / "poco_core/data/recording.py").write_text("def f():\n    from ..training.loop import run\n")
    assert upward_imports(module_graph(tmp_path)) == ["poco_core.data.recording (data) -> poco_core.training.loop (training)"]
    assert cycles(module_graph(tmp_path)) == [["poco_core.data.recording", "poco_core.training.loop"]]
    # importing the CLI from anywhere else is refused too
    (tmp_path / "poco_core/data/recording.py").write_text("")
    write_package(tmp_path, {"poco_core.cli.train": "", "poco_core.live.session": "from poco_core.cli import train\n"})
    assert upward_imports(module_graph(tmp_path)) == ["poco_core.live.session -> poco_core.cli (nothing imports the CLI)",
                                                      "poco_core.live.session -> poco_core.cli.train (nothing imports the CLI)"]


def test_engine_layers_import_downward_only():
    assert upward_imports(module_graph(ROOT)) == []


def test_no_import_cycles_anywhere():
    graph = module_graph(ROOT) | module_graph(ROOT, "poco_napari")
    assert cycles(graph) == []


def test_every_module_belongs_to_a_layer():
    """Only the API modules live at the top of poco_core; everything else is in a layer."""
    top = sorted(p.name for p in (ROOT / "poco_core").glob("*.py"))
    assert top == ["__init__.py", "_moved.py", "demo.py"]
    assert sorted(p.name for p in (ROOT / "poco_core").iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


# -- old paths keep working for one release ---------------------------------------------------

@pytest.mark.parametrize("old, new", [
    ("poco_core.preprocess", "poco_core.data.preprocess"),
    ("poco_core.io.suite2p", "poco_core.data.io.suite2p"),
    ("poco_core.restore", "poco_core.training.restore"),
    ("poco_core.jobspec", "poco_core.training.jobs"),
    ("poco_core.commands.common", "poco_core.cli.common"),
])
def test_old_module_paths_are_the_new_modules_with_a_warning(old, new):
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        "print(old is new, any(issubclass(x.category, DeprecationWarning) for x in w), new.__spec__.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["True", "True", new]


def test_old_train_path_runs_the_ddp_entry_point():
    out = subprocess.run([sys.executable, "-m", "poco_core.train", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "torchrun -m poco_core.cli.train" in out.stdout and "--steps" in out.stdout


def test_checkpoint_written_before_the_move_still_loads():
    """tests/data/checkpoints/poco_v0.1.0_flat.pt was written by the flat-module release
    (scripts/make_legacy_checkpoint.py at commit 600f63d)."""
    import torch

    from poco_core.training.restore import load_model

    data = ROOT / "tests" / "data" / "checkpoints"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        model = load_model(data / "poco_v0.1.0_flat.pt")
    assert [s.session for s in model.sessions] == ["fish01"] and len(model.sessions[0].unit_ids) == 12
    io = torch.load(data / "poco_v0.1.0_flat_io.pt", weights_only=True)
    model.eval()
    with torch.no_grad():
        (y,) = model([io["x"]], ["fish01"])
    torch.testing.assert_close(y, io["y"], rtol=1e-4, atol=1e-5)
