"""An ensemble's MC draws: stratified (each member gives every row its share) vs independent.

    python bench/bench_ensemble_draws.py --data digits breast_cancer --seeds 0 1 2 3 4
    python bench/bench_ensemble_draws.py --data mnist1d --seeds 0 1 2 --csv OTHER.csv
    python bench/bench_ensemble_draws.py --timing [--members 5] [--repeats 5]

Each seed fits the risk-sensitive preset (5 nets) once, then scores its calibrated 100-sample
MC prediction of the test split twice on that same model, with each of ``--mc-seeds``: with the
product's stratified member draws (:func:`dnnguide.layers._members_drawn`) and with
every sample's member drawn independently, as before (the tiling hidden from the pool). Rows go
to ``--csv`` (never an existing one); the stratified minus the independent scores, averaged over
the MC seeds and paired by training seed (± one standard error), print at the end.

``--timing``: the cost of routing. ``--members`` risk-sensitive nets as the data rules size them
for MNIST-1D (40 inputs, 10 classes: 3 x 256), untrained (time does not depend on the weights),
pooled as ``dnnguide.ensemble.pool_models`` pools them (each member computes only the rows drawn
for it) and as ensembles were pooled before routing (every member computes every row, the pool
keeps the drawn one's), and one member alone; ``mc_predict`` of 1000 rows x 100 samples on each,
in one process, alternating order, ``--repeats`` times after a warm-up. Prints the median times
and the ratios to one member.
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


def unrouted(members, task):
    """The members pooled as ensembles were before routing: every member on every row."""
    import keras

    from dnnguide.ensemble import pool_models
    from dnnguide.layers import EnsemblePool

    routed = pool_models(members, task)
    inputs = keras.Input(routed.inputs[0].shape[1:])
    outputs = [routed.get_layer(f"member_{k}")(inputs) for k in range(len(members))]
    return keras.Model(inputs, EnsemblePool(task)(outputs), name="unrouted")


def timing(members: int, repeats: int) -> dict[str, float]:
    import statistics
    import time

    import keras
    import numpy as np

    import dnnguide
    from dnnguide.ensemble import pool_models

    nets = []
    for k in range(members):
        keras.utils.set_random_seed(k)
        nets.append(dnnguide.build_model("risk_sensitive", (40,), 10, width=256, depth=3))
    models = {"one member": nets[0], "routed (the product)": pool_models(nets, "classification"),
              "every member on every row": unrouted(nets, "classification")}
    x = np.random.default_rng(0).standard_normal((1000, 40)).astype("float32")
    times = {name: [] for name in models}
    for name, model in models.items():  # warm-up: the sampler is traced once per model
        dnnguide.mc_predict(model, x, 100, seed=0, verbose=0)
    for r in range(repeats):
        for name in (list(models) if r % 2 == 0 else list(models)[::-1]):
            start = time.perf_counter()
            dnnguide.mc_predict(models[name], x, 100, seed=r, verbose=0)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:>28}: {median:.3f} s, {median / medians['one member']:.2f}x one member")
    return medians


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
    parser.add_argument("--timing", action="store_true", help="routed vs unrouted MC cost")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.timing:
        timing(args.members, args.repeats)
        return 0

    import presets_vs_baselines as harness
    from ablations import write_rows

    rows = (row for name in args.data for seed in args.seeds
            for row in rows_for(harness.load(name, seed), seed, args.mc_seeds))
    print(paired(write_rows(args.csv, rows)).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
