"""``dnnguide pretrain``: pretrain an autoencoder on unlabelled inputs, then train on the labels.

Example::

    dnnguide pretrain --data labelled.csv --target y --unlabelled unlabelled.csv --freeze-epochs 10
    dnnguide pretrain --data digits --unlabelled digits --depth 3 --pretrain-epochs 50

The autoencoder (the preset's hidden stack, mirrored) learns from the unlabelled inputs and the
labelled training inputs; its encoder becomes the lower layers of the classifier or regressor,
which is trained on ``--data`` (frozen for the whole run, or ``--freeze-epochs`` epochs and then
fine-tuned at a 10x lower learning rate). Both data sets go into the model unscaled: the
encoder's first layer standardizes with the statistics of the unlabelled pool, so labelled and
unlabelled inputs are scaled the same way. Writes one run directory with the trained model,
``encoder.keras``, ``pretraining.csv`` (the autoencoder's history) and the reconstruction error
in ``metrics.json``.
"""

from __future__ import annotations


def register(subparsers) -> None:
    from dnnguide.cli import add_transfer_arguments

    p = subparsers.add_parser(
        "pretrain", help="pretrain an autoencoder on unlabelled inputs and reuse its encoder",
        description=__doc__.split("\n\n")[2].replace("\n", " "))
    p.add_argument("--preset", default="default", help="preset name (see `dnnguide presets`)")
    p.add_argument("--data", required=True, help="labelled data: a dataset name or a .csv path")
    p.add_argument("--target", help="target column of a labelled CSV file")
    p.add_argument("--task", choices=["classification", "binary", "regression"],
                   help="force the task of a CSV file (else inferred)")
    p.add_argument("--unlabelled", required=True, metavar="DATA",
                   help="unlabelled inputs: a .csv (feature columns only; --target is dropped "
                        "if present), a .npy array, or a dataset name (its training inputs)")
    p.add_argument("--tied", action="store_true", help="tie decoder and encoder weights")
    p.add_argument("--pretrain-epochs", type=int, help="autoencoder budget (default: preset's)")
    p.add_argument("--epochs", type=int, help="supervised budget, both phases (default: preset's)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the preset's)")
    add_transfer_arguments(p, init_from=False)
    p.add_argument("--seed", type=int, default=0, help="seed for Python, NumPy and Keras")
    p.add_argument("--run-dir", default="runs", help="root folder of run directories")
    p.add_argument("--name", help="run name (default: pretrain-<preset>)")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="Keras progress")
    p.set_defaults(func=_pretrain, accepts_overrides=True)


def _unlabelled(source: str, target: str | None, seed: int):
    import numpy as np

    from dnnguide.data import DataError, load_dataset

    if source.endswith(".npy"):
        return np.load(source, allow_pickle=False).astype("float32")
    if source.endswith(".csv"):
        import pandas as pd

        frame = pd.read_csv(source)
        frame = frame.drop(columns=[target]) if target in frame.columns else frame
        non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise DataError(f"Unlabelled CSV {source!r} has non-numeric columns {non_numeric}; "
                            "the labelled data's columns must match it one for one.")
        return frame.to_numpy("float32")
    return load_dataset(source, seed=seed, standardize=False).x_train


def _pretrain(args, overrides) -> int:
    import numpy as np

    import dnnguide
    from dnnguide.data import DataError, load_dataset, validate_arrays
    from dnnguide.presets import resolve_config
    from dnnguide.pretrain import pretrain_autoencoder
    from dnnguide.runs import atomic_save_model, atomic_write_json, atomic_write_text
    from dnnguide.transfer import reuse_layers

    config = resolve_config(args.preset, **overrides)  # bad overrides fail before any data
    data = load_dataset(args.data, seed=args.seed, target=args.target, task=args.task,
                        standardize=False)
    unlabelled = _unlabelled(args.unlabelled, args.target, args.seed)
    if unlabelled.shape[1:] != data.x_train.shape[1:]:
        raise DataError(f"Unlabelled inputs have shape {unlabelled.shape[1:]} per row, the "
                        f"labelled ones {data.x_train.shape[1:]}: they must be the same features.")
    validate_arrays(unlabelled, np.zeros(len(unlabelled)), "regression", label="unlabelled")
    pool = np.concatenate([unlabelled, data.x_train])
    encoder = pretrain_autoencoder(config, pool, tied=args.tied, epochs=args.pretrain_epochs,
                                   batch_size=args.batch_size, seed=args.seed,
                                   verbose=args.verbose)
    model = reuse_layers(encoder, "all", n_outputs=data.n_outputs, task=data.task,
                         freeze=args.freeze_epochs != 0, config=config)
    result = dnnguide.fit(model, data, run_dir=args.run_dir,
                          name=args.name or f"pretrain-{args.preset}", epochs=args.epochs,
                          batch_size=args.batch_size, seed=args.seed, verbose=args.verbose,
                          freeze_epochs=args.freeze_epochs or None)
    pretraining = encoder.pretraining
    metrics = {**result.metrics, **{f"pretrain_{k}": v for k, v in pretraining.metrics.items()},
               "pretrain_n_unlabelled": len(pool)}
    atomic_save_model(encoder, result.run_dir / "encoder.keras")
    atomic_write_text(result.run_dir / "pretraining.csv", pretraining.history.to_csv(index=False))
    atomic_write_json(result.run_dir / "metrics.json", metrics)
    print(f"autoencoder: {len(pool)} inputs, held-out reconstruction MSE "
          f"{pretraining.metrics['val_mse']:.4f} (mean predictor "
          f"{pretraining.metrics['val_mse_mean_predictor']:.4f})")
    shown = {k: round(v, 4) for k, v in result.metrics.items() if k.startswith("test_")}
    print(f"test metrics: {shown}")
    print(f"run directory: {result.run_dir}")
    return 0
