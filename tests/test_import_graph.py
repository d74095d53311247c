"""The import graph of dnnguide points one way: config -> guidelines -> building blocks ->
capabilities -> runners -> CLI.

Every ``import`` and ``from ... import`` of a dnnguide module (function-level ones included, read
with ``ast``) must go to a module of the same or a lower level. A new module must be given a
level here, which is the moment to decide where it belongs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dnnguide"

#: Level of each module (a package's submodules inherit the package's level).
LEVELS = {
    # leaves: no dnnguide imports (config, data and uncertainty are packages: their modules,
    # one way down inside, share the package's level)
    "config": 0, "plotting": 0, "_startup": 0,
    # the guideline tables, and data preparation that only needs the config
    "guidelines": 1, "guideline_tables": 1, "data": 1, "data_rules": 1, "tables": 1,
    # building blocks: config -> Keras objects, and the run-directory store they are saved in
    "presets": 2, "layers": 2, "optimizers": 2, "schedules": 2, "runs": 2, "targets": 2,
    "learning_curves": 2,
    # capabilities built on the blocks
    "calibration": 3, "calibration_plots": 3, "uncertainty": 3, "uncertainty_report": 3, "lr_finder": 3, "diagnostics": 3, "distribute": 3,
    "multi_worker": 3, "checkpoint": 3, "compress": 3, "auditing": 2,
    "fit_setup": 3, "fit_results": 3,
    # runners: train models (tuning runs its trials with training's callbacks)
    "training": 4, "tuning": 4, "predict": 4, "resume": 4, "transfer": 4, "pretrain": 4,
    "ensemble": 4, "cross_fit": 4,
    # the command line
    "cli": 5, "commands": 5,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _level(module: str) -> int | None:
    parts = module.split(".")
    return LEVELS.get(parts[1]) if len(parts) > 1 else None


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path, *, top_level: bool = False) -> list[tuple[int, str]]:
    """(line, dnnguide module) for every import in a file (``top_level``: module-level only).

    A bare ``import dnnguide`` is left out: importing any submodule loads the package first,
    so it adds no edge. ``from dnnguide import name`` counts as an import of the facade
    (level of the CLI) unless ``name`` is a submodule.
    """
    found = []
    tree = ast.parse(path.read_text())
    for node in tree.body if top_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.startswith("dnnguide.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "dnnguide":
                for alias in node.names:
                    name = f"dnnguide.{alias.name}"
                    found.append((node.lineno, name if _is_module(name) else "dnnguide.cli"))
            elif node.module.startswith("dnnguide."):
                found.append((node.lineno, node.module))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _module_name(p) != "dnnguide")


def test_every_module_has_a_level():
    missing = sorted({_module_name(p) for p in MODULES if _level(_module_name(p)) is None})
    assert not missing, f"Give these modules a level in LEVELS: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_point_down(path):
    module = _module_name(path)
    level = _level(module)
    upward = [f"line {line}: {target} (level {_level(target)})"
              for line, target in _imports(path)
              if _level(target) is not None and _level(target) > level]
    assert not upward, f"{module} (level {level}) imports upward: {upward}"


def test_the_checker_sees_an_upward_import(tmp_path):
    # A test that cannot fail is a defect: a config module importing training must be caught.
    fake = tmp_path / "config.py"
    fake.write_text("def f():\n    from dnnguide.training import fit\n")
    assert _imports(fake) == [(2, "dnnguide.training")]
    assert _level("dnnguide.training") > _level("dnnguide.config")


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (module -> the modules it imports), or []."""
    state: dict[str, str] = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target, path + [target])
                if found:
                    return found
        state[module] = "done"
        return []

    for module in sorted(graph):
        found = [] if module in state else visit(module, [module])
        if found:
            return found
    return []


def test_module_level_imports_form_no_cycle():
    # Same-level imports are allowed, so levels alone would let two modules (say, two modules of
    # one package) import each other. What a module imports when it loads must point one way
    # too; imports inside functions are how a module defers one, and are left out.
    graph = {_module_name(p): {target for _, target in _imports(p, top_level=True)}
             for p in MODULES}
    assert not _cycle(graph), f"Import cycle: {' -> '.join(_cycle(graph))}"
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
