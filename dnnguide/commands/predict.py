"""``dnnguide predict RUN_DIR --data new.csv``: score new rows with a trained run.

The rows go through the run's own preprocessing (columns checked by name, categories encoded,
features standardized with the training statistics); the output has one row per input row:
``prediction`` (in the training file's class names, or the regression value), one
``proba_<class>`` column per class, and with ``--mc-samples N`` the MC dropout mean and std.
Written to ``--out`` (never over an existing file) or printed as CSV.

Example::

    dnnguide predict runs/20260101T000000Z-default --data new_wines.csv --out predictions.csv
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predict new rows of a CSV with a trained run",
        description="Predict the rows of a CSV file with a run's model and its training "
                    "preprocessing; labels come back in the training file's class names.")
    p.add_argument("run_dir", help="a run directory written by `dnnguide train` / dnnguide.fit")
    p.add_argument("--data", required=True, help="CSV file with the training columns")
    p.add_argument("--out", help="write the predictions to this CSV file (must not exist); "
                                 "default: print them")
    p.add_argument("--mc-samples", type=int, default=0,
                   help="also MC dropout mean/std over N samples (runs with dropout)")
    p.add_argument("--seed", type=int, help="seed of the MC dropout masks")
    p.set_defaults(func=_run)


def _run(args, _overrides) -> int:
    from pathlib import Path

    import pandas as pd

    from dnnguide.config import check_range
    from dnnguide.data import DataError
    from dnnguide.predict import load_run
    from dnnguide.runs import RunExistsError, atomic_write_text

    # Everything that can be refused is refused before the (slow) model loading.
    if args.mc_samples:
        check_range("mc_samples", args.mc_samples, 1, integer=True)
    if args.out and Path(args.out).exists():
        raise RunExistsError(f"{args.out} exists; predictions never overwrite a file. Pass "
                             "another --out path.")
    if not str(args.data).endswith(".csv"):
        raise DataError(f"CSV files must end in .csv. Received: --data {args.data!r}")
    if not Path(args.data).exists():
        raise FileNotFoundError(f"CSV file not found: {args.data!r}")
    try:
        frame = pd.read_csv(args.data)
    except pd.errors.EmptyDataError:
        raise DataError(f"CSV file {args.data!r} is empty.") from None
    run = load_run(args.run_dir)
    table = pd.DataFrame({"prediction": run.predict(frame)}) if run.task != "regression" else \
        pd.DataFrame(_columns("prediction", run.predict(frame)))
    if run.task != "regression":
        proba = run.predict_proba(frame)
        for j, name in enumerate(run.classes):
            table[f"proba_{name}"] = proba[:, j]
    if args.mc_samples:
        mc = run.predict_mc(frame, n_samples=args.mc_samples, seed=args.seed)
        names = run.classes if run.task != "regression" else None
        for prefix, values in (("mc_mean", mc.mean), ("mc_std", mc.std)):
            for column, series in _columns(prefix, values, names).items():
                table[column] = series
        if run.task != "regression":
            table["mc_prediction"] = mc.labels
    text = table.to_csv(index=False)
    if args.out:
        # Checked again at the last moment: the file may have appeared while predicting.
        if Path(args.out).exists():
            raise RunExistsError(f"{args.out} exists; predictions never overwrite a file.")
        atomic_write_text(Path(args.out), text)
        print(f"{len(table)} predictions written to {args.out}")
    else:
        print(text, end="")
    return 0


def _columns(prefix: str, values, names=None) -> dict:
    """``values`` of shape (n,) or (n, k) as named columns."""
    import numpy as np

    values = np.asarray(values)
    if values.ndim == 1 or values.shape[-1] == 1:
        return {prefix: values.reshape(len(values))}
    names = names if names is not None else range(values.shape[-1])
    return {f"{prefix}_{name}": values[:, j] for j, name in enumerate(names)}
