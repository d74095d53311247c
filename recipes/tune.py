"""Hyperband search on MNIST-1D over both presets; prints the trials table, tests the best model.

    python recipes/tune.py                          # mnist1d, Hyperband: 30 epochs max, 43 trials
    python recipes/tune.py --max-trials 80 --workers 2   # trials in two worker processes
    python recipes/tune.py --quick                  # seconds, for the tests

The space is :meth:`dnnguide.tuning.SearchSpace.default`: the ``default`` and ``self_normalizing``
presets, depth, width, activation (within what each preset allows), dropout, optimizer, learning
rate (log scale), schedule (performance or 1cycle) and batch size. Writes
``<run-dir>/<time>-tune_mnist1d/`` with ``tuning/`` (keras-tuner's state: rerun with
``--directory`` to continue), ``trials.csv``, ``plots/trials.png``, ``best_config.json`` and
``metrics.json`` (the best model's test accuracy and the budget used).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist1d")
    parser.add_argument("--max-epochs", type=int, default=30)
    # Hyperband starts with its most aggressive bracket; with factor 5 and 30 epochs that bracket
    # is 34 trials of 2 epochs, the best 7 continued to 6 epochs, the best 2 to 30: 43 trials.
    parser.add_argument("--max-trials", type=int, default=43)
    parser.add_argument("--factor", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0, help="trials in worker processes")
    parser.add_argument("--directory", help="continue the search kept here (default: a new one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny budget, for the tests")
    args = parser.parse_args(argv)

    from dnnguide.data import load_dataset
    from dnnguide.runs import atomic_write_json, atomic_write_text, new_run_dir
    from dnnguide.tuning import SearchSpace, plot_trials, tune

    out = new_run_dir(args.run_dir, f"tune_{args.data}")
    data = load_dataset(args.data, seed=args.seed)
    space = SearchSpace.default()  # both presets
    if args.quick:
        # A slice of the data, small networks, a 3-epoch Hyperband: the pipeline, not the result.
        data = dataclasses.replace(data, x_train=data.x_train[:600], y_train=data.y_train[:600],
                                   x_val=data.x_val[:200], y_val=data.y_val[:200], spec={})
        space = space.narrow(depth=[1, 2], width=[16, 32])
        args.max_epochs, args.max_trials, args.factor, args.verbose = 3, 4, 3, 0
    directory = Path(args.directory) if args.directory else out / "tuning"
    start = time.perf_counter()
    result = tune(data, space=space, algorithm="hyperband", max_trials=args.max_trials,
                  epochs=args.max_epochs, factor=args.factor, directory=directory,
                  seed=args.seed, workers=args.workers, verbose=args.verbose)
    minutes = (time.perf_counter() - start) / 60
    frame = result.trials
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.4g}".format):
        print(frame.drop(columns=["worker_pid", "error"], errors="ignore").to_string(index=False))
    test = result.best_model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    metrics = {
        "test_accuracy": float(test["accuracy"]), "test_loss": float(test["loss"]),
        "best_val_accuracy": float(frame["score"].max()),
        "trials": int(len(frame)), "completed": int((frame["status"] == "COMPLETED").sum()),
        "epochs_trained": int(frame["epochs"].fillna(0).sum()), "max_epochs": args.max_epochs,
        "minutes": round(minutes, 2), "workers": args.workers,
        "best_hyperparameters": result.best_hyperparameters,
    }
    atomic_write_text(out / "trials.csv", frame.to_csv(index=False))
    atomic_write_json(out / "best_config.json", result.best_config.to_dict())
    atomic_write_json(out / "metrics.json", metrics)
    plot_trials(frame, out / "plots" / "trials.png", objective="val_accuracy")
    print(f"best: {result.best_hyperparameters}")
    print(f"test accuracy of the best model: {metrics['test_accuracy']:.4f} "
          f"({metrics['trials']} trials, {metrics['epochs_trained']} epochs, {minutes:.1f} min)")
    print(f"results: {out}")
    return metrics


if __name__ == "__main__":
    main()
    sys.exit(0)
