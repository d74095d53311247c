"""1cycle with the LR finder's suggestion as ``max_lr``, against a constant LR at the same budget.

    python recipes/onecycle.py                                 # mnist1d, default preset, 20 epochs
    python recipes/onecycle.py --data digits --optimizer nesterov --epochs 15
    python recipes/onecycle.py --quick                         # seconds, for the tests

Steps: (1) ``lr_find`` on the configuration suggests a learning rate; (2) the same
configuration trains with ``schedule="onecycle", max_lr=<suggestion>`` (with the ``minimum``
rule, lifted towards 5x the constant LR, as ``fit`` chooses it; the LR rises from
``max_lr / 25`` to ``max_lr`` over 45% of the steps, falls back, then anneals; momentum or
``beta_1`` cycles 0.95 -> 0.85 -> 0.95 inside the optimizer); (3) unless ``--no-baseline``, the
same configuration trains with the preset's constant LR for comparison. Writes
``<run-dir>/<time>-onecycle/`` with ``lr_find/``, ``runs/``, ``schedule.png`` and ``results.csv``.
"""

from __future__ import annotations

import argparse
import math
import sys

import dnnguide
from dnnguide.config import OPTIMIZERS
from dnnguide.lr_finder import RULES, lr_find, result_summary
from dnnguide.runs import atomic_write_text, new_run_dir
from dnnguide.schedules import plot_schedule


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--data", default="mnist1d")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="override the preset's optimizer")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rule", default="minimum", choices=RULES,
                        help="finder rule for max_lr (default: a tenth of the LR at the lowest "
                             "loss; 'valley' suits a constant LR and is too timid for 1cycle)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the constant-LR run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs")
    parser.add_argument("--quick", action="store_true", help="tiny budget, for the tests")
    args = parser.parse_args(argv)
    overrides = {"early_stopping.enabled": False}
    if args.optimizer:
        overrides["optimizer"] = args.optimizer
    steps = None
    if args.quick:
        args.data, args.epochs, steps, overrides["depth"] = "digits", 2, 30, 1

    import pandas as pd

    out = new_run_dir(args.run_dir, "onecycle")
    config = dnnguide.get_preset(args.preset, **overrides)
    data = dnnguide.load_dataset(args.data, seed=args.seed)
    found = lr_find(config, data, num_steps=steps, rule=args.rule, seed=args.seed, verbose=0)
    found.save(out / "lr_find")
    print(result_summary(found), flush=True)

    max_lr = found.suggestion
    if args.rule == "minimum":  # as fit(schedule="onecycle") chooses it
        max_lr = found.onecycle_peak(config.optimizer.learning_rate)
    runs = {"onecycle": {"schedule": "onecycle", "max_lr": max_lr}}
    if not args.no_baseline:
        runs["constant"] = {"schedule": "constant"}
    rows = []
    for name, fields in runs.items():
        print(f"--- {name}", flush=True)
        result = dnnguide.fit(config, data, run_dir=out / "runs", name=name, epochs=args.epochs,
                              seed=args.seed, verbose=0, **fields)
        history = result.history
        rows.append({"schedule": name, "max_lr": max_lr if name == "onecycle" else
                     config.optimizer.learning_rate,
                     "best_val_accuracy": float(history["val_accuracy"].max()),
                     "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
                     "test_accuracy": result.metrics["test_accuracy"],
                     "run": result.run_dir.name})
        if name == "onecycle":
            total = math.ceil(len(data.x_train) / config.batch_size) * args.epochs
            plot_schedule(result.config.schedule, max_lr, total, out / "schedule.png")
    table = pd.DataFrame(rows)
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
