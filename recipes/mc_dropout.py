"""MC dropout recipe: train the risk-sensitive preset, then compare plain vs MC vs calibrated.

Trains the ``risk_sensitive`` preset (MC dropout layers; the run calibrates the model on
its validation split) on MNIST-1D or digits, and compares on the test split the plain
prediction (dropout off, weight scaling), the average of ``--samples`` MC dropout passes,
and both after temperature scaling: accuracy, NLL, ECE, Brier score and time.
Writes ``uncertainty.csv`` and three plots (reliability diagram, uncertainty histogram,
rejection curve) into the run directory.

Usage::

    python recipes/mc_dropout.py --data mnist1d --samples 100
    python recipes/mc_dropout.py --quick        # seconds: tiny network, 2 epochs, 10 samples

Reference: Gal & Ghahramani (2016), "Dropout as a Bayesian Approximation", ICML.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["mnist1d", "digits"], default="mnist1d")
    parser.add_argument("--samples", type=int, default=100, help="MC dropout samples")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs (early stopping)")
    parser.add_argument("--dropout-rate", type=float, default=0.2)
    parser.add_argument("--bins", type=int, default=15, help="calibration bins")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs", help="root folder of run directories")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run for tests: digits, 2 layers of 32, 3 epochs, 10 samples")
    args = parser.parse_args(argv)

    import pandas as pd

    import dnnguide
    from dnnguide.runs import atomic_write_text
    from dnnguide.uncertainty_report import compare_mc_dropout

    overrides = {"dropout_rate": args.dropout_rate}
    if args.quick:
        args.data, args.epochs, args.samples = "digits", 3, 10
        overrides.update(depth=2, width=32)
    result = dnnguide.fit("risk_sensitive", args.data, run_dir=args.run_dir,
                          name=f"mc_dropout-{args.data}", epochs=args.epochs, seed=args.seed,
                          verbose=0 if args.quick else "auto", **overrides)
    data = result.data
    comparison = compare_mc_dropout(result.model, data.x_test, data.y_test,
                                    n_samples=args.samples, n_bins=args.bins, seed=args.seed)
    table = comparison.table
    atomic_write_text(result.run_dir / "uncertainty.csv", table.to_csv())
    paths = comparison.save_plots(result.run_dir / "plots", n_bins=args.bins)
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(f"{data.name}: {len(data.x_test)} test examples, {args.samples} MC samples")
        print(table.to_string())
    print(f"run directory: {result.run_dir}")
    for path in paths:
        print(f"plot: {path}")
    return table


if __name__ == "__main__":
    main()
