"""Constant vs power vs exponential vs piecewise vs performance vs 1cycle, same budget.

    python recipes/compare_schedules.py                        # mnist1d, default preset, 30 epochs
    python recipes/compare_schedules.py --data digits --max-lr 0.01
    python recipes/compare_schedules.py --quick                # seconds, for the tests

Every schedule trains the same preset from the same seed for the same number of epochs (no
early stopping) with the same optimizer. Their parameters are set relative to the budget of
``T`` steps so the comparison is fair: power ``decay_steps = T / 10``; exponential drops the LR
tenfold over the run; piecewise divides it by 10 at 50% and again at 75%; performance halves it
after 3 epochs without improvement; 1cycle peaks at ``--max-lr`` (default: the LR finder's
``minimum`` rule, see ``recipes/onecycle.py``). Writes ``<run-dir>/<time>-compare_schedules/``
with ``results.csv`` (best validation accuracy, epochs to reach the target), ``curves.csv``,
``learning_curves.png``, ``schedules.png`` and one run directory per schedule.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import dnnguide
from dnnguide.config import SCHEDULES
from dnnguide.runs import atomic_write_text, new_run_dir


def schedule_overrides(name: str, lr: float, total_steps: int, max_lr: float) -> dict:
    """Schedule fields for ``name`` scaled to a budget of ``total_steps`` optimizer steps."""
    if name == "power":
        return {"schedule": "power", "decay_steps": max(1, total_steps // 10), "power": 1.0}
    if name == "exponential":
        return {"schedule": "exponential", "decay_steps": total_steps}
    if name == "piecewise":
        return {"schedule": "piecewise", "boundaries": (total_steps // 2, 3 * total_steps // 4),
                "values": (lr, lr / 10, lr / 100)}
    if name == "performance":
        return {"schedule": "performance", "schedule.patience": 3, "factor": 0.5}
    if name == "onecycle":
        return {"schedule": "onecycle", "max_lr": max_lr}
    return {"schedule": "constant"}


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # share the sibling recipe's helpers
    from compare_optimizers import epochs_to_reach, plot_curves

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist1d")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--depth", type=int, default=None, help="hidden layers (preset default)")
    parser.add_argument("--max-lr", type=float, default=None,
                        help="1cycle's peak LR (default: the LR finder's 'minimum' rule)")
    parser.add_argument("--target", type=float, default=None,
                        help="validation accuracy for 'epochs to target' (default: 95%% of the "
                             "best one reached)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs")
    parser.add_argument("--quick", action="store_true", help="tiny budget, for the tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.data, args.epochs, args.depth = "digits", 2, 1

    import pandas as pd

    from dnnguide.lr_finder import lr_find
    from dnnguide.schedules import plot_schedule

    out = new_run_dir(args.run_dir, "compare_schedules")
    data = dnnguide.load_dataset(args.data, seed=args.seed)
    base = {"early_stopping.enabled": False, **({"depth": args.depth} if args.depth else {})}
    config = dnnguide.get_preset(args.preset, **base)
    lr = config.optimizer.learning_rate
    total_steps = math.ceil(len(data.x_train) / config.batch_size) * args.epochs
    max_lr = args.max_lr
    if max_lr is None and "onecycle" in args.schedules:
        found = lr_find(config, data, seed=args.seed, verbose=0, rule="minimum",
                        num_steps=30 if args.quick else None)
        found.save(out / "lr_find")
        max_lr = found.onecycle_peak(lr)  # as fit(schedule="onecycle") chooses it
        print(f"1cycle max_lr from the LR finder: {max_lr:.3g} (minimum rule "
              f"{found.suggestion:.3g}, lifted towards 5x the constant {lr:g})", flush=True)
    curves, rows = [], []
    for name in args.schedules:
        fields = schedule_overrides(name, lr, total_steps, max_lr)
        print(f"--- {name}", flush=True)
        result = dnnguide.fit(config, data, run_dir=out / "runs", name=f"schedule-{name}",
                              epochs=args.epochs, seed=args.seed, verbose=0, **fields)
        plot_schedule(result.config.schedule, lr, total_steps,
                      result.run_dir / "plots" / "schedule.png")
        history = result.history.assign(schedule=name)
        curves.append(history)
        rows.append({"schedule": name,
                     "best_val_accuracy": float(history["val_accuracy"].max()),
                     "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
                     "test_accuracy": result.metrics["test_accuracy"],
                     "train_time_s": result.metrics["train_time_s"]})
    table = pd.DataFrame(rows)
    target = args.target or 0.95 * table["best_val_accuracy"].max()
    table["epochs_to_target"] = [epochs_to_reach(c["val_accuracy"], target) for c in curves]
    table = table.sort_values("best_val_accuracy", ascending=False)
    curve_frame = pd.concat(curves, ignore_index=True)
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    atomic_write_text(out / "curves.csv", curve_frame.to_csv(index=False))
    plot_curves(curve_frame, out / "learning_curves.png", "schedule", target)
    _plot_lrs(curve_frame, out / "schedules.png")
    print(f"budget {args.epochs} epochs ({total_steps} steps); target val accuracy {target:.3f}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"results: {out}")
    return 0


def _plot_lrs(frame, path) -> None:
    """The learning rate each schedule ended each epoch with (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, group in frame.groupby("schedule", sort=False):
        if "learning_rate" in group:
            ax.plot(group["epoch"] + 1, group["learning_rate"], label=key)
    ax.set(xlabel="epoch", ylabel="learning rate", yscale="log", title="learning rate per epoch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
