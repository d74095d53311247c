"""1cycle vs constant LR: epochs to a fixed validation accuracy, and what the cycle costs per step.

    python bench/bench_onecycle.py [--data mnist1d] [--epochs 30] [--target 0.6] [--repeats 3]

Part 1 (convergence): the default preset (AdamW) trains twice from the same seed for the same
budget with early stopping off: once at its constant learning rate, once with 1cycle whose
``max_lr`` is ``--max-lr`` (default: the LR finder's suggestion by ``--rule``, ``minimum``).
Prints the epochs each needs to reach ``--target`` validation accuracy and their ratio.

Part 2 (throughput): plain ``model.fit`` of the same model with the stock optimizer and constant
LR vs with the 1cycle optimizer (LR schedule plus in-graph momentum cycle), same data and
epochs, in the same process, alternating order, median of ``--repeats``. Prints the throughput
ratio 1cycle / plain (target >= 0.95).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import keras

import dnnguide
from dnnguide.lr_finder import RULES, lr_find


def epochs_to(curve, target: float):
    hits = [i + 1 for i, value in enumerate(curve) if value >= target]
    return hits[0] if hits else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist1d")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--target", type=float, default=0.6, help="validation accuracy")
    parser.add_argument("--max-lr", type=float, default=None)
    parser.add_argument("--rule", default="minimum", choices=RULES,
                        help="LR finder rule giving max_lr when --max-lr is not set")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-convergence", action="store_true")
    args = parser.parse_args(argv)
    data = dnnguide.load_dataset(args.data, seed=args.seed)
    config = dnnguide.get_preset("default", schedule="constant",
                                 **{"early_stopping.enabled": False})
    print(f"data {args.data}: {len(data.x_train)} train, preset default "
          f"({config.optimizer.name}, lr {config.optimizer.learning_rate}, "
          f"batch {config.batch_size}), backend {keras.backend.backend()}")

    if not args.skip_convergence:
        max_lr = args.max_lr
        if max_lr is None:
            found = lr_find(config, data, seed=args.seed, verbose=0, rule=args.rule)
            max_lr = found.suggestion
            print("LR finder suggestions: " + ", ".join(
                f"{k} {v:.3g}" for k, v in found.suggestions.items()) + f"; max_lr = {args.rule}")
        results = {}
        for name, fields in (("constant", {}),
                             ("onecycle", {"schedule": "onecycle", "max_lr": max_lr})):
            result = dnnguide.fit(config, data, run_dir=None, epochs=args.epochs,
                                  seed=args.seed, verbose=0, **fields)
            curve = result.history["val_accuracy"].tolist()
            results[name] = epochs_to(curve, args.target)
            print(f"{name:>9}: epochs to val acc {args.target}: {results[name]}, best val acc "
                  f"{max(curve):.4f}, final {curve[-1]:.4f}, test acc "
                  f"{result.metrics['test_accuracy']:.4f}", flush=True)
        if results["constant"] and results["onecycle"]:
            print(f"epochs ratio constant / onecycle: {results['constant'] / results['onecycle']:.2f}")
        else:
            print(f"target {args.target} not reached by: "
                  f"{[k for k, v in results.items() if v is None]} in {args.epochs} epochs")

    throughput(config, data, args)
    return 0


def throughput(config, data, args) -> None:
    epochs = args.throughput_epochs
    steps = math.ceil(len(data.x_train) / config.batch_size) * epochs

    def run(onecycle: bool):
        keras.utils.set_random_seed(args.seed)
        overrides = {"schedule": "onecycle", "total_steps": steps, "max_lr": 3e-3} if onecycle else {}
        model = dnnguide.build_model(config, data.input_shape, data.n_outputs, data.task,
                                     **overrides)
        start = time.perf_counter()
        model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=config.batch_size,
                  verbose=0)
        return time.perf_counter() - start

    run(False), run(True)  # warm-up
    plain, cycled = [], []
    for i in range(args.repeats):
        for onecycle in ((False, True) if i % 2 == 0 else (True, False)):
            (cycled if onecycle else plain).append(run(onecycle))
    p, c = statistics.median(plain), statistics.median(cycled)
    print(f"throughput ({epochs} epochs, {steps} steps, median of {args.repeats}): plain "
          f"{steps / p:.0f} steps/s, 1cycle {steps / c:.0f} steps/s, ratio 1cycle/plain "
          f"{p / c:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
