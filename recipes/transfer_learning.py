"""Does transfer help with few labels? The classic split experiment, over several seeds.

On a dataset with 10 classes, model A learns 8 of them; task B is binary, the two other classes,
with only a few labelled examples (50, 100, 200 by default). B is trained five ways, all with the
same preset, early stopping and budget:

- ``scratch``: from random weights;
- ``A frozen``: A's hidden layers (frozen for the whole run) under a new head;
- ``A fine-tuned``: the same, frozen for ``--head-epochs`` and then fine-tuned at 10x lower LR;
- ``AE frozen`` / ``AE fine-tuned``: the encoder of an autoencoder pretrained on every training
  input of the dataset (no labels), used the same two ways.

Each seed draws new labelled examples and new initializations (A and the autoencoder are
retrained per seed). B's labelled examples are split 80/20 for early stopping; the test set is
every B example of the dataset's test split. Fashion-MNIST is used when it is on disk
(``dnnguide.data``), otherwise digits and mnist1d.

Usage::

    python recipes/transfer_learning.py                  # digits + mnist1d, 5 seeds
    python recipes/transfer_learning.py --quick          # seconds, for the tests

Writes ``<run-dir>/<time>-transfer_learning/`` with ``results.csv`` (one row per seed, size and
method), ``summary.csv`` (mean, std and gain over scratch) and ``accuracy_vs_labels.png``.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

METHODS = ("scratch", "A frozen", "A fine-tuned", "AE frozen", "AE fine-tuned")


def _default_data() -> list[str]:
    from dnnguide.data import DataError, load_dataset

    try:
        load_dataset("fashion_mnist")
        return ["fashion_mnist"]
    except DataError:
        return ["digits", "mnist1d"]


def split_tasks(dataset, b_classes):
    """Arrays of task A (the other classes, relabelled 0..k-1) and the B pools (labels 0/1)."""
    import numpy as np

    from dnnguide.data import from_arrays

    _, b1 = b_classes
    in_b = {s: np.isin(getattr(dataset, f"y_{s}"), b_classes) for s in ("train", "val", "test")}
    a_labels = sorted(set(np.unique(dataset.y_train)) - set(b_classes))
    relabel = np.vectorize({c: i for i, c in enumerate(a_labels)}.get)
    a = {s: (getattr(dataset, f"x_{s}")[~in_b[s]], relabel(getattr(dataset, f"y_{s}")[~in_b[s]]))
         for s in ("train", "val", "test")}
    task_a = from_arrays(*a["train"], x_val=a["val"][0], y_val=a["val"][1], x_test=a["test"][0],
                         y_test=a["test"][1], task="classification", name=f"{dataset.name}-A")
    pool = dataset.x_train[in_b["train"]], (dataset.y_train[in_b["train"]] == b1).astype("int64")
    test = dataset.x_test[in_b["test"]], (dataset.y_test[in_b["test"]] == b1).astype("int64")
    return task_a, pool, test


def draw_b(pool, test, n_labels: int, seed: int, name: str):
    """``n_labels`` examples of task B, half per class, split 80/20 into train and validation."""
    import numpy as np

    from dnnguide.data import from_arrays

    x, y = pool
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.choice(np.flatnonzero(y == c), n_labels // 2, replace=False)
                             for c in (0, 1)])
    return from_arrays(x[picked], y[picked], task="binary", x_test=test[0], y_test=test[1],
                       val_fraction=0.2, seed=seed, name=f"{name}-B{n_labels}")


def run_seed(dataset, seed: int, args, overrides) -> list[dict]:
    import dnnguide

    task_a, pool, test = split_tasks(dataset, args.b_classes)
    common = {"epochs": args.epochs, "seed": seed, "run_dir": None, "verbose": 0}
    # A and the autoencoder have thousands of examples: larger batches, their own budget.
    pretraining = {"epochs": args.pretrain_epochs, "batch_size": args.pretrain_batch_size,
                   "seed": seed, **overrides}
    info = {"data": dataset.name, "seed": seed}
    if any(method.startswith("A ") for method in args.methods):
        body_a = dnnguide.pretrain_auxiliary(args.preset, task_a, **pretraining)
        info["a_test_accuracy"] = body_a.pretraining.metrics["test_accuracy"]
    if any(method.startswith("AE ") for method in args.methods):
        encoder = dnnguide.pretrain_autoencoder(args.preset, dataset.x_train, **pretraining)
        info.update({f"ae_{k}": v for k, v in encoder.pretraining.metrics.items()
                     if k.startswith("val_mse")})
    rows = []
    for n_labels in args.labels:
        data_b = draw_b(pool, test, n_labels, seed, dataset.name)
        for method in args.methods:
            if method == "scratch":
                result = dnnguide.fit(args.preset, data_b, **common, **overrides)
            else:
                source = body_a if method.startswith("A ") else encoder
                frozen_only = method.endswith("frozen")
                model = dnnguide.reuse_layers(source, "all", n_outputs=1, task="binary",
                                              config=dnnguide.get_preset(args.preset, **overrides))
                if frozen_only:
                    result = dnnguide.fit(model, data_b, **common)
                else:
                    result = dnnguide.fine_tune(model, data_b, head_epochs=args.head_epochs,
                                                **common)
            rows.append({**info, "n_labels": n_labels, "method": method,
                         "test_accuracy": result.metrics["test_accuracy"],
                         "epochs_trained": result.metrics["epochs_trained"]})
        print(f"  {dataset.name} seed {seed} n={n_labels}: " + ", ".join(
            f"{r['method']} {r['test_accuracy']:.3f}" for r in rows[-len(args.methods):]),
            flush=True)
    return rows


def summarize(results):
    """Mean and std per data set, size and method, and the mean paired gain over scratch."""
    scratch = results[results["method"] == "scratch"].set_index(["data", "n_labels", "seed"])
    gain = results.join(scratch["test_accuracy"].rename("scratch_accuracy"),
                        on=["data", "n_labels", "seed"])
    gain["gain"] = gain["test_accuracy"] - gain["scratch_accuracy"]
    summary = gain.groupby(["data", "n_labels", "method"], sort=False).agg(
        mean=("test_accuracy", "mean"), std=("test_accuracy", "std"),
        gain_mean=("gain", "mean"), gain_std=("gain", "std"),
        seeds_better=("gain", lambda g: int((g > 0).sum())), seeds=("gain", "size"))
    return summary.reset_index()


def plot(summary, path) -> None:
    from dnnguide.runs import pyplot, save_figure

    plt = pyplot()
    names = list(dict.fromkeys(summary["data"]))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = summary[summary["data"] == name]
        for method in dict.fromkeys(part["method"]):
            line = part[part["method"] == method]
            ax.errorbar(line["n_labels"], line["mean"], yerr=line["std"].fillna(0), marker="o",
                        capsize=3, label=method)
        ax.set(xscale="log", xlabel="labelled examples of task B", ylabel="test accuracy (B)",
               title=f"{name}: mean ± std over seeds")
        sizes = sorted(set(part["n_labels"]))
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", help="default: fashion_mnist if on disk, else "
                                                  "digits and mnist1d")
    parser.add_argument("--b-classes", nargs=2, type=int, default=[3, 8], metavar=("C0", "C1"),
                        help="the two classes of task B (3 and 8: easily confused)")
    parser.add_argument("--labels", nargs="+", type=int, default=[50, 100, 200])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run are first-seed ... first-seed + seeds - 1")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--depth", type=int, help="hidden layers (default: the preset's)")
    parser.add_argument("--epochs", type=int, default=100, help="upper bound; early stopping")
    parser.add_argument("--head-epochs", type=int, default=20,
                        help="epochs with the reused layers frozen before fine-tuning")
    parser.add_argument("--pretrain-epochs", type=int, default=50,
                        help="budget of model A and of the autoencoder (early stopping)")
    parser.add_argument("--pretrain-batch-size", type=int, default=128)
    parser.add_argument("--summarize", nargs="+", metavar="RESULTS_CSV",
                        help="train nothing: merge results.csv files of earlier runs (e.g. one "
                             "per data set, run in parallel) into one table and plot")
    parser.add_argument("--run-dir", default="runs")
    parser.add_argument("--quick", action="store_true", help="tiny budget, for the tests")
    args = parser.parse_args(argv)
    overrides = {"depth": args.depth} if args.depth else {}
    if args.quick:
        args.data, args.labels, args.seeds = args.data or ["digits"], [50], 2
        args.epochs, args.head_epochs, args.pretrain_epochs = 6, 3, 6
        args.methods = ["scratch", "A fine-tuned"]
        overrides.update(depth=2, width=32)

    import keras
    import pandas as pd

    import dnnguide
    from dnnguide.runs import atomic_write_text, new_run_dir

    out = new_run_dir(args.run_dir, "transfer_learning")
    if args.summarize:
        results = pd.concat([pd.read_csv(path) for path in args.summarize], ignore_index=True)
    else:
        rows = []
        for name in args.data or _default_data():
            dataset = dnnguide.load_dataset(name, seed=0)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rows += run_seed(dataset, seed, args, overrides)
                keras.backend.clear_session()  # hundreds of small models: keep memory flat
        results = pd.DataFrame(rows)
    summary = summarize(results)
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    plot(summary, out / "accuracy_vs_labels.png")
    shown = summary.assign(
        accuracy=[f"{m:.3f} ± {s:.3f}" for m, s in zip(summary["mean"], summary["std"])],
        gain=[f"{m:+.3f} ± {s:.3f}" for m, s in zip(summary["gain_mean"], summary["gain_std"])],
        better=[f"{b}/{n}" for b, n in zip(summary["seeds_better"], summary["seeds"])])
    with pd.option_context("display.width", 200):
        print(shown[["data", "n_labels", "method", "accuracy", "gain", "better"]]
              .to_string(index=False))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
