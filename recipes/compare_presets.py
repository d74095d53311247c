"""Train every preset on the same data and compare them: one table, one plot.

    python recipes/compare_presets.py --data digits mnist1d
    python recipes/compare_presets.py --quick          # seconds, for the tests

Writes ``<run-dir>/<time>-compare_presets/`` with ``results.csv``, ``accuracy.png`` and one
run directory per preset under ``runs/`` inside it.
"""

from __future__ import annotations

import argparse
import sys

import dnnguide
from dnnguide.runs import atomic_write_text, new_run_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits", "mnist1d"])
    parser.add_argument("--presets", nargs="+", default=dnnguide.list_presets())
    parser.add_argument("--depth", type=int, default=None, help="hidden layers (preset default)")
    parser.add_argument("--epochs", type=int, default=100, help="upper bound; early stopping")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs")
    parser.add_argument("--quick", action="store_true", help="tiny budget, for the tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.depth, args.data = 2, args.depth or 2, args.data[:1]

    out = new_run_dir(args.run_dir, "compare_presets")
    rows = []
    for data in args.data:
        dataset = dnnguide.load_dataset(data, seed=args.seed)
        for preset in args.presets:
            overrides = {"depth": args.depth} if args.depth else {}
            print(f"--- {preset} on {data}", flush=True)
            result = dnnguide.fit(preset, dataset, run_dir=out / "runs", epochs=args.epochs,
                                  seed=args.seed, verbose=0, **overrides)
            rows.append({"data": data, "preset": preset, "depth": result.config.depth,
                         "activation": result.config.activation,
                         "epochs": result.metrics["epochs_trained"],
                         "test_accuracy": result.metrics["test_accuracy"],
                         # MC-dropout presets: accuracy of the 50-sample MC mean
                         "test_mc_accuracy": result.metrics.get("test_mc_accuracy"),
                         "train_time_s": result.metrics["train_time_s"]})
    import pandas as pd

    table = pd.DataFrame(rows)
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    _plot(table, out / "accuracy.png")
    print(table.to_string(index=False))
    print(f"results: {out}")
    return 0


def _plot(table, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="preset", columns="data", values="test_accuracy")
    ax = pivot.plot.barh(figsize=(7, 1 + 0.5 * len(pivot)))
    ax.set(xlabel="test accuracy", xlim=(0, 1), title="presets compared")
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=100)
    plt.close(ax.figure)


if __name__ == "__main__":
    sys.exit(main())
