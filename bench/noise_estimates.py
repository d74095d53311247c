"""How noisy is each regression target? Three estimates, made before (or without) training.

Dropout and weight decay help a small regression net on some targets and cost it on others
(BENCHMARKS.md, top sections); the measured pattern suggests the target's noise decides. This
script asks whether the noise can be told from the data before training, by the estimates a rule
could afford:

- ``delta``: the Delta test (Pi & Peterson 1994): half the mean squared difference between each
  row's target and its nearest neighbour's (standardized inputs), over the target's variance.
  For a smooth target on dense inputs it tends to the noise's share of the variance;
- ``r2_ridge`` and ``r2_gbdt``: 5-fold cross-validated R² of a ridge regression and of
  scikit-learn's histogram gradient-boosted trees, on the training split;
- ``val_r2`` (when ``--rows`` gives harness CSVs): 1 - the validation loss of the epoch early
  stopping restored (``best_val_loss``, MSE on the standardized target), mean over the rows'
  seeds: the net's own estimate, after one run.

    python bench/noise_estimates.py --data diabetes reg/seals.csv ... --rows bench/results/*.csv
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harness's loader, by name


def delta_noise_fraction(x, y) -> float:
    """The Delta test's noise variance over the target's variance (nearest neighbour, k=1).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.uniform(-1, 1, size=(2000, 2))
        >>> round(delta_noise_fraction(x, np.sin(3 * x[:, 0]) + x[:, 1]), 2)
        0.0
        >>> round(delta_noise_fraction(x, rng.normal(size=2000)), 1)
        1.0
    """
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    _, index = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)
    return float(0.5 * np.mean((y[index[:, 1]] - y) ** 2) / y.var())


def estimates(x, y) -> dict:
    """The Delta test and the two cross-validated R² for one training split."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    return {"rows": len(y), "features": x.shape[1], "delta": delta_noise_fraction(x, y),
            "r2_ridge": cross_val_score(RidgeCV(), x, y, cv=5, scoring="r2").mean(),
            "r2_gbdt": cross_val_score(HistGradientBoostingRegressor(random_state=0), x, y,
                                       cv=5, scoring="r2").mean()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True,
                        help="dataset names or CSVs, as the harness takes them (path.csv "
                             "or path.csv:column; the column 'target' by default)")
    parser.add_argument("--rows", nargs="*", default=[],
                        help="harness CSVs whose rows give the net's validation R²")
    parser.add_argument("--contender", default="^default$",
                        help="regular expression: the rows of --rows to read (default: "
                             "the default preset's)")
    parser.add_argument("--seed", type=int, default=0, help="the split (default 0)")
    parser.add_argument("--out", default=None, help="write the table as CSV here")
    args = parser.parse_args(argv)

    from presets_vs_baselines import load

    saved = pd.concat([pd.read_csv(f) for f in args.rows]) if args.rows else None
    table = []
    for name in args.data:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = load(name, args.seed)
        row = {"data": data.name, **estimates(data.x_train, data.y_train)}
        if saved is not None and "best_val_loss" in saved:
            mine = saved[(saved.data == data.name)
                         & saved.contender.str.fullmatch(args.contender)]
            mine = mine.drop_duplicates("seed")
            if len(mine):
                row["val_r2"] = 1.0 - mine.best_val_loss.mean()
                row["val_r2_seeds"] = len(mine)
        table.append(row)
    frame = pd.DataFrame(table)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        frame.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
