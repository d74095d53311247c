"""``dnnguide lr-find``: sweep the learning rate of a preset on a dataset and suggest one.

Example::

    dnnguide lr-find --preset default --data mnist1d
    dnnguide lr-find --preset default --data digits --rule steepest --optimizer nesterov

Writes ``runs/<time>-lr_find-<preset>/`` with ``lr_find.csv``, ``lr_find.json`` and
``plots/lr_find.png``, and prints the suggestion, ready for ``--schedule onecycle --max-lr``.
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lr-find", help="sweep the learning rate and suggest one (for 1cycle's max_lr)",
        description="Grow the learning rate exponentially over one epoch (at least 200 steps), "
                    "record the smoothed loss, stop at divergence, restore the model, and "
                    "suggest an LR by fastai's valley rule or the steepest descent against "
                    "log(LR). Config overrides (--optimizer nadam, --depth 10...) apply.")
    p.add_argument("--preset", default="default", help="preset name (see `dnnguide presets`)")
    p.add_argument("--data", default="digits",
                   help="digits, breast_cancer, diabetes, mnist1d, fashion_mnist, cifar10 "
                        "or a .csv path")
    p.add_argument("--target", help="target column of a CSV file")
    p.add_argument("--start-lr", type=float, default=1e-7, help="first LR of the sweep")
    p.add_argument("--end-lr", type=float, default=10.0, help="last LR of the sweep")
    p.add_argument("--steps", type=int, help="batches in the sweep (default: one epoch, >= 200)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the preset's)")
    p.add_argument("--rule", default="valley", choices=["valley", "steepest", "minimum"],
                   help="suggestion rule: valley/steepest on the smoothed loss vs log(LR), "
                        "minimum = a tenth of the LR at the lowest loss")
    p.add_argument("--seed", type=int, default=0, help="seed for the model and batch order")
    p.add_argument("--run-dir", default="runs", help="root folder of run directories")
    p.add_argument("--verbose", type=int, choices=[0, 1], default=1, help="progress bar")
    p.set_defaults(func=_lr_find, accepts_overrides=True)


def _lr_find(args, overrides) -> int:
    from dnnguide.data import load_dataset
    from dnnguide.guideline_tables import ONECYCLE_TABLE
    from dnnguide.lr_finder import lr_find, result_summary
    from dnnguide.presets import resolve_config
    from dnnguide.runs import new_run_dir

    resolve_config(args.preset, **overrides)  # bad overrides fail before loading data
    data = load_dataset(args.data, seed=args.seed, target=args.target)
    # The network `dnnguide train` would train on these data: the preset sized for them.
    config = resolve_config(args.preset, data=data, **overrides)
    result = lr_find(config, data, start_lr=args.start_lr, end_lr=args.end_lr,
                     num_steps=args.steps, batch_size=args.batch_size, rule=args.rule,
                     seed=args.seed, verbose=args.verbose)
    run_dir = new_run_dir(args.run_dir, f"lr_find-{args.preset}")
    result.extra.update({"preset": args.preset, "data": args.data, "overrides": overrides,
                         "depth": config.depth, "width": config.width})
    result.save(run_dir)
    print(result_summary(result))
    base = f"dnnguide train --preset {args.preset} --data {args.data}"
    print(f"constant LR: {base} --schedule constant --learning-rate {result.suggestion:.3g}")
    peak = result.onecycle_peak(config.optimizer.learning_rate)
    print(f"1cycle:      {base} --schedule onecycle --max-lr {peak:.3g}   (rule 'minimum', "
          f"lifted towards {ONECYCLE_TABLE['max_lr_floor'][0]:g}x the constant LR: what "
          f"--schedule onecycle alone uses)")
    print(f"run directory: {run_dir}")
    return 0
