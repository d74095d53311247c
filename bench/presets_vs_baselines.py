"""Evidence harness: do the presets beat what a user would write instead?

Every contender trains on the same splits (``dnnguide.load_dataset(name, seed=s)``: stratified
train / validation / test) for each seed, and is scored on the test split:
accuracy, NLL and ECE (15 bins) for classification, RMSE for regression, and wall time. The
dnnguide contenders get the loader's scaling; the baselines get the same split through
scikit-learn's ``StandardScaler``, as a user would scale it (:func:`user_scaled`).

Contenders:

- the presets with their defaults (``dnnguide.fit(preset, data, seed=s)``), which the data-aware
  rules size for the data; MC-dropout presets are scored by their calibrated MC prediction
  (``mc_predict``'s default 100 samples, the pooling and temperature the run fitted);
- ``default+onecycle``: ``schedule="onecycle"`` alone (max_lr from the LR finder);
- baselines a user would write: ``keras_newcomer`` (2x100 ReLU, Adam 1e-3, early stopping on
  validation loss, raw targets), ``keras_regularized`` (3x256 Swish + batch norm + dropout 0.2 +
  AdamW weight decay 1e-2, early stopping), ``sklearn_mlp`` (``MLPClassifier``/``MLPRegressor``
  defaults, trained on train + validation), and two non-neural references: ``linear``
  (``LogisticRegression`` / ``RidgeCV``) and ``gbdt`` (``HistGradientBoosting*`` defaults).

Usage::

    python bench/presets_vs_baselines.py                          # everything, 5 seeds
    python bench/presets_vs_baselines.py --data mnist1d --seeds 0 1 --contenders default keras_newcomer
    python bench/presets_vs_baselines.py --depth-study            # depth 2..50 on mnist1d
    python bench/presets_vs_baselines.py --data mnist1d --contenders "default[depth=20,optimizer=adamw]"
    python bench/presets_vs_baselines.py --table-only results.csv # tables/plot from saved rows

Writes ``<out>/results.csv`` (one row per run, appended as runs finish, so an interrupted run
keeps its rows and ``--resume`` skips them), ``summary.csv`` (mean and std), ``summary.md``,
``paired.csv`` (each dnnguide contender against each rival, paired by seed, with a win / tie /
loss verdict at 2 standard errors: :func:`paired`) and ``presets_vs_baselines.png`` (bars with
error bars); ``--benchmarks-md`` also rewrites the table between markers in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

DATASETS = ("digits", "breast_cancer", "diabetes", "mnist1d")
PRESETS = ("default", "self_normalizing", "sparse", "low_latency", "risk_sensitive")
BASELINES = ("keras_newcomer", "keras_regularized", "sklearn_mlp", "linear", "gbdt")
CONTENDERS = PRESETS + ("default+onecycle",) + BASELINES
# The cells of the promise: dnnguide vs what a user writes by hand.
RIVALS = ("keras_newcomer", "sklearn_mlp")
MARK_BEGIN, MARK_END = "<!-- presets_vs_baselines:begin -->", "<!-- presets_vs_baselines:end -->"


# --------------------------------------------------------------------------- scoring
def _score(data, probs_or_pred) -> dict[str, float]:
    if data.task == "regression":
        pred = np.asarray(probs_or_pred, "float64").reshape(len(data.y_test), -1)
        err = pred - np.asarray(data.y_test, "float64").reshape(len(pred), -1)
        return {"rmse": float(np.sqrt(np.mean(err ** 2)))}
    from dnnguide.calibration import calibration_consistency, classification_metrics

    scores = classification_metrics(data.y_test, probs_or_pred)
    # The ECE a calibrated model with these confidences scores on these rows, and how likely
    # it is to score this run's: the ECE cells differ by less than this floor's noise.
    consistency = calibration_consistency(data.y_test, probs_or_pred)
    return {**{k: float(scores[k]) for k in ("accuracy", "nll", "ece")},
            "ece_calibrated": consistency["ece_calibrated"], "ece_p": consistency["p_value"]}


def score_or_nan(data, probs_or_pred) -> dict[str, float]:
    """:func:`_score`, or NaN for every metric when an output is not finite (a diverged run:
    normalizing such outputs would be 0/0)."""
    if np.all(np.isfinite(probs_or_pred)):
        return _score(data, probs_or_pred)
    keys = (("rmse",) if data.task == "regression"
            else ("accuracy", "nll", "ece", "ece_calibrated", "ece_p"))
    return {k: float("nan") for k in keys}


# --------------------------------------------------------------------------- contenders
def parse_contender(contender: str) -> tuple[str, dict]:
    """``"default[depth=20,optimizer=adamw]"`` -> ``("default", {"depth": 20, ...})``: an
    ablation is a preset with overrides, named by them in results.csv."""
    import ast

    name, _, spec = contender.partition("[")
    overrides = {}
    for item in filter(None, spec.rstrip("]").split(",")):
        key, _, text = item.partition("=")
        try:
            overrides[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            overrides[key.strip()] = text.strip()
    return name, overrides


def _dnnguide(contender: str, data, seed: int, epochs: int | None, depth: int | None):
    import dnnguide

    contender, overrides = parse_contender(contender)
    preset, _, extra = contender.partition("+")
    if extra == "onecycle":
        overrides.setdefault("schedule", "onecycle")
    if depth:
        overrides["depth"] = depth
    epochs = overrides.pop("epochs", epochs)  # "default+onecycle[epochs=45]" names its budget
    result = dnnguide.fit(preset, data, run_dir=None, seed=seed, verbose=0, epochs=epochs,
                          **overrides)
    model = result.model
    if result.config.uses_mc_dropout:
        prediction = dnnguide.mc_predict(model, data.x_test, seed=seed, verbose=0)  # calibrated
        out = prediction.mean
    else:
        out = model.predict(data.x_test, batch_size=1024, verbose=0)
    diverged = not np.all(np.isfinite(out))
    history = result.history
    curve = ";".join(f"{v:.4f}" for v in history["val_accuracy"]) if (
        "val_accuracy" in history) else None
    config = result.config  # as trained: the LR finder and the decay rules applied
    return out, {"epochs": result.metrics.get("epochs_trained"), "diverged": diverged,
                 "width": config.width, "depth": config.depth,
                 "learning_rate": config.optimizer.learning_rate,
                 "weight_decay": config.optimizer.weight_decay,
                 "max_lr": config.schedule.max_lr if config.schedule.name == "onecycle" else None,
                 # the validation loss of the epoch early stopping restored (before the
                 # temperature): what choosing between configs on validation would compare
                 "best_val_loss": result.metrics.get("best_val_loss"),
                 "val_accuracy_curve": curve}


def _keras_mlp(data, seed: int, widths, *, regularized: bool, epochs: int | None,
               activation="relu", initializer="glorot_uniform"):
    import keras

    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input(data.input_shape)
    for width in widths:
        if regularized:
            x = keras.layers.Dense(width)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation("swish")(x)
            x = keras.layers.Dropout(0.2)(x)
        else:
            x = keras.layers.Dense(width, activation=activation, kernel_initializer=initializer)(x)
    head = {"classification": (data.n_outputs, "softmax", "sparse_categorical_crossentropy"),
            "binary": (1, "sigmoid", "binary_crossentropy"),
            "regression": (data.n_outputs, None, "mse")}[data.task]
    model = keras.Model(inputs, keras.layers.Dense(head[0], activation=head[1])(x))
    optimizer = (keras.optimizers.AdamW(1e-3, weight_decay=1e-2) if regularized
                 else keras.optimizers.Adam(1e-3))
    model.compile(optimizer, head[2])
    stop = keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    history = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                        epochs=epochs or 100, batch_size=32, callbacks=[stop], verbose=0)
    out = model.predict(data.x_test, batch_size=1024, verbose=0)
    losses = np.asarray(history.history["loss"], "float64")
    return out, {"epochs": len(losses), "diverged": not np.all(np.isfinite(out)),
                 "stalled": bool(len(losses) > 1 and losses[-1] > 0.95 * losses[0])}


def _sklearn(contender: str, data, seed: int):
    from sklearn import ensemble, linear_model, neural_network

    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    regression = data.task == "regression"
    model = {
        "sklearn_mlp": (neural_network.MLPRegressor(random_state=seed) if regression
                        else neural_network.MLPClassifier(random_state=seed)),
        "linear": (linear_model.RidgeCV() if regression
                   else linear_model.LogisticRegression(max_iter=2000)),
        "gbdt": (ensemble.HistGradientBoostingRegressor(random_state=seed) if regression
                 else ensemble.HistGradientBoostingClassifier(random_state=seed)),
    }[contender]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's MLP warns that 200 iterations did not converge
        model.fit(x, y)
    out = model.predict(data.x_test) if regression else model.predict_proba(data.x_test)
    if data.task == "binary":
        out = out[:, 1:]
    return out, {"epochs": getattr(model, "n_iter_", None), "diverged": False}


def load(name: str, seed: int, **kwargs):
    """``dnnguide.load_dataset(name, seed=seed)``; a CSV is named ``path.csv`` or
    ``path.csv:column``, its target the column ``target`` unless another is named
    (``bench/heldout_data.py`` writes such files)."""
    import dnnguide

    path, csv, column = name.partition(".csv")
    if not csv:
        return dnnguide.load_dataset(name, seed=seed, **kwargs)
    return dnnguide.load_dataset(path + csv, seed=seed, target=column.lstrip(":") or "target",
                                 **kwargs)


def row_name(name: str) -> str:
    """The ``data`` column of a run on ``name``: the dataset's own name (a CSV's file stem), as
    ``load(name, seed).name`` gives it, without loading it."""
    path, csv, _ = name.partition(".csv")
    return Path(path).name if csv else name


def user_scaled(name: str, seed: int):
    """The same split scaled as a user would: scikit-learn's ``StandardScaler`` on train.

    The baselines stand for what a user writes without dnnguide, so they do not get
    ``load_dataset``'s own scaling (which caps the reach of sparse features at 5).
    """
    import dataclasses

    from sklearn.preprocessing import StandardScaler

    data = load(name, seed, standardize=False)
    scaler = StandardScaler().fit(data.x_train)
    x_train, x_val, x_test = (scaler.transform(x).astype("float32")
                              for x in (data.x_train, data.x_val, data.x_test))
    return dataclasses.replace(data, x_train=x_train, x_val=x_val, x_test=x_test,
                               standardized=True)


def run_one(contender: str, data, seed: int, epochs: int | None = None,
            depth: int | None = None) -> dict:
    """Train one contender on one seed's splits; the row of results.csv."""
    start = time.perf_counter()
    if contender in ("keras_newcomer", "keras_regularized"):
        widths = (100, 100) if contender == "keras_newcomer" else (256, 256, 256)
        out, info = _keras_mlp(data, seed, widths, regularized=contender == "keras_regularized",
                               epochs=epochs)
    elif contender.startswith("plain_relu"):
        out, info = _keras_mlp(data, seed, (256,) * depth, regularized=False, epochs=epochs)
    elif contender in ("sklearn_mlp", "linear", "gbdt"):
        out, info = _sklearn(contender, data, seed)
    else:
        out, info = _dnnguide(contender, data, seed, epochs, depth)
    seconds = time.perf_counter() - start
    scores = score_or_nan(data, out)
    return {"data": data.name, "contender": contender, "seed": seed, **scores,
            "time_s": round(seconds, 2), **{k: v for k, v in info.items() if v is not None}}


# --------------------------------------------------------------------------- tables
def summarize(rows):
    """Mean and std per data x contender (pandas), from the per-run rows."""
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    metrics = [m for m in ("accuracy", "nll", "ece", "rmse", "time_s") if m in frame]
    group = frame.groupby(["data", "contender"], sort=False)
    summary = group[metrics].agg(["mean", "std"])
    summary.columns = [f"{m}_{stat}" for m, stat in summary.columns]
    summary["runs"] = group.size()
    if "diverged" in frame:
        summary["diverged"] = group["diverged"].sum().astype(int)
    return summary.reset_index()


def _metrics_by_data(frame) -> dict[str, list[str]]:
    """The metrics of each dataset in per-run rows or a summary: RMSE for a regression (one
    with an RMSE in any row; diabetes even when every run diverged), else accuracy, NLL, ECE."""
    column = "rmse" if "rmse" in frame else "rmse_mean"
    regression = {"diabetes"}
    if column in frame:
        regression |= set(frame.loc[frame[column].notna(), "data"])
    return {data: ["rmse"] if data in regression else ["accuracy", "nll", "ece"]
            for data in frame["data"].unique()}


def markdown(summary) -> str:
    """One markdown table: rows are contenders, columns data x metric, 'mean ± std'."""
    cells: dict[str, dict[str, str]] = {}
    columns = []
    by_data = _metrics_by_data(summary)
    for row in summary.itertuples(index=False):
        row = row._asdict()
        for metric in by_data[row["data"]]:
            column = f"{row['data']} {metric}"
            if column not in columns:
                columns.append(column)
            mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
            if mean is None or not np.isfinite(mean):
                text = f"NaN ({row.get('diverged', '?')} diverged)"
            elif metric == "rmse":  # four figures: targets come in any units
                text = f"{mean:.4g} ± {0 if np.isnan(std) else std:.2g}"
            else:
                text = f"{mean:.3f} ± {0 if np.isnan(std) else std:.3f}"
            cells.setdefault(row["contender"], {})[column] = text
    lines = ["| contender | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for contender, by_column in cells.items():
        lines.append(f"| {contender} | " + " | ".join(by_column.get(c, "") for c in columns)
                     + " |")
    times = summary.pivot(index="contender", columns="data", values="time_s_mean")
    times = times.reindex(list(cells))
    lines += ["", "Wall time per run (s, mean over seeds):", "",
              "| contender | " + " | ".join(times.columns) + " |",
              "|---|" + "---|" * len(times.columns)]
    for contender, row in times.iterrows():
        lines.append(f"| {contender} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    return "\n".join(lines)


def consistency_markdown(frame) -> str:
    """Per data x contender: the mean ECE, the mean ECE a calibrated model with the same
    confidences would score on the same test rows (Bröcker & Smith's consistency resampling,
    :func:`dnnguide.calibration.calibration_consistency`), and in how many runs the ECE is
    beyond that model's at the 5% level (about 1 in 20 when calibrated). Empty without the
    ``ece_calibrated`` column (rows from before it)."""
    if "ece_calibrated" not in frame:
        return ""
    rows = frame.dropna(subset=["ece_calibrated"])
    lines = ["| data | contender | ECE | a calibrated model's ECE | runs off at 5% |",
             "|---|---|---|---|---|"]
    for (data, contender), part in rows.groupby(["data", "contender"], sort=False):
        lines.append(f"| {data} | {contender} | {part['ece'].mean():.4f} | "
                     f"{part['ece_calibrated'].mean():.4f} | "
                     f"{int((part['ece_p'] < 0.05).sum())} of {len(part)} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def wins(summary, contender: str = "default") -> tuple[int, int, list[str]]:
    """Cells (data x metric) where ``contender`` beats every rival's mean; and the losses."""
    better = {"accuracy": np.greater, "nll": np.less, "ece": np.less, "rmse": np.less}
    won, total, lost = 0, 0, []
    by_data = _metrics_by_data(summary)
    for data, part in summary.groupby("data", sort=False):
        own = part[part.contender == contender]
        if own.empty:
            continue
        for metric in by_data[data]:
            rivals = part[part.contender.isin(RIVALS)][f"{metric}_mean"]
            if rivals.empty:
                continue
            total += 1
            mine = float(own[f"{metric}_mean"].iloc[0])
            if np.isfinite(mine) and all(better[metric](mine, r) for r in rivals):
                won += 1
            else:
                lost.append(f"{data} {metric}")
    return won, total, lost


GAIN_SIGN = {"accuracy": 1.0, "nll": -1.0, "ece": -1.0, "rmse": -1.0}  # + = better


def paired(frame, contender: str, rivals=RIVALS, z: float = 2.0):
    """Per cell (data x metric), ``contender`` against each rival on the same seeds (pandas).

    Every contender trains on the same splits per seed, so the difference is paired by seed:
    ``gain_<rival>`` is the mean improvement over that rival (accuracy up, NLL/ECE/RMSE down)
    and ``se_<rival>`` its standard error. The verdict reads the means with their noise: "win"
    when the gain over every rival exceeds ``z`` standard errors, "loss" when some rival is
    better by more than ``z``, "tie" otherwise. A cell won on the means alone (:func:`wins`)
    can be a tie here, and so can a lost one.
    """
    import pandas as pd

    rows = []
    by_data = _metrics_by_data(frame)
    for data, part in frame.groupby("data", sort=False):
        own = part[part.contender == contender].set_index("seed")
        if own.empty:
            continue
        for metric in by_data[data]:
            row, verdicts = {"data": data, "metric": metric,
                             "mean": float(own[metric].mean())}, []
            for rival in rivals:
                theirs = part[part.contender == rival].set_index("seed")[metric]
                if theirs.empty:
                    continue
                shared = own.index.intersection(theirs.index)
                gain = (GAIN_SIGN[metric] * (own[metric] - theirs)).dropna()
                if own[metric].reindex(shared).isna().any():  # a diverged (NaN) run loses...
                    mean, se = -np.inf, 0.0
                elif theirs.reindex(shared).isna().any():  # ...to a rival's, and wins over one
                    mean, se = np.inf, 0.0
                else:
                    mean = float(gain.mean())
                    se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else np.inf
                row[f"gain_{rival}"], row[f"se_{rival}"] = mean, se
                verdicts.append("win" if mean - z * se > 0 else
                                "loss" if mean + z * se < 0 else "tie")
            if verdicts:
                row["verdict"] = ("win" if all(v == "win" for v in verdicts) else
                                  "loss" if "loss" in verdicts else "tie")
                rows.append(row)
    return pd.DataFrame(rows)


def onecycle_speed(frame, data: str = "mnist1d"):
    """Per seed: epochs 1cycle needs to reach the default's best validation accuracy.

    ``ratio_best`` divides by the epoch at which the default reached that accuracy;
    ``ratio_trained`` by the epochs the default trained (early stopping's patience included).
    """
    import pandas as pd

    rows = []
    part = frame[(frame.data == data) & frame.contender.isin(["default", "default+onecycle"])]
    for seed, runs in part.groupby("seed"):
        curves = {r.contender: [float(v) for v in str(r.val_accuracy_curve).split(";")]
                  for r in runs.itertuples() if isinstance(r.val_accuracy_curve, str)}
        if len(curves) < 2:
            continue
        base, cycle = curves["default"], curves["default+onecycle"]
        target = max(base)
        reached = next((i + 1 for i, v in enumerate(cycle) if v >= target), None)
        rows.append({"seed": seed, "default_best_val_accuracy": target,
                     "default_epoch_of_best": base.index(target) + 1,
                     "default_epochs_trained": len(base), "onecycle_epochs_to_reach": reached,
                     "onecycle_best_val_accuracy": max(cycle)})
    table = pd.DataFrame(rows)
    if len(table):
        table["ratio_best"] = table.onecycle_epochs_to_reach / table.default_epoch_of_best
        table["ratio_trained"] = table.onecycle_epochs_to_reach / table.default_epochs_trained
    return table


def plot(summary, path: Path) -> Path:
    """Bars with error bars: test accuracy per dataset (classification), RMSE (regression)."""
    from dnnguide.runs import pyplot, save_figure

    plt = pyplot()
    datasets = list(dict.fromkeys(summary["data"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 4.8), squeeze=False)
    by_data = _metrics_by_data(summary)
    for ax, name in zip(axes[0], datasets):
        part = summary[summary.data == name]
        metric = by_data[name][0]
        ax.barh(part["contender"], part[f"{metric}_mean"], xerr=part[f"{metric}_std"].fillna(0),
                color=["tab:blue" if c in PRESETS or "+" in c else "tab:gray"
                       for c in part["contender"]])
        ax.set(title=name, xlabel=f"test {metric} (mean ± std over seeds)")
        values = part[f"{metric}_mean"].dropna()
        if len(values):
            low = max(values.min() - 2 * part[f"{metric}_std"].fillna(0).max(), 0)
            ax.set_xlim(low * 0.98, values.max() * 1.02 + 1e-9)
        ax.invert_yaxis()
    fig.suptitle("dnnguide presets (blue) vs hand-written baselines (grey)")
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- main
def _versions() -> str:
    import keras
    import sklearn

    import dnnguide

    versions = [f"Python {platform.python_version()}", f"Keras {keras.__version__}",
                f"scikit-learn {sklearn.__version__}",
                f"dnnguide {getattr(dnnguide, '__version__', '?')}"]
    try:
        import tensorflow as tf

        versions.insert(2, f"TensorFlow {tf.__version__}")
    except ImportError:
        pass
    return ", ".join(versions) + f"; {os.cpu_count()} CPU cores"


def _write_benchmarks_md(table: str, command: str, path: Path) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = (f"{MARK_BEGIN}\n`{command}` ({_versions()})\n\n{table}\n{MARK_END}")
    if MARK_BEGIN in text:
        head, rest = text.split(MARK_BEGIN, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Presets vs baselines\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="seeds to run (default 0-4); with --table-only, the rows to keep")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS))
    parser.add_argument("--epochs", type=int, default=None, help="cap (default: each's own)")
    parser.add_argument("--depth-study", action="store_true",
                        help="depth 2, 5, 10, 20, 50 on mnist1d: plain ReLU vs the presets")
    parser.add_argument("--depths", nargs="+", type=int, default=[2, 5, 10, 20, 50])
    parser.add_argument("--out", default="bench/results/presets_vs_baselines")
    parser.add_argument("--resume", action="store_true", help="skip runs already in results.csv")
    parser.add_argument("--table-only", metavar="CSV", nargs="+",
                        help="tables and plot from saved rows (several CSVs: a later file's row "
                             "for the same data, contender and seed replaces an earlier one)")
    parser.add_argument("--benchmarks-md", metavar="PATH", help="rewrite the table in this file")
    args = parser.parse_args(argv)
    import pandas as pd

    out = Path(args.out) / ("depth_study" if args.depth_study else "")
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "results.csv"
    if args.table_only:
        frame = (pd.concat([pd.read_csv(path) for path in args.table_only], ignore_index=True)
                 .drop_duplicates(["data", "contender", "seed"], keep="last"))
        if args.seeds:
            frame = frame[frame.seed.isin(args.seeds)]
    else:
        args.seeds = args.seeds or [0, 1, 2, 3, 4]
        frame = _run_all(args, csv)
    summary = summarize(frame)
    summary.to_csv(out / "summary.csv", index=False)
    table = (_depth_table(frame) if args.depth_study else markdown(summary))
    consistency = "" if args.depth_study else consistency_markdown(frame)
    if consistency:
        table += ("\n\nCalibration beyond sampling noise (ECE against a calibrated model's on the "
                  "same confidences and rows):\n\n" + consistency)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    if not args.depth_study:
        plot(summary, out / "presets_vs_baselines.png")
        paired_rows = []
        for contender in dict.fromkeys(summary.contender):
            if contender not in BASELINES:
                won, total, lost = wins(summary, contender)
                verdicts = paired(frame, contender)
                counts = verdicts["verdict"].value_counts() if len(verdicts) else {}
                print(f"{contender}: beats {' and '.join(RIVALS)} on {won}/{total} cells; "
                      f"not on: {', '.join(lost) or 'none'}. Paired by seed (2 SE): "
                      + ", ".join(f"{counts.get(v, 0)} {v}" for v in ("win", "tie", "loss")))
                verdicts.insert(0, "contender", contender)
                paired_rows.append(verdicts)
        if paired_rows:
            pd.concat(paired_rows).to_csv(out / "paired.csv", index=False)
        speed = onecycle_speed(frame)
        if len(speed):
            speed.to_csv(out / "onecycle_speed.csv", index=False)
            print("1cycle vs default on mnist1d (epochs to the default's best val accuracy):")
            print(speed.to_string(index=False))
    else:
        _plot_depth(frame, out / "depth_study.png")
    if args.benchmarks_md:
        command = "python bench/presets_vs_baselines.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]) if a != "--benchmarks-md")
        _write_benchmarks_md(table, command.strip(), Path(args.benchmarks_md))
    print(f"results: {out}")
    return 0


def _run_all(args, csv: Path):
    import pandas as pd

    done = pd.read_csv(csv) if (args.resume and csv.exists()) else None
    if csv.exists() and not args.resume:
        raise SystemExit(f"{csv} exists: pass --resume to add to it or --out for a new folder "
                         "(results are never overwritten).")
    plan = []
    if args.depth_study:
        for depth in args.depths:
            for contender in ("plain_relu", "default", "self_normalizing"):
                plan += [("mnist1d", contender, seed, depth) for seed in args.seeds]
    else:
        plan = [(d, c, s, None) for d in args.data for s in args.seeds for c in args.contenders]
    rows = [] if done is None else done.to_dict("records")
    from tqdm import tqdm

    cache = {}
    for name, contender, seed, depth in tqdm(plan, desc="runs", unit="run"):
        # Rows name their data as the dataset does (a CSV by its stem), not by the path given.
        key = (row_name(name), contender, seed) + ((depth,) if args.depth_study else ())
        if done is not None and any(
                (r["data"], r["contender"], r["seed"]) + ((r.get("depth"),) if depth else ())
                == key for r in rows):
            continue
        if (name, seed) not in cache:
            cache = {(name, seed): load(name, seed),
                     (name, seed, "user"): user_scaled(name, seed)}
        user = contender in BASELINES or contender.startswith("plain_relu")
        row = run_one(contender, cache[(name, seed) + (("user",) if user else ())], seed,
                      args.epochs, depth)
        if depth:
            row["depth"] = depth
        tqdm.write(f"{name:>13} {contender:>18} seed {seed}"
                   + (f" depth {depth}" if depth else "") + " -> "
                   + ", ".join(f"{k} {row[k]:.4g}" for k in ("accuracy", "rmse", "nll", "ece",
                                                             "time_s") if k in row))
        rows.append(row)
        pd.DataFrame(rows).to_csv(csv, index=False)  # every finished run is kept
    return pd.DataFrame(rows)


def _depth_table(frame) -> str:
    part = frame.copy()
    part["outcome"] = np.where(part.get("diverged", False) == True, "diverged",  # noqa: E712
                               np.where(part["accuracy"] < 0.2, "stalled", "trained"))
    grouped = part.groupby(["contender", "depth"])
    table = grouped["accuracy"].agg(["mean", "std"]).round(3)
    table["outcome"] = grouped["outcome"].agg(lambda s: ", ".join(sorted(set(s))))
    wide = table.reset_index().pivot(index="contender", columns="depth")
    lines = ["| contender | " + " | ".join(f"depth {d}" for d in sorted(part.depth.unique()))
             + " |", "|---|" + "---|" * part.depth.nunique()]
    for contender in wide.index:
        cells = []
        for depth in sorted(part.depth.unique()):
            mean, std = wide.loc[contender, ("mean", depth)], wide.loc[contender, ("std", depth)]
            outcome = wide.loc[contender, ("outcome", depth)]
            std_text = "" if np.isnan(std) else f" ± {std:.3f}"
            cells.append(f"{mean:.3f}{std_text} ({outcome})")
        lines.append(f"| {contender} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot_depth(frame, path: Path) -> Path:
    from dnnguide.runs import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for contender, part in frame.groupby("contender"):
        stats = part.groupby("depth")["accuracy"].agg(["mean", "std"])
        line = ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o",
                           capsize=3, label=contender)
        failed = stats.index[stats["mean"].isna()]  # every seed diverged: no accuracy to plot
        ax.scatter(failed, [0.0] * len(failed), marker="x", s=60, color=line[0].get_color(),
                   label=f"{contender}: diverged" if len(failed) else None)
    ax.set(xscale="log", xlabel="hidden layers", ylabel="mnist1d test accuracy",
           title="Depth study: does training stall or diverge?")
    ax.minorticks_off()  # log-scale minor labels would overprint the depths
    ax.set_xticks(sorted(frame.depth.unique()), [str(d) for d in sorted(frame.depth.unique())])
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
