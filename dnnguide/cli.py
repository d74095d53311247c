"""The ``dnnguide`` command: train, recommend, presets, runs, and subcommands from ``commands/``.

Examples::

    dnnguide train --preset default --data digits
    dnnguide train --preset self_normalizing --data mnist1d --depth 20 --dropout-rate 0.1
    dnnguide recommend --depth deep --risk-sensitive
    dnnguide presets
    dnnguide runs --root runs

Any configuration field is an override flag on ``train`` (``--depth 20``, ``--activation selu``,
``--learning-rate 3e-3``, ``--optimizer.name nadam``); an unknown one is an error that lists
the valid names, never silently dropped.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import os
import pkgutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parse_value(text: str):
    """``"20"`` -> 20, ``"3e-3"`` -> 0.003, ``"true"`` -> True, ``"64,32"`` -> (64, 32), else str."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if "," in text:
        return tuple(_parse_value(part) for part in text.split(",") if part)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (int, float)) else text


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _boolean_fields() -> set[str]:
    """Override names (flat and dotted) whose config field is a boolean."""
    from dnnguide.config import NetworkConfig

    names = {f.name for f in dataclasses.fields(NetworkConfig) if f.type == "bool"}
    for part, cls in NetworkConfig._NESTED.items():
        for f in dataclasses.fields(cls):
            if f.type == "bool":
                names |= {f.name, f"{part}.{f.name}"}
    return names


def coerce_booleans(overrides: dict) -> dict:
    """Boolean fields take true/false, yes/no or 1/0 (any case); anything else is refused.

    ``--standardize-inputs no`` must mean False: stored as the string "no" it would be truthy.
    """
    from dnnguide.config import ConfigError

    flags = _boolean_fields()
    out = dict(overrides)
    for key, value in overrides.items():
        if key not in flags or isinstance(value, bool):
            continue
        text = str(value).lower()
        if text not in _TRUE + _FALSE:
            raise ConfigError(f"Argument `{key}` must be one of true/false, yes/no or 1/0. "
                              f"Received: {key}={value!r}")
        out[key] = text in _TRUE
    return out


def parse_overrides(tokens: list[str]) -> dict:
    """``["--depth", "20", "--dropout-rate=0.1"]`` -> ``{"depth": 20, "dropout_rate": 0.1}``."""
    overrides, i = {}, 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or len(token) < 3:
            raise SystemExit(f"dnnguide: unexpected argument {token!r}; overrides look like "
                             "`--depth 20` or `--learning-rate=3e-3`.")
        key, sep, value = token[2:].partition("=")
        if not sep:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise SystemExit(f"dnnguide: override --{key} needs a value (e.g. --{key} 20).")
            value, i = tokens[i + 1], i + 1
        overrides[key.replace("-", "_")] = _parse_value(value)
        i += 1
    return overrides


def _override_names() -> str:
    from dnnguide.config import NetworkConfig

    top = [f.name for f in dataclasses.fields(NetworkConfig) if f.name not in NetworkConfig._NESTED]
    parts = {key: [f.name for f in dataclasses.fields(cls)]
             for key, cls in NetworkConfig._NESTED.items()}
    lines = ["config overrides (any field, flat or dotted; '-' or '_'):",
             "  " + " ".join(f"--{n.replace('_', '-')}" for n in top)]
    for part, names in parts.items():
        lines.append(f"  {part}: " + " ".join(f"--{n.replace('_', '-')}" for n in names))
    lines.append("  e.g. --depth 20 --activation selu --optimizer nadam --learning-rate 3e-3 "
                 "--schedule onecycle --width 128,64,32")
    return "\n".join(lines)


# --------------------------------------------------------------------------- train
def _layers_arg(text: str):
    return int(text) if text.isdigit() else text


def add_transfer_arguments(p, init_from: bool = True) -> None:
    """``--init-from RUN_DIR --reuse-layers N --freeze-epochs E`` (dnnguide.transfer)."""
    if init_from:
        p.add_argument("--init-from", metavar="RUN_DIR",
                       help="start from the lower layers of this run's model (its config "
                            "is the base; overrides change training settings only)")
        p.add_argument("--reuse-layers", metavar="N", type=_layers_arg,
                       help="hidden layers to reuse from --init-from (default: all but the "
                            "head; 'all' or a layer name also work)")
    p.add_argument("--freeze-epochs", metavar="E", type=int,
                   help="train the new head E epochs with the reused layers frozen, then "
                        "unfreeze them at a 10x lower learning rate (default: frozen for the "
                        "whole run; 0: never frozen)")


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train a preset on a dataset and write a run directory",
        description="Train a preset (with overrides) on a dataset; writes runs/<time>-<name>/.",
        epilog=_override_names(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", help="preset name (see `dnnguide presets`)")
    p.add_argument("--data", default="digits",
                   help="digits, breast_cancer, diabetes, mnist1d, fashion_mnist, cifar10 "
                        "or a .csv path")
    p.add_argument("--target", help="target column of a CSV file")
    p.add_argument("--task", choices=["classification", "binary", "regression"],
                   help="force the task of a CSV file (else inferred)")
    p.add_argument("--epochs", type=int, help="training budget (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="seed for Python, NumPy and Keras")
    p.add_argument("--run-dir", default="runs", help="root folder of run directories")
    p.add_argument("--name", help="run name (default: the preset's)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint, or a finished one "
                        "up to --epochs N (the new total)")
    add_transfer_arguments(p)
    p.add_argument("--diagnose", action="store_true",
                   help="record per-layer gradient/activation diagnostics")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                   help="Keras progress: 1 progress bar, 2 one line per epoch, 0 silent")
    p.add_argument("--strategy", choices=["auto", "default", "mirrored", "multi_worker", "tpu"],
                   help="tf.distribute strategy (multi_worker reads TF_CONFIG); default: none")
    p.set_defaults(func=_train, accepts_overrides=True)


def _train(args, overrides) -> int:
    import math

    import dnnguide
    from dnnguide.data import load_dataset
    from dnnguide.runs import check_run_root

    if not args.resume:
        check_run_root(args.run_dir)  # before loading anything
    strategy = None
    if args.strategy:  # created first: multi-worker strategies must precede other TF work
        from dnnguide.distribute import strategy as make_strategy

        strategy = make_strategy(args.strategy)
    if args.resume:
        # Everything but --epochs must match the run (fit refuses what it cannot honour).
        result = dnnguide.fit(args.preset, args.data, resume=args.resume, epochs=args.epochs,
                              run_dir=args.run_dir, name=args.name, batch_size=args.batch_size,
                              seed=args.seed, task=args.task, verbose=args.verbose,
                              diagnose=args.diagnose, strategy=strategy, **overrides)
    else:
        data = load_dataset(args.data, seed=args.seed, target=args.target, task=args.task)
        result = dnnguide.fit(args.preset, data, run_dir=args.run_dir, name=args.name,
                              epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                              verbose=args.verbose, diagnose=args.diagnose, strategy=strategy,
                              init_from=args.init_from, reuse_layers=args.reuse_layers,
                              freeze_epochs=args.freeze_epochs, **overrides)
    if strategy is not None:
        from dnnguide.distribute import weights_digest

        print(f"weights sha256: {weights_digest(result.model)}")
    shown = {k: round(v, 4) for k, v in result.metrics.items() if k.startswith("test_")}
    print(f"test metrics: {shown}")
    if result.run_dir is not None:
        print(f"run directory: {result.run_dir}")
    if not math.isfinite(result.metrics.get("test_loss", 0.0)):
        print("dnnguide train: error: training diverged (non-finite loss); the run is recorded "
              "as 'diverged'. Lower the learning rate or clip gradients (--clipnorm 1.0).",
              file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- recommend / presets / runs
def _add_recommend(sub) -> None:
    p = sub.add_parser("recommend", help="print the guidelines' configuration with a reason per choice")
    p.add_argument("--depth", default=None,
                   help="number of hidden layers, or 'shallow' / 'deep'")
    p.add_argument("--width", type=int, default=None,
                   help="units per hidden layer (default: sized from --data, else 100)")
    for flag in ("sparse", "low-latency", "risk-sensitive", "self-normalizing", "overfitting"):
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("--task", default=None, choices=["classification", "binary", "regression"])
    p.add_argument("--data", default=None,
                   help="size and regularize for this dataset (name or CSV): the data-aware rules")
    p.add_argument("--target", default=None, help="target column of a CSV --data")
    p.add_argument("--json", action="store_true", help="print the config as JSON instead")
    p.set_defaults(func=_recommend)


def _recommend(args, _overrides) -> int:
    from dnnguide.guidelines import recommend

    depth = args.depth
    if depth is not None and depth.isdigit():
        depth = int(depth)
    data = None
    if args.data is not None:
        from dnnguide.data import load_dataset

        data = load_dataset(args.data, target=args.target, task=args.task)
    rec = recommend(depth, width=args.width, sparse=args.sparse, low_latency=args.low_latency,
                    risk_sensitive=args.risk_sensitive, self_normalizing=args.self_normalizing,
                    overfitting=args.overfitting, task=args.task, data=data)
    print(rec.config.to_json(indent=2) if args.json else rec.explain())
    return 0


def _add_presets(sub) -> None:
    p = sub.add_parser("presets", help="list the presets")
    p.add_argument("--show", metavar="NAME", help="print one preset's choices and reasons")
    p.set_defaults(func=_presets)


def _presets(args, _overrides) -> int:
    from dnnguide.presets import describe_preset, list_presets, recommend_preset

    if args.show:
        print(recommend_preset(args.show).explain())
        return 0
    for name in list_presets():
        print(f"{name:<18} {describe_preset(name)}")
    return 0


def _add_runs(sub) -> None:
    p = sub.add_parser("runs", help="print the table of runs under a folder")
    p.add_argument("--root", default="runs", help="folder holding run directories")
    p.add_argument("--csv", metavar="FILE", help="also write the table to a CSV file")
    p.set_defaults(func=_runs)


def _runs(args, _overrides) -> int:
    import warnings

    import pandas as pd

    from dnnguide.runs import DamagedRunWarning, load

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DamagedRunWarning)
        frame = load(args.root)
    for warning in caught:
        print(f"dnnguide runs: warning: {warning.message}", file=sys.stderr)
    if frame.empty:
        print(f"no runs under {args.root}")
        return 0
    wanted = ["run", "status", "preset", "dataset", "seed", "depth", "activation", "optimizer",
              "schedule", "epochs_trained", "test_accuracy", "test_loss", "test_rmse"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame[[c for c in wanted if c in frame.columns]].to_string(index=False))
    if args.csv:
        frame.to_csv(args.csv, index=False)
    return 0


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    import dnnguide.commands

    parser = argparse.ArgumentParser(
        prog="dnnguide", description="The practical guidelines for training deep dense networks.")
    parser.add_argument("--version", action="version", version=f"dnnguide {dnnguide.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_recommend, _add_presets, _add_runs):
        add(sub)
    for info in sorted(pkgutil.iter_modules(dnnguide.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"dnnguide.commands.{info.name}").register(sub)
    return parser


# Commands that never need Keras (a test checks that TensorFlow stays unimported for them).
_WITHOUT_KERAS = ("recommend", "presets", "runs")


def main(argv: list[str] | None = None) -> int:
    from dnnguide.config import ConfigError
    from dnnguide.data import DataError
    from dnnguide.runs import CheckpointError, RunDirError, RunExistsError

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command not in _WITHOUT_KERAS:
        from dnnguide._startup import import_keras

        import_keras()  # before the command's own imports: TensorFlow's start-up chatter filtered
    try:
        overrides = {}
        if rest:
            if not getattr(args, "accepts_overrides", False):
                parser.error(f"unrecognized arguments: {' '.join(rest)}")
            overrides = coerce_booleans(parse_overrides(rest))
        return args.func(args, overrides) or 0
    except (ConfigError, DataError, RunExistsError, RunDirError, CheckpointError,
            FileNotFoundError) as exc:
        print(f"dnnguide {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a run saved its checkpoint and says how to resume
        print(f"dnnguide {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
