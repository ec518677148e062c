"""The layers stay apart (docs/design.md, layout): the analysis and the tracking schema never
import torch, Ray, torchvision or open_clip, not even through another vlscale module or inside a
function; tracking imports nothing from the platform or the analysis; the platform uses the
analysis only in the sweep's report step.

The import graph is read statically with `ast` from every file of the package: module-level and
function-level imports, relative imports, the parent packages an import runs, and the module
names a module hands to `importlib.import_module` as string literals (the lazy tracking API, the
CLI's command list). Imports under `if TYPE_CHECKING:` never run and are left out. A violation
fails with the chain of imports that leads to it, file and line at each step.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "vlscale"
HEAVY = ("torch", "ray", "torchvision", "open_clip")
LIGHT_LAYERS = ("vlscale.analysis", "vlscale.tracking")
REPORT_STEP = ("vlscale.platform.sweep.driver", "_report")
"""The one place the platform calls the analysis: the sweep's final (and periodic) report."""


@dataclass(frozen=True)
class Import:
    target: str  # the imported module (absolute)
    module: str  # the importing module
    line: int
    function: str  # the enclosing function ("" at module level)

    def __str__(self) -> str:
        where = f" in {self.function}()" if self.function else ""
        return f"{self.module}:{self.line}{where} imports {self.target}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module, self.known = module, known
        self.package = module if is_package else module.rpartition(".")[0]
        self.functions: list[str] = []
        self.imports: list[Import] = []
        self.strings: list[tuple[str, int]] = []
        self.dynamic = False

    def _add(self, target: str, node: ast.AST) -> None:
        self.imports.append(Import(target, self.module, node.lineno, ".".join(self.functions)))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):  # never runs: only the else branch counts
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[:len(self.package.split(".")) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        self._add(source, node)
        for alias in node.names:  # `from vlscale.platform import sweep` imports a module
            if f"{source}.{alias.name}" in self.known:
                self._add(f"{source}.{alias.name}", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "import_module":
            self.dynamic = True
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value in self.known:
            self.strings.append((node.value, node.lineno))


def import_graph(root: Path) -> dict[str, list[Import]]:
    """Module -> the imports it runs, for every module of the package at `root`."""
    files = {module_name(root, path): path for path in sorted(root.rglob("*.py"))}
    known = set(files)
    graph: dict[str, list[Import]] = {}
    for module, path in files.items():
        collector = _Collector(module, path.name == "__init__.py", known)
        collector.visit(ast.parse(path.read_text(), str(path)))
        imports = list(collector.imports)
        if collector.dynamic:  # importlib.import_module("vlscale.x") over literal names
            imports += [Import(name, module, line, "") for name, line in collector.strings]
        graph[module] = imports
    return graph


def _runs(target: str, known: set[str]) -> list[str]:
    """The vlscale modules an import of `target` executes: it and its parent packages."""
    parts = target.split(".")
    return [name for name in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
            if name in known]


def chains_to(graph: dict[str, list[Import]], start: str, bad) -> list[list[Import]]:
    """Every shortest import chain from `start` to an import for which `bad(import)` holds
    (breadth-first over the vlscale modules that `start` runs, transitively)."""
    known = set(graph)
    paths: dict[str, list[Import]] = {name: [] for name in _runs(start, known)}
    queue = list(paths)
    found = []
    while queue:
        module = queue.pop(0)
        for edge in graph[module]:
            if bad(edge):
                found.append([*paths[module], edge])
            for reached in _runs(edge.target, known):
                if reached not in paths:
                    paths[reached] = [*paths[module], edge]
                    queue.append(reached)
    return found


def _in(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _format(chains: list[list[Import]]) -> str:
    return "\n".join(" -> ".join(map(str, chain)) for chain in chains)


def light_layer_violations(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """Chains from an analysis or tracking module to torch / Ray / torchvision / open_clip."""
    return [chain for module in graph if _in(module, *LIGHT_LAYERS)
            for chain in chains_to(graph, module, lambda edge: _in(edge.target, *HEAVY))]


def tracking_violations(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """Chains from a tracking module into the platform or the analysis."""
    return [chain for module in graph if _in(module, "vlscale.tracking")
            for chain in chains_to(graph, module, lambda edge: _in(
                edge.target, "vlscale.platform", "vlscale.analysis"))]


def platform_violations(graph: dict[str, list[Import]]) -> list[Import]:
    """Platform imports of the analysis outside the sweep's report step."""
    return [edge for module, edges in graph.items() if _in(module, "vlscale.platform")
            for edge in edges if _in(edge.target, "vlscale.analysis")
            and (edge.module, edge.function) != REPORT_STEP]


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph(PACKAGE_DIR)


def test_analysis_and_tracking_never_import_torch_or_ray(graph):
    assert {"vlscale.analysis", "vlscale.tracking.runs"} <= set(graph)
    chains = light_layer_violations(graph)
    assert not chains, "the analysis / tracking layer reaches a heavy library:\n" + _format(chains)


def test_tracking_imports_neither_platform_nor_analysis(graph):
    chains = tracking_violations(graph)
    assert not chains, "vlscale.tracking depends on an upper layer:\n" + _format(chains)


def test_platform_uses_the_analysis_only_in_the_report_step(graph):
    edges = platform_violations(graph)
    assert not edges, ("the platform imports the analysis outside "
                       f"{REPORT_STEP[0]}.{REPORT_STEP[1]}():\n" + "\n".join(map(str, edges)))
    allowed = [edge for edge in graph[REPORT_STEP[0]] if _in(edge.target, "vlscale.analysis")]
    assert allowed, f"{REPORT_STEP} no longer imports the analysis: update REPORT_STEP"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "vlscale"


def test_checker_names_the_chain_through_function_level_and_relative_imports(tmp_path):
    """The rules catch what they claim: a heavy import two vlscale modules away, inside a
    function, reached by a relative import; TYPE_CHECKING-only imports do not count."""
    root = _write(tmp_path, {
        "vlscale/__init__.py": "",
        "vlscale/analysis/__init__.py": "from .fit import law\n",
        "vlscale/analysis/fit.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                import torch
            def law():
                from vlscale.platform import models
            """,
        "vlscale/platform/__init__.py": "",
        "vlscale/platform/models.py": "import vlscale.tracking.runs\nimport torch.nn\n",
        "vlscale/platform/sweep.py": "def plan():\n    from vlscale.analysis import fit\n",
        "vlscale/tracking/__init__.py": "",
        "vlscale/tracking/runs.py": "import mlflow\n",
        "vlscale/tracking/lazy.py": """\
            import importlib
            NAMES = ("vlscale.analysis.fit",)
            def get(i):
                return importlib.import_module(NAMES[i])
            """,
    })
    graph = import_graph(root)
    text = _format(light_layer_violations(graph))
    assert ("vlscale.analysis.fit:5 in law() imports vlscale.platform.models -> "
            "vlscale.platform.models:2 imports torch.nn") in text, text
    assert "vlscale.analysis.fit:3" not in text, "a TYPE_CHECKING import never runs"
    tracking = _format(tracking_violations(graph))
    assert "vlscale.tracking.lazy:2 imports vlscale.analysis.fit" in tracking, tracking
    assert {str(edge) for edge in platform_violations(graph)} == {
        "vlscale.platform.sweep:2 in plan() imports vlscale.analysis",
        "vlscale.platform.sweep:2 in plan() imports vlscale.analysis.fit"}


@pytest.mark.parametrize("package", LIGHT_LAYERS)
def test_importing_the_layer_loads_neither_torch_nor_ray(package):
    code = (f"import sys, {package}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
