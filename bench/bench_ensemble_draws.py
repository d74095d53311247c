"""An ensemble's MC draws: stratified (each member gives every row its share) vs independent.

    python bench/bench_ensemble_draws.py --data digits breast_cancer --seeds 0 1 2 3 4
    python bench/bench_ensemble_draws.py --data mnist1d --seeds 0 1 2 --csv OTHER.csv

Each seed fits the risk-sensitive preset (5 nets) once, then scores its calibrated 100-sample
MC prediction of the test split twice on that same model, with each of ``--mc-seeds``: with the
product's stratified member draws (:meth:`dnnguide.layers.EnsemblePool._members_drawn`) and with
every sample's member drawn independently, as before (the tiling hidden from the pool). Rows go
to ``--csv`` (never an existing one); the stratified minus the independent scores, averaged over
the MC seeds and paired by training seed (± one standard error), print at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rows_for(data, seed, mc_seeds):
    import dnnguide
    import presets_vs_baselines as harness
    from dnnguide import layers

    result = dnnguide.fit("risk_sensitive", data, seed=seed, run_dir=None, verbose=0)
    tiled = layers.mc_samples_tiled
    try:
        for variant, tiling in (("stratified", tiled), ("independent", lambda: None)):
            layers.mc_samples_tiled = tiling  # read when the sampler is traced
            result.model.__dict__.pop("_dnnguide_mc_predictors", None)  # trace it again
            for mc_seed in mc_seeds:
                mean = dnnguide.mc_predict(result.model, data.x_test, 100, seed=mc_seed,
                                           verbose=0).mean
                yield {"data": data.name, "seed": seed, "variant": variant, "mc_seed": mc_seed,
                       **harness.score_or_nan(data, mean)}
    finally:
        layers.mc_samples_tiled = tiled
        result.model.__dict__.pop("_dnnguide_mc_predictors", None)


def paired(frame):
    """Stratified minus independent per data and metric (pandas), paired by training seed."""
    import numpy as np
    import pandas as pd

    metrics = [m for m in ("accuracy", "nll", "ece", "rmse") if m in frame]
    means = frame.groupby(["data", "seed", "variant"])[metrics].mean().reset_index()
    table = []
    for data, part in means.groupby("data"):
        wide = part.pivot(index="seed", columns="variant")
        for metric in metrics:
            diff = (wide[metric]["stratified"] - wide[metric]["independent"]).dropna()
            if diff.empty:
                continue
            table.append({"data": data, "metric": metric, "seeds": len(diff),
                          "independent": wide[metric]["independent"].mean(),
                          "stratified": wide[metric]["stratified"].mean(),
                          "difference": diff.mean(),
                          "se": diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1
                          else float("nan")})
    return pd.DataFrame(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=["digits", "breast_cancer"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--mc-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--csv", default="ensemble_draws.csv")
    args = parser.parse_args(argv)

    import pandas as pd

    import presets_vs_baselines as harness

    csv = Path(args.csv)
    if csv.exists():
        raise SystemExit(f"{csv} exists: name another --csv (results are never overwritten).")
    rows = []
    for name in args.data:
        for seed in args.seeds:
            for row in rows_for(harness.load(name, seed), seed, args.mc_seeds):
                rows.append(row)
                print(row, flush=True)
            pd.DataFrame(rows).to_csv(csv, index=False)
    print(paired(pd.DataFrame(rows)).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
