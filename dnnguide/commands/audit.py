"""``dnnguide audit MODEL``: check a saved Keras model against the guidelines (exit 1 on errors).

MODEL is a ``.keras`` file or a run directory. A model inside a run directory is audited with
the run's ``config.json`` (so the callbacks ``dnnguide.fit`` adds are known and the fixes are
config overrides). ``--data`` adds the data checks (standardized inputs, regression target)
on the raw, unstandardized features. Exit code: 0 without error findings (warnings allowed),
1 with errors, 2 on a usage error: usable as a CI step.

Examples::

    dnnguide audit model.keras
    dnnguide audit runs/20260101T120000Z-default --json
    dnnguide audit model.keras --data houses.csv --target price --low-latency
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "audit", help="check a saved model against the guidelines (exit 1 on errors)",
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]).replace("::", ":"))
    p.add_argument("model", help="a .keras file or a run directory")
    p.add_argument("--data", help="a CSV file (with --target) or a dataset name, e.g. diabetes")
    p.add_argument("--target", help="the target column of a CSV file")
    p.add_argument("--task", choices=("classification", "binary", "regression"),
                   help="the task, if neither the run nor the data says it")
    p.add_argument("--rows", type=int, default=2048, help="data rows read (default 2048)")
    p.add_argument("--low-latency", action="store_true", help="batch norm must be foldable")
    p.add_argument("--mc-dropout", action="store_true", help="MC dropout is planned")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_audit)


def _audit(args, _overrides) -> int:
    import json
    from pathlib import Path

    from dnnguide.config import check_range

    check_range("rows", args.rows, 1, integer=True)
    path = Path(args.model)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"Argument `model` must be a .keras file or a run directory "
                                f"holding model.keras. Received: model={args.model!r}")
    model, config, task = _load(path)
    data = None
    if args.data:
        from dnnguide.data import load_dataset

        # Unstandardized on purpose: the audit checks the features as the model will see them.
        data = load_dataset(args.data, standardize=False, target=args.target, task=args.task)
    from dnnguide.auditing import audit

    report = audit(model, data, config=config, task=args.task or task,
                   low_latency=True if args.low_latency else None,
                   mc_dropout=True if args.mc_dropout else None, max_rows=args.rows)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report)
    return 0 if report.ok else 1


def _load(path):
    """The model, and the run's config and task when it sits in a run directory."""
    import json
    import warnings

    import keras

    import dnnguide.layers  # noqa: F401  (registers the MC layers for deserialization)
    import dnnguide.optimizers  # noqa: F401  (and the scheduled optimizers)
    import dnnguide.schedules  # noqa: F401
    from dnnguide.config import NetworkConfig

    with warnings.catch_warnings():  # the audit reads the optimizer's settings, not its state
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
        model = keras.saving.load_model(path)
    config = task = None
    if (path.parent / "config.json").is_file():
        config = NetworkConfig.from_json((path.parent / "config.json").read_text())
    if (path.parent / "run.json").is_file():
        task = json.loads((path.parent / "run.json").read_text()).get("task")
    return model, config, task
