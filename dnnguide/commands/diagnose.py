"""``dnnguide diagnose RUN_DIR``: per-layer gradient/activation diagnostics of a run.

Reads the ``diagnostics.csv`` a run recorded (``dnnguide train ... --diagnose``), prints
the last record per layer and the pathologies found, and writes the plots into the
run's ``plots/`` folder. A run without diagnostics (or ``--check``) gets a one-shot
:func:`dnnguide.diagnostics.check_model` of its saved model on its own training data
(plots named ``check_*.png``).

Examples::

    dnnguide train --preset default --data mnist1d --depth 20 --diagnose
    dnnguide diagnose runs/20260101T120000Z-default
    dnnguide diagnose runs/20260101T120000Z-default --check --rows 512
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "diagnose", help="vanishing/exploding gradients, dead and saturated units of a run",
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[8:]).replace("::", ":"))
    p.add_argument("run_dir", help="a run directory (with config.json)")
    p.add_argument("--check", action="store_true",
                   help="run a one-shot check of the saved model even if diagnostics were recorded")
    p.add_argument("--rows", type=int, default=256,
                   help="training rows in the probe batch of a one-shot check (default 256)")
    p.add_argument("--no-plots", action="store_true", help="print only; write no PNGs")
    p.set_defaults(func=_diagnose)


def _diagnose(args, _overrides) -> int:
    import sys

    import pandas as pd

    from dnnguide.config import check_range
    from dnnguide.diagnostics import (
        DIAGNOSTICS_CSV, DiagnosticsReport, check_model, find_pathologies, load_diagnostics,
        save_plots,
    )
    from dnnguide.runs import member_dirs, open_run

    check_range("rows", args.rows, 1, integer=True)
    run = open_run(args.run_dir)
    if run.config.nets > 1:
        members = [str(p) for p in member_dirs(run.path)]
        raise SystemExit(f"dnnguide diagnose: run {run.path} is an ensemble of "
                         f"{run.config.nets} nets; diagnostics look at one net's layers. "
                         f"Diagnose one of its members: {' '.join(members)}")
    if (run.path / DIAGNOSTICS_CSV).exists() and not args.check:
        frame = load_diagnostics(run.path)
        last = frame[frame["step"] == frame["step"].max()]
        report = DiagnosticsReport(last.reset_index(drop=True), find_pathologies(frame))
        source = (f"recorded during training ({frame['step'].nunique()} records, steps "
                  f"{frame['step'].min()}-{frame['step'].max()}); last record:")
        activations, prefix = None, ""
    else:
        try:
            data = run.dataset()
        except ValueError as exc:  # trained on in-memory arrays: nothing to probe with
            print(f"dnnguide diagnose: error: {exc}", file=sys.stderr)
            return 2
        report = check_model(run.model(), data.x_train[:args.rows], data.y_train[:args.rows])
        frame, activations, prefix = report.frame, report.activations, "check_"
        source = f"one-shot check of the saved model on {min(args.rows, len(data.x_train))} " \
                 "training rows:"
    print(f"{run.path}: diagnostics {source}")
    with pd.option_context("display.width", 200):
        print(report)
    if not args.no_plots:
        for path in save_plots(frame, run.plots_dir, activations, prefix=prefix):
            print(f"plot: {path}")
    return 0
