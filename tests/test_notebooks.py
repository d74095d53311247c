"""The notebooks run, and the committed ones show a full run of their own sources.

Each ``notebooks/<name>.ipynb`` is built from ``notebooks/src/<name>.py`` and executed by
``tools/run_notebooks.py`` (see its docstring). Here:

- every committed notebook runs top to bottom in quick mode (``DNNGUIDE_NOTEBOOK_QUICK=1``) in a
  scratch folder; a failing cell fails the test, and nothing is written next to the notebooks;
- every committed notebook carries the outputs of one full run of its source: an output for
  every code cell, no error, at least one PNG plot, and every claim of its "What we saw" text
  supported by that run;
- the README links every notebook.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCES = sorted((ROOT / "notebooks" / "src").glob("*.py"))
IDS = [path.stem for path in NOTEBOOKS]


def _load_runner():
    path = ROOT / "tools" / "run_notebooks.py"
    spec = importlib.util.spec_from_file_location("run_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _outputs(notebook):
    return [output for cell in _code_cells(notebook) for output in cell.get("outputs", [])]


def test_every_source_is_a_notebook():
    assert NOTEBOOKS
    assert [p.stem for p in NOTEBOOKS] == [p.stem for p in SOURCES]


def test_percent_format_cells():
    text = ("ignored before the first marker\n"
            "# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n"
            "# %%\nx = 1\n\nprint(x)\n\n"
            "# %%\n\n# %% [markdown]\n# The end.\n")
    assert runner.parse_cells(text) == [("markdown", "# Title\n\nSome *text*."),
                                        ("code", "x = 1\n\nprint(x)"), ("markdown", "The end.")]
    with pytest.raises(ValueError, match="must start with '#'"):
        runner.parse_cells("# %% [markdown]\nnot a comment\n")


@pytest.mark.slow  # about a minute each: a kernel, TensorFlow, a few tiny fits
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DNNGUIDE_NOTEBOOK_QUICK", "1")
    # The kernel (a child process: it inherits this environment) imports this checkout's dnnguide.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    notebook = nbformat.read(path, as_version=4)
    for cell in _code_cells(notebook):
        cell.outputs, cell.execution_count = [], None
    before = sorted(p.relative_to(ROOT) for p in (ROOT / "notebooks").rglob("*"))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on error
    assert not [o for o in _outputs(notebook) if o.get("output_type") == "error"]
    assert any(tmp_path.iterdir())  # its runs, plots and searches went where it ran...
    assert sorted(p.relative_to(ROOT) for p in (ROOT / "notebooks").rglob("*")) == before


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_shows_a_full_run_of_its_source(path):
    notebook = nbformat.read(path, as_version=4)
    regenerate = f"regenerate it: python tools/run_notebooks.py --only {path.stem}"
    built = runner.build_notebook(ROOT / "notebooks" / "src" / f"{path.stem}.py")
    assert [(c.cell_type, c.source) for c in notebook.cells] == \
        [(c.cell_type, c.source) for c in built.cells], f"{path.name} is stale: {regenerate}"
    assert notebook.metadata.get("dnnguide", {}).get("quick") is False, \
        f"{path.name} does not carry a full run: {regenerate}"
    code = _code_cells(notebook)
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), \
        f"{path.name} was not executed top to bottom in one go: {regenerate}"
    silent = [c.id for c in code if not c.get("outputs")]
    assert not silent, f"code cells without output in {path.name}: {silent}"
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert not [o for o in outputs if "Traceback" in o.get("text", "")]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no plot"
    assert runner.failed_claims(notebook) == [], \
        f"{path.name} says what its own run does not support: fix notebooks/src/{path.stem}.py"


def test_readme_links_every_notebook():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if f"](notebooks/{p.name})" not in readme]
    assert not missing, f"README.md does not link {missing}"
    assert "python tools/run_notebooks.py" in readme
