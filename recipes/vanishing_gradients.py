"""Why the guidelines exist: per-layer gradient norms of four 20-layer nets, side by side.

Four setups of the same 20-hidden-layer dense net:

(a) sigmoid + Glorot uniform + plain SGD (the pre-2010 default): gradients vanish
    toward the input, the first layers barely learn;
(b) ReLU + He initialization (same plain SGD);
(c) the ``default`` preset (He + Swish + batch norm, AdamW);
(d) the ``self_normalizing`` preset (LeCun normal + SELU, Nesterov).

Each is checked once before training (:func:`dnnguide.diagnostics.check_model`: one
forward and backward pass on 256 training rows) and, unless ``--epochs 0``, trained with
the diagnostics callback. The recipe prints the first-layer / last-layer gradient-norm
ratio of each and writes the side-by-side plot and the table to a run directory.

Usage::

    python recipes/vanishing_gradients.py                 # mnist1d, 10 epochs each
    python recipes/vanishing_gradients.py --epochs 0      # the picture at initialization only
    python recipes/vanishing_gradients.py --quick         # digits, check only (seconds)
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: label -> (preset, overrides). (a) and (b) share plain SGD so only activation + init differ.
SETUPS = {
    "sigmoid+glorot+sgd": ("default", {"activation": "sigmoid",
                                       "kernel_initializer": "glorot_uniform",
                                       "normalization": "none", "optimizer": "sgd"}),
    "relu+he": ("default", {"activation": "relu", "kernel_initializer": "he_normal",
                            "normalization": "none", "optimizer": "sgd"}),
    "default (swish+bn)": ("default", {}),
    "self_normalizing (selu)": ("self_normalizing", {}),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist1d", choices=["mnist1d", "digits"])
    parser.add_argument("--depth", type=int, default=20, help="hidden layers (default 20)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="training epochs per setup; 0 = check at initialization only")
    parser.add_argument("--rows", type=int, default=256, help="probe batch rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs", help="root folder of run directories")
    parser.add_argument("--quick", action="store_true", help="digits, no training (seconds)")
    args = parser.parse_args(argv)
    if args.quick:
        args.data, args.epochs = "digits", 0

    import keras
    import pandas as pd

    import dnnguide
    from dnnguide.diagnostics import (
        check_model, gradient_ratio, load_diagnostics, plot_gradient_norms,
    )
    from dnnguide.runs import atomic_write_text, new_run_dir

    data = dnnguide.load_dataset(args.data, seed=args.seed)
    root = new_run_dir(args.run_dir, "vanishing_gradients")
    x_probe, y_probe = data.x_train[:args.rows], data.y_train[:args.rows]
    at_init, during, rows = {}, {}, []
    for label, (preset, overrides) in SETUPS.items():
        keras.utils.set_random_seed(args.seed)
        model = dnnguide.build_model(preset, data.input_shape, data.n_outputs, data.task,
                                     depth=args.depth, **overrides)
        report = check_model(model, x_probe, y_probe)
        at_init[label] = report.frame
        row = {"setup": label, "ratio_at_init": gradient_ratio(report.frame),
               "findings_at_init": ", ".join(report.kinds) or "none"}
        print(f"\n== {label}: first/last-layer gradient norm ratio at init "
              f"{row['ratio_at_init']:.2g}")
        for finding in report.findings:
            print(f"   - {finding}")
        if args.epochs > 0:
            result = dnnguide.fit(model, data, run_dir=root, name=label, epochs=args.epochs,
                                  seed=args.seed, diagnose=True, verbose=2)
            frame = load_diagnostics(result.run_dir)
            during[label] = frame
            row.update(ratio_after=gradient_ratio(frame, frame["step"].max()),
                       test_accuracy=result.metrics.get("test_accuracy"), run=result.run_dir.name)
        rows.append(row)
    table = pd.DataFrame(rows)
    atomic_write_text(root / "comparison.csv", table.to_csv(index=False))
    title = f"{args.depth}-layer nets on {args.data}: gradient norm per layer"
    plots = [plot_gradient_norms(at_init, root / "plots" / "gradient_norms_at_init.png",
                                 title=title + " (at initialization)")]
    if during:
        plots.append(plot_gradient_norms(during, root / "plots" / "gradient_norms_training.png",
                                         title=title + " (during training)"))
    print("\n" + table.to_string(index=False, float_format="{:.3g}".format))
    print(f"\nrun directory: {root}")
    for path in plots:
        print(f"plot: {path}")
    return table


if __name__ == "__main__":
    main()
