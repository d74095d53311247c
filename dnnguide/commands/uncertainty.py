"""``dnnguide uncertainty RUN_DIR``: plain vs MC dropout vs calibrated prediction on a run's test set.

Prints a pandas table, one row per prediction (``plain``, ``mc``, and for a calibrated run
``calibrated``, ``calibrated_mc``): accuracy, NLL, ECE, Brier score, time; for regression
RMSE, MAE, mean predictive std, Gaussian NLL and interval coverage. It
saves a reliability diagram, an uncertainty histogram and a rejection curve in the run's
``plots/`` folder (fresh names, nothing overwritten) and the table as
``uncertainty.csv`` (likewise).

Example::

    dnnguide uncertainty runs/20260101T000000Z-risk_sensitive --samples 100
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "uncertainty", help="compare plain vs MC dropout vs calibrated prediction of a run",
        description="Plain vs MC dropout vs calibrated (temperature or noise variance fitted on "
                    "the validation split) on a run's test (or validation) split: metrics table "
                    "and calibration plots in RUN_DIR/plots.")
    p.add_argument("run_dir", help="a run directory written by `dnnguide train` / dnnguide.fit")
    p.add_argument("--samples", type=int, default=100, help="MC dropout samples (default 100)")
    p.add_argument("--bins", type=int, default=15, help="calibration bins (default 15)")
    p.add_argument("--split", choices=["test", "val"], default="test", help="split to evaluate")
    p.add_argument("--batch-size", type=int, help="inputs per compiled call (default: automatic)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the dropout masks (default 0: with the default samples, the "
                        "masks the run's metrics.json was scored with)")
    p.add_argument("--no-plots", action="store_true", help="print the table only")
    p.set_defaults(func=_run)


def _run(args, _overrides) -> int:
    import pandas as pd

    from dnnguide.config import check_range
    from dnnguide.layers import has_dropout
    from dnnguide.runs import atomic_write_text, open_run
    from dnnguide.uncertainty import calibration_layer
    from dnnguide.uncertainty_report import compare_mc_dropout, fresh_path

    # Checked before the (slow) model and data loading.
    check_range("samples", args.samples, 1, integer=True)
    check_range("bins", args.bins, 1, integer=True)
    run = open_run(args.run_dir)
    model = run.model()
    data = run.dataset()
    x, y = (data.x_test, data.y_test) if args.split == "test" else (data.x_val, data.y_val)
    if not has_dropout(model):
        print("note: this model has no dropout layers; MC dropout equals the plain prediction.")
    comparison = compare_mc_dropout(model, x, y, n_samples=args.samples, n_bins=args.bins,
                                    task=run.info.get("task") or data.task,
                                    batch_size=args.batch_size, seed=args.seed)
    print(f"{run.path.name}: {len(x)} {args.split} examples, {args.samples} MC samples")
    with pd.option_context("display.width", 120, "display.float_format", "{:.4f}".format):
        print(comparison.table.to_string())
    layer = calibration_layer(model)
    if layer is not None and layer.task != "regression":
        print(f"calibrated: temperature {layer.temperature:.3g}; calibrated MC: "
              f"{layer.mc_pooling} of the samples at temperature {layer.mc_temperature:.3g} "
              "(both fitted on the validation split)")
    table_path = fresh_path(run.path / "uncertainty.csv")
    atomic_write_text(table_path, comparison.table.to_csv())
    print(f"table: {table_path}")
    if not args.no_plots:
        for path in comparison.save_plots(run.plots_dir, n_bins=args.bins):
            print(f"plot: {path}")
    return 0
