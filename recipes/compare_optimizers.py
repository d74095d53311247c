"""Train the same preset with every optimizer of the table, same budget: table + learning curves.

    python recipes/compare_optimizers.py                       # mnist1d, 9 optimizers, 30 epochs
    python recipes/compare_optimizers.py --data digits --epochs 20 --optimizers adam nadam
    python recipes/compare_optimizers.py --quick               # seconds, for the tests

Every optimizer trains the same architecture from the same seed for the same number of epochs
(constant learning rate, no early stopping), each at its usual default learning rate, so the
guidelines' qualitative table (convergence speed and quality) shows in the result: plain SGD
slowest, momentum/NAG faster, AdaGrad stalling, the adaptive family fast. Writes
``<run-dir>/<time>-compare_optimizers/`` with ``results.csv``, ``curves.csv``,
``learning_curves.png`` and one run directory per optimizer under ``runs/``.
"""

from __future__ import annotations

import argparse
import sys

import dnnguide
from dnnguide.config import OPTIMIZERS
from dnnguide.runs import atomic_write_text, new_run_dir

# Each optimizer's customary default learning rate (Keras defaults; 0.01 for the SGD family).
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
              "rmsprop": 0.001, "adam": 0.001, "adamax": 0.002, "nadam": 0.001, "adamw": 0.001}


def epochs_to_reach(curve, target: float):
    """First epoch (1-based) at which ``curve`` reaches ``target``, or None."""
    hits = [i + 1 for i, value in enumerate(curve) if value >= target]
    return hits[0] if hits else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist1d")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=OPTIMIZERS)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--depth", type=int, default=None, help="hidden layers (preset default)")
    parser.add_argument("--target", type=float, default=None,
                        help="validation accuracy for 'epochs to target' (default: 90%% of the "
                             "best one reached)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs")
    parser.add_argument("--quick", action="store_true", help="tiny budget, for the tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.data, args.epochs, args.depth = "digits", 2, 1
        args.optimizers = [o for o in args.optimizers if o in ("sgd", "nesterov", "adam")]

    import pandas as pd

    out = new_run_dir(args.run_dir, "compare_optimizers")
    data = dnnguide.load_dataset(args.data, seed=args.seed)
    overrides = {"schedule": "constant", "early_stopping.enabled": False}
    if args.depth:
        overrides["depth"] = args.depth
    curves, rows = [], []
    for name in args.optimizers:
        print(f"--- {name} (lr={DEFAULT_LR[name]})", flush=True)
        result = dnnguide.fit(args.preset, data, run_dir=out / "runs", name=f"opt-{name}",
                              epochs=args.epochs, seed=args.seed, verbose=0, optimizer=name,
                              learning_rate=DEFAULT_LR[name], **overrides)
        history = result.history.assign(optimizer=name)
        curves.append(history)
        rows.append({"optimizer": name, "learning_rate": DEFAULT_LR[name],
                     "best_val_accuracy": float(history["val_accuracy"].max()),
                     "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
                     "test_accuracy": result.metrics["test_accuracy"],
                     "final_train_loss": float(history["loss"].iloc[-1]),
                     "train_time_s": result.metrics["train_time_s"]})
    table = pd.DataFrame(rows)
    target = args.target or 0.9 * table["best_val_accuracy"].max()
    table["epochs_to_target"] = [epochs_to_reach(c["val_accuracy"], target) for c in curves]
    table = table.sort_values("best_val_accuracy", ascending=False)
    curve_frame = pd.concat(curves, ignore_index=True)
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    atomic_write_text(out / "curves.csv", curve_frame.to_csv(index=False))
    plot_curves(curve_frame, out / "learning_curves.png", "optimizer", target)
    print(f"epochs to reach val accuracy {target:.3f}:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"results: {out}")
    return 0


def plot_curves(frame, path, by: str, target: float | None = None) -> None:
    """Training loss and validation accuracy per epoch, one line per ``by`` value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, group in frame.groupby(by, sort=False):
        epochs = group["epoch"] + 1
        ax_loss.plot(epochs, group["loss"], label=key)
        ax_acc.plot(epochs, group["val_accuracy"], label=key)
    if target is not None:
        ax_acc.axhline(target, color="grey", linestyle=":", label=f"target {target:.3f}")
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
