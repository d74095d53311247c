"""Build the notebooks from their sources and execute them, saving the outputs.

The cells of ``notebooks/<name>.ipynb`` are written in ``notebooks/src/<name>.py`` (jupytext's
"percent" format: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines
start with ``# ``). This script turns each source into a notebook, executes it top to bottom in a
scratch folder (runs and plots go there, never into the repository) and saves it with its
outputs, plots embedded as PNGs:

    python tools/run_notebooks.py                 # every notebook, full mode: refresh the outputs
    python tools/run_notebooks.py --only 03 05    # those whose name starts with 03 or 05
    python tools/run_notebooks.py --quick         # quick mode (DNNGUIDE_NOTEBOOK_QUICK=1): checks
                                                  # that they run; the committed files are untouched
    python tools/run_notebooks.py --check         # are the committed cells those of the sources?

A full run records ``metadata["dnnguide"] = {"quick": false, ...}`` in each notebook (the tests
check it). The kernel imports the ``dnnguide`` of this checkout (its root is put first on
``PYTHONPATH``). Each notebook's last cells check the claims of its "What we saw" text against
its own results; a full run whose claims fail still saves the notebook, lists the failed claims
and exits with status 1, so the text gets fixed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
QUICK_ENV = "DNNGUIDE_NOTEBOOK_QUICK"
#: What a claim check prints when the run does not support the claim (see the notebooks' end).
FAILED_CLAIM = "NOT IN THIS RUN:"
CELL_MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?\s*$")


def sources(only=()) -> list[Path]:
    """The notebook sources, those whose name starts with one of ``only`` if given."""
    paths = sorted(SOURCES.glob("*.py"))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(prefix) for prefix in only)]
        if not paths:
            raise SystemExit(f"No notebook source in {SOURCES} starts with {list(only)}.")
    return paths


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``[(cell_type, source), ...]`` of a percent-format file (text before the first marker
    is ignored; a markdown cell's lines lose their ``# `` prefix)."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = CELL_MARKER.match(line)
        if match:
            cells.append(("markdown" if match["markdown"] else "code", []))
        elif cells:
            kind, lines = cells[-1]
            if kind == "markdown":
                if line and not line.startswith("#"):
                    raise ValueError(f"A markdown line must start with '#': {line!r}")
                line = line[2:] if line.startswith("# ") else line[1:]
            lines.append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells if any(lines)]


def build_notebook(source: Path):
    """The notebook of ``source``, without outputs (cell ids are stable: ``cell-NN``)."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    for index, (kind, text) in enumerate(parse_cells(source.read_text())):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(text, id=f"cell-{index:02d}"))
    notebook.metadata.update({
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    return notebook


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("dnnguide", "keras", "tensorflow", "keras-tuner"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def execute(notebook, workdir: Path, *, quick: bool, timeout: int = 3600) -> float:
    """Run ``notebook`` in place in ``workdir``; returns the seconds it took.

    Raises nbclient's ``CellExecutionError`` on the first failing cell.
    """
    from nbclient import NotebookClient

    os.environ[QUICK_ENV] = "1" if quick else "0"  # the kernel inherits this environment
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return time.perf_counter() - start


def failed_claims(notebook) -> list[str]:
    """Lines the claim checks printed for claims this run does not support."""
    lines = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            lines += [line.strip() for line in text.splitlines() if FAILED_CLAIM in line]
    return lines


def check_sources(paths) -> int:
    """1 if a committed notebook's cells differ from its source's (or it is missing)."""
    import nbformat

    stale = []
    for source in paths:
        target = NOTEBOOKS / f"{source.stem}.ipynb"
        built = [(c.cell_type, c.source) for c in build_notebook(source).cells]
        committed = ([(c.cell_type, c.source) for c in nbformat.read(target, as_version=4).cells]
                     if target.exists() else None)
        if committed != built:
            stale.append(target.name)
    for name in stale:
        print(f"{name}: its cells differ from notebooks/src; run python tools/run_notebooks.py "
              f"--only {name.split('_')[0]}")
    return 1 if stale else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=(), metavar="PREFIX",
                        help="notebooks whose name starts with one of these (e.g. 03)")
    parser.add_argument("--quick", action="store_true",
                        help=f"quick mode ({QUICK_ENV}=1); the committed notebooks are not written")
    parser.add_argument("--check", action="store_true",
                        help="only compare the committed notebooks' cells with the sources")
    parser.add_argument("--output", type=Path,
                        help="write the executed notebooks here instead (default: notebooks/ in "
                             "full mode, nowhere in quick mode)")
    parser.add_argument("--keep", action="store_true",
                        help="keep each scratch folder (runs, plots)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    import nbformat

    paths = sources(args.only)
    if args.check:
        return check_sources(paths)
    output = args.output or (None if args.quick else NOTEBOOKS)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    failures, claims, times = [], {}, {}
    for source in paths:
        notebook = build_notebook(source)
        workdir = Path(tempfile.mkdtemp(prefix=f"dnnguide-{source.stem}-"))
        print(f"{source.stem}: running in {mode} mode in {workdir} ...", flush=True)
        try:
            seconds = execute(notebook, workdir, quick=args.quick, timeout=args.timeout)
        except Exception as exc:  # noqa: BLE001 - report every notebook, then fail
            failures.append(source.stem)
            print(f"{source.stem}: FAILED\n{exc}", file=sys.stderr, flush=True)
            continue
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        times[source.stem] = seconds
        notebook.metadata["dnnguide"] = {
            "quick": args.quick, "seconds": round(seconds, 1),
            "executed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": source.relative_to(ROOT).as_posix(), "versions": _versions(),
        }
        claims[source.stem] = failed_claims(notebook)
        if output is not None:
            nbformat.write(notebook, output / f"{source.stem}.ipynb")
        print(f"{source.stem}: done in {seconds:.0f} s"
              + (f", written to {output / (source.stem + '.ipynb')}" if output else ""), flush=True)
    print(f"\n{mode} mode: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
          + f"; total {sum(times.values()):.0f} s")
    unsupported = {k: v for k, v in claims.items() if v}
    if unsupported and not args.quick:
        print("\nClaims of a 'What we saw' text this run does not support (fix the text in "
              "notebooks/src):")
        for stem, lines in unsupported.items():
            for line in lines:
                print(f"  {stem}: {line}")
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures or (unsupported and not args.quick) else 0


if __name__ == "__main__":
    sys.exit(main())
