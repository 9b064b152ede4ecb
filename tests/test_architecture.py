"""The architecture of docs/architecture.md, enforced: layers, no cycles, figures only in
figure modules (import-linter, contracts in pyproject.toml), imports at module top, no search
named in the engine, module sizes."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "zprime"
MODULES = sorted(SRC.rglob("*.py"))

#: dependencies that may be imported inside a function: optional and heavy (each such import
#: carries a comment saying so)
LAZY_ALLOWED = (
    "torch",
    "dask",
    "distributed",
    "pythia8mc",
    "pyhf",
    "uproot",
    "hepdata_lib",
    "hepdata_validator",
    "zprime.analyses.invisible_zprime.punzinet",  # imports torch
    "zprime.cli",  # zprime/__main__.py: a Ctrl-C while the command line imports is one line
)
#: the engine: the layers that must know no search
ENGINE = ("pipeline", "stats", "detector", "generators", "physics", "io", "report")


def test_import_contracts_hold() -> None:
    """Layers, acyclic siblings, matplotlib only in figure modules, the engine imports no
    analysis (``lint-imports`` with the contracts of pyproject.toml)."""
    # lint-imports configures logging with disable_existing_loggers: every logger made before
    # it (zprime's) would stay disabled for the rest of the process, and tests that read
    # warnings through caplog after this one in the same worker would see nothing
    enabled = [
        lg
        for lg in logging.Logger.manager.loggerDict.values()
        if isinstance(lg, logging.Logger) and not lg.disabled
    ]
    try:
        status = lint_imports(
            config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True
        )
    finally:
        for lg in enabled:
            lg.disabled = False
    assert status == 0, "import contracts broken (run `lint-imports` for the report)"


def _function_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    found += [(sub.lineno, a.name) for a in sub.names]
                elif isinstance(sub, ast.ImportFrom) and sub.module:
                    found.append((sub.lineno, sub.module))
    return found


def test_imports_sit_at_module_top() -> None:
    """An import inside a function hides the dependency graph; allowed only for optional heavy
    dependencies."""
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in MODULES
        for line, module in _function_imports(path)
        if not any(module == lazy or module.startswith(lazy + ".") for lazy in LAZY_ALLOWED)
    ]
    assert not bad, "imports inside functions:\n" + "\n".join(bad)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes of a module and its classes and functions."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


@pytest.mark.parametrize("layer", ENGINE)
def test_the_engine_names_no_search(layer: str) -> None:
    """No branch on an analysis name outside analyses/: no string in the engine's code names a
    search, and the engine never reads ``config.analysis`` (the registry does). Docstrings may
    point to an analysis as an example."""
    names = ("invisible_zprime", "dark_higgs", "tautau_resonance")
    for path in sorted((SRC / layer).rglob("*.py")):
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            named = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if named and id(node) not in docs and any(n in node.value for n in names):
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} names a search")
            if isinstance(node, ast.Attribute) and node.attr == "analysis":
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} reads .analysis")


def test_long_modules_say_why() -> None:
    """A module over 800 lines gives the reason in its docstring ("Length: ...")."""
    long = []
    for path in MODULES:
        text = path.read_text()
        if text.count("\n") > 800:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Length: " not in doc:
                long.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not long, "modules over 800 lines without a reason:\n" + "\n".join(long)
