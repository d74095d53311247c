"""Find a learning rate: sweep it exponentially on a preset and plot the loss against it.

    python recipes/lr_find.py --preset default --data mnist1d
    python recipes/lr_find.py --data digits --optimizer nesterov --rule steepest
    python recipes/lr_find.py --quick                          # seconds, for the tests

Writes ``<run-dir>/<time>-lr_find/`` with ``lr_find.csv`` (LR, loss, smoothed loss per step),
``lr_find.json`` (the suggestion of each rule) and ``plots/lr_find.png`` (log-x), and prints
the suggestion, ready for 1cycle's ``max_lr`` (see ``recipes/onecycle.py``).
"""

from __future__ import annotations

import argparse
import sys

import dnnguide
from dnnguide.config import OPTIMIZERS
from dnnguide.lr_finder import RULES, lr_find, result_summary
from dnnguide.runs import new_run_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--data", default="mnist1d")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="override the preset's optimizer")
    parser.add_argument("--rule", default="valley", choices=RULES)
    parser.add_argument("--steps", type=int, default=None, help="default: one epoch, >= 200")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs")
    parser.add_argument("--quick", action="store_true", help="tiny budget, for the tests")
    args = parser.parse_args(argv)
    overrides = {"optimizer": args.optimizer} if args.optimizer else {}
    if args.quick:
        args.data, args.steps, overrides["depth"] = "digits", 40, 1

    config = dnnguide.get_preset(args.preset, **overrides)
    data = dnnguide.load_dataset(args.data, seed=args.seed)
    result = lr_find(config, data, num_steps=args.steps, rule=args.rule, seed=args.seed)
    out = new_run_dir(args.run_dir, "lr_find")
    result.extra.update({"preset": args.preset, "data": args.data, "overrides": overrides})
    result.save(out)
    print(result_summary(result))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
