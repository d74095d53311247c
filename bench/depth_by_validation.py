"""Would choosing the depth on validation recover mnist1d's 5 layers without losing elsewhere?

The depth rule (``DATA_TABLE["depth"]``) gives 3 hidden layers under 5,000 rows: 5 lose on
tabular data but win on mnist1d (0.778 against 0.722). The guideline behind it reads "add
layers while validation improves"; this replays that choice on saved harness rows, no training:
per seed, the 5-layer run is kept when its validation score beats the 3-layer run's, and the
kept run's test scores are compared with 3 layers', paired by seed.

``--on val_accuracy`` compares the best validation accuracy (classification only);
``--on val_loss`` the validation loss of the epoch early stopping restored (rows written since
the harness records ``best_val_loss``; regression too).

    python bench/depth_by_validation.py   # the committed rows (BENCHMARKS.md, top section)
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def _best(curve: str) -> float:
    return max(float(v) for v in curve.split(";"))


def choose_by_validation(three: pd.DataFrame, five: pd.DataFrame,
                         on: str = "val_accuracy") -> pd.DataFrame:
    """Per dataset: how often 5 layers were picked, and the pick minus 3 layers (± one SE).

    A tie on validation keeps 3 layers (the rule's depth).
    """
    runs = three.merge(five, on=["data", "seed"], suffixes=("_3", "_5"))
    if on == "val_accuracy":
        runs = runs[runs.val_accuracy_curve_3.notna() & runs.val_accuracy_curve_5.notna()]
        pick5 = runs.val_accuracy_curve_5.map(_best) > runs.val_accuracy_curve_3.map(_best)
    elif on == "val_loss":
        runs = runs[runs.best_val_loss_3.notna() & runs.best_val_loss_5.notna()]
        pick5 = runs.best_val_loss_5 < runs.best_val_loss_3
    else:
        raise ValueError(f"Argument `on` must be 'val_accuracy' or 'val_loss'. Received: on={on!r}")
    rows = []
    for data, part in runs.groupby("data"):
        row = {"data": data, "seeds": len(part), "picked_5": int(pick5[part.index].sum())}
        for metric in ("accuracy", "nll", "ece", "rmse"):
            if f"{metric}_3" not in part or part[f"{metric}_3"].isna().all():
                continue
            chosen = np.where(pick5[part.index], part[f"{metric}_5"], part[f"{metric}_3"])
            gain = chosen - part[f"{metric}_3"]
            row[f"{metric}_minus_3"] = gain.mean()
            row[f"{metric}_se"] = gain.std(ddof=1) / np.sqrt(len(part))
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--three", nargs="+", default=["bench/results/heldout_default.csv",
                                                       "bench/results/lr_finder_without_decay.csv"],
                        help="rows of the default preset (3 layers by the rule)")
    parser.add_argument("--five", default="bench/results/depth5_with_decay.csv",
                        help='rows of "default[depth=5]"')
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1")
    parser.add_argument("--on", choices=("val_accuracy", "val_loss"), default="val_accuracy")
    args = parser.parse_args(argv)
    three = pd.concat([pd.read_csv(path) for path in args.three])
    three = three[(three.contender == "default") & (three.seed < args.seeds)]
    five = pd.read_csv(args.five)
    five = five[(five.contender == "default[depth=5]") & (five.seed < args.seeds)]
    table = choose_by_validation(three, five, args.on)
    print(table.to_string(index=False, float_format="{:.4f}".format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
