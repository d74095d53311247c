"""Is the risk-sensitive preset's uncertainty better? Calibrated MC dropout vs the plain default.

    python bench/bench_uncertainty.py [--seeds 0 1 2 3 4] [--datasets ...] [--csv bench_uncertainty.csv]
    python bench/bench_uncertainty.py --table-only a.csv b.csv   # tables of saved rows

Classification (digits, breast_cancer, mnist1d): for each seed, ``dnnguide.fit("default")``
scored on its network's own probabilities (``default: plain``) and on the run's model, which
ends in the temperature the run fitted (``default: calibrated``), and
``dnnguide.fit("risk_sensitive")`` scored four ways (plain; MC: 100 samples pooled as the run
calibrates them; calibrated plain; calibrated MC), as the run records them in its metrics (the
temperatures, fitted on the validation split by the run itself, and the MC pooling).
Regression (diabetes): the risk-sensitive run's calibrated MC intervals (MC spread + noise
variance fitted on validation) against a constant-variance baseline (the default preset's
prediction with the validation MSE as variance). Prints markdown tables of mean ± std over the
seeds, the calibrated MC prediction minus the plain default paired by seed (:func:`paired`),
and writes every row to a CSV.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CLASSIFICATION = ("digits", "breast_cancer", "mnist1d")
METHODS = {"": "plain", "mc_": "MC", "cal_": "calibrated", "cal_mc_": "calibrated MC"}


def classification_rows(dataset, seed):
    import dnnguide
    from dnnguide.uncertainty import classification_metrics, uncalibrated

    default = dnnguide.fit("default", dataset, run_dir=None, seed=seed, verbose=0)
    rows = []
    # The network's own probabilities, then the run's model: its temperature on top
    for name, model in (("plain", uncalibrated(default.model)), ("calibrated", default.model)):
        probs = model.predict(default.data.x_test, batch_size=256, verbose=0)
        rows.append({"dataset": dataset, "seed": seed, "model": f"default: {name}",
                     "epochs": default.metrics["epochs_trained"],
                     "temperature": default.metrics.get("temperature") if name != "plain"
                     else None, **classification_metrics(default.data.y_test, probs)})
    risk = dnnguide.fit("risk_sensitive", dataset, run_dir=None, seed=seed, verbose=0)
    for prefix, name in METHODS.items():
        scores = {k: risk.metrics[f"test_{prefix}{k}"] for k in ("nll", "ece", "brier")}
        scores["accuracy"] = risk.metrics[f"test_{prefix}accuracy"]
        rows.append({"dataset": dataset, "seed": seed, "model": f"risk_sensitive: {name}",
                     "epochs": risk.metrics["epochs_trained"],
                     "temperature": risk.metrics["mc_temperature" if "mc" in prefix
                                                 else "temperature"],
                     "pooling": risk.metrics["mc_pooling"] if prefix == "cal_mc_" else "",
                     **scores})
    return rows


def regression_rows(seed):
    import numpy as np

    import dnnguide
    from dnnguide.calibration import fit_noise_variance, regression_metrics

    default = dnnguide.fit("default", "diabetes", run_dir=None, seed=seed, verbose=0)
    data = default.data
    noise = fit_noise_variance(data.y_val, default.model.predict(data.x_val, verbose=0))
    mean = default.model.predict(data.x_test, verbose=0)
    std = np.broadcast_to(np.sqrt(noise), np.shape(mean))
    rows = [{"dataset": "diabetes", "seed": seed, "model": "default: constant variance",
             **regression_metrics(data.y_test, mean, std)}]
    risk = dnnguide.fit("risk_sensitive", "diabetes", run_dir=None, seed=seed, verbose=0)
    for prefix, name in (("cal_", "constant variance"), ("cal_mc_", "MC + noise")):
        keys = ("rmse", "mae", "nll", "coverage_50", "coverage_90", "coverage_95")
        rows.append({"dataset": "diabetes", "seed": seed, "model": f"risk_sensitive: {name}",
                     **{k: risk.metrics[f"test_{prefix}{k}"] for k in keys}})
    return rows


def summary(frame, columns):
    """mean ± std over the seeds, as a markdown table."""
    grouped = frame.groupby(["dataset", "model"], sort=False)[list(columns)]
    mean, std = grouped.mean(), grouped.std(ddof=0)
    table = mean.copy().astype(object)
    for column in columns:
        table[column] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean[column], std[column])]
    table = table.reset_index()
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def paired(frame, model="risk_sensitive: calibrated MC", baseline="default: plain"):
    """``model`` minus ``baseline`` per dataset and metric, paired by seed (pandas).

    Both train on the same split per seed, so the seed-to-seed spread of the split cancels:
    ``difference`` is the mean of the per-seed differences and ``se`` its standard error. Issue
    14 asks for accuracy kept and NLL / ECE no worse; a difference inside 2 ``se`` of zero is
    noise at that number of seeds.
    """
    import numpy as np
    import pandas as pd

    rows = []
    for dataset, part in frame.groupby("dataset", sort=False):
        ours = part[part["model"] == model].set_index("seed")
        theirs = part[part["model"] == baseline].set_index("seed")
        if ours.empty or theirs.empty:
            continue
        for metric in ("accuracy", "nll", "ece"):
            diff = (ours[metric] - theirs[metric]).dropna()
            rows.append({"dataset": dataset, "metric": metric, "seeds": len(diff),
                         "difference": diff.mean(),
                         "se": diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--datasets", nargs="+", default=[*CLASSIFICATION, "diabetes"])
    parser.add_argument("--csv", default="bench_uncertainty.csv", help="every row, per seed")
    parser.add_argument("--table-only", nargs="+", metavar="CSV",
                        help="print the tables of saved rows (several CSVs are concatenated)")
    args = parser.parse_args(argv)

    import pandas as pd

    if args.table_only:
        frame = pd.concat([pd.read_csv(path) for path in args.table_only], ignore_index=True)
    else:
        rows = []
        for dataset in args.datasets:
            for seed in args.seeds:
                if dataset == "diabetes":
                    rows += regression_rows(seed)
                else:
                    rows += classification_rows(dataset, seed)
                print(f"done: {dataset} seed {seed}", flush=True)
        frame = pd.DataFrame(rows)
        frame.to_csv(args.csv, index=False)

    def seeds_of(rows) -> str:  # per dataset: saved tables may join runs of different seeds
        return "; ".join(f"{name} {sorted(group['seed'].unique().tolist())}"
                         for name, group in rows.groupby("dataset", sort=False))

    classes = frame[frame["dataset"] != "diabetes"]
    if len(classes):
        print(f"\nTest split, mean ± std over seeds ({seeds_of(classes)}); ECE: 15 bins; MC: the "
              "run's 100 samples\n")
        print(summary(classes, ("accuracy", "nll", "ece", "brier")))
    regression = frame[frame["dataset"] == "diabetes"]
    if len(regression):
        print(f"\nDiabetes, test split, mean ± std over seeds {seeds_of(regression)} (targets "
              "in the units the model predicts)\n")
        print(summary(regression, ("rmse", "nll", "coverage_50", "coverage_90", "coverage_95")))
    for baseline in ("default: plain", "default: calibrated"):  # rows before 2026-12-01: plain
        differences = paired(classes, baseline=baseline)
        if len(differences):
            print(f"\nrisk_sensitive: calibrated MC minus {baseline}, paired by seed "
                  "(accuracy in points):\n")
            differences.loc[differences.metric == "accuracy", ["difference", "se"]] *= 100
            print(differences.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    if "pooling" in classes:
        chosen = classes[classes["model"] == "risk_sensitive: calibrated MC"]
        print("\npooling of the calibrated MC prediction, seeds per dataset (geometric since "
              "calibrate() stopped choosing it on validation):")
        print(chosen.groupby("dataset", sort=False)["pooling"].value_counts().to_string())
    print(f"\nrows: {args.table_only or args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
