"""``dnnguide tune``: hyperparameter search over the presets, its report, and distributed roles.

Examples::

    dnnguide tune --data mnist1d --algorithm hyperband --max-epochs 30 --directory tuning/
    dnnguide tune --data mnist1d --presets default --depth 2,3,4 --learning-rate 1e-3
    dnnguide tune --report tuning/
    dnnguide tune --data mnist1d --workers 2                      # trials in worker processes
    dnnguide tune --role chief --oracle-port 8000 ...             # keras-tuner chief (loopback)
    dnnguide tune --role worker --tuner-id worker0 --oracle-port 8000 ...

Extra ``--field value`` flags narrow the search space (``--depth 2,3`` is a choice, ``--width 64``
is fixed) or extend it with any config field (``--l2 1e-4``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dnnguide.distribute import STRATEGIES  # light: TensorFlow is imported on first use only

#: keras-tuner algorithms (dnnguide.tuning.ALGORITHMS; that module imports keras-tuner).
ALGORITHMS = ("hyperband", "bayesian", "random", "grid")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tune", help="hyperparameter search over the presets (keras-tuner)",
        description="Search the presets' space with keras-tuner; rerun to continue a search; "
                    "--report prints the trials table. Extra --field value flags narrow or "
                    "extend the space (--depth 2,3 --width 64 --l2 1e-4).")
    p.add_argument("--data", default="mnist1d", help="dataset name or .csv path")
    p.add_argument("--target", help="target column of a CSV file")
    p.add_argument("--algorithm", default="hyperband", choices=ALGORITHMS)
    p.add_argument("--presets", default="default,self_normalizing",
                   help="comma-separated presets to search over")
    p.add_argument("--max-epochs", type=int, default=30,
                   help="epochs per trial (Hyperband: the largest budget)")
    p.add_argument("--max-trials", type=int, default=20, help="most trials in total")
    p.add_argument("--factor", type=int, default=3, help="Hyperband's reduction factor")
    p.add_argument("--directory", default="tuning", help="where the search is kept")
    p.add_argument("--project", default="search", help="project name inside --directory")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing search there first (else it is continued)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute strategy for each trial (default: none)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="mixed_float16 on GPU, mixed_bfloat16 on TPU")
    p.add_argument("--workers", type=int, default=0,
                   help="run trials in this many fresh worker processes on this machine")
    p.add_argument("--role", choices=["chief", "worker"],
                   help="keras-tuner distributed role (one chief, any number of workers)")
    p.add_argument("--oracle-ip", default="127.0.0.1",
                   help="address the chief binds to / workers connect to. The chief's gRPC "
                        "has no TLS or auth: use loopback or a private network only")
    p.add_argument("--oracle-port", type=int, default=8000)
    p.add_argument("--tuner-id", help="unique worker id (e.g. worker0); required for --role worker")
    p.add_argument("--max-failures", type=int, default=3,
                   help="stop after this many consecutive crashed trials (trials the config "
                        "refuses are skipped as INVALID and do not count)")
    p.add_argument("--report", metavar="DIR",
                   help="print the trials table of the search(es) under DIR and save a plot")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    p.set_defaults(func=_tune, accepts_overrides=True)


def _projects(root: Path) -> list[Path]:
    from dnnguide.tuning import SETTINGS_FILE

    if (root / SETTINGS_FILE).exists():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{SETTINGS_FILE}"))


def _show(frame) -> None:
    import pandas as pd

    hidden = {"worker_pid"}
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.max_colwidth", 60, "display.float_format", "{:.4g}".format):
        print(frame[[c for c in frame.columns if c not in hidden]].to_string(index=False))


def _report(root: str) -> int:
    import json

    from dnnguide.config import ConfigError
    from dnnguide.tuning import SETTINGS_FILE, plot_trials, trials_frame

    projects = _projects(Path(root))
    if not projects:
        raise ConfigError(f"Argument `--report` must be a tuning directory (with {SETTINGS_FILE} "
                          f"in it or in a subfolder). Received: --report={root!r}")
    for project in projects:
        objective = json.loads((project / SETTINGS_FILE).read_text())["objective"]
        frame = trials_frame(project)
        print(f"{project}: {len(frame)} trial(s), objective {objective}")
        if frame.empty:
            continue
        _show(frame)
        path = plot_trials(frame, project / "trials.png", objective=objective)
        frame.to_csv(project / "trials.csv", index=False)
        print(f"plot: {path}\ntable: {project / 'trials.csv'}")
    return 0


def _tune(args, overrides) -> int:
    if args.report:
        return _report(args.report)
    from dnnguide.data import load_dataset
    from dnnguide.distribute import LOOPBACK
    from dnnguide.tuning.worker import oracle_env
    from dnnguide.tuning import SearchSpace, TuningError, tune

    if args.role:
        if args.oracle_ip not in (LOOPBACK, "localhost", "::1"):
            print(f"warning: the keras-tuner chief serves gRPC without TLS or authentication on "
                  f"{args.oracle_ip}; keep it on a private network.", file=sys.stderr)
        os.environ.update(oracle_env(args.role, tuner_id=args.tuner_id, ip=args.oracle_ip,
                                     port=args.oracle_port))
    space = SearchSpace.default(presets=tuple(args.presets.split(",")))
    existing = {k: v for k, v in overrides.items() if k in space.params}
    space = space.narrow(**existing).extend(
        **{k: v for k, v in overrides.items() if k not in existing})
    data = load_dataset(args.data, seed=args.seed, target=args.target)
    try:
        result = tune(data, space=space, algorithm=args.algorithm, max_trials=args.max_trials,
                      epochs=args.max_epochs, directory=args.directory, project_name=args.project,
                      factor=args.factor, overwrite=args.overwrite, seed=args.seed,
                      strategy=args.strategy,
                      mixed_precision=args.mixed_precision, workers=args.workers,
                      oracle_ip=args.oracle_ip, oracle_port=args.oracle_port if args.workers
                      and args.oracle_port != 8000 else None, max_failures=args.max_failures,
                      verbose=args.verbose)
    except TuningError as exc:
        print(f"dnnguide tune: error: {exc}", file=sys.stderr)
        return 2
    if args.role == "worker":
        print(f"worker {args.tuner_id} finished")
        return 0
    _show(result.trials)
    print(f"best: {result.best_hyperparameters}")
    if result.best_model is not None:
        model_path = result.directory / "best_model.keras"
        from dnnguide.runs import atomic_save_model

        atomic_save_model(result.best_model, model_path)
        print(f"best model: {model_path}")
    return 0
