"""1cycle vs constant LR: epochs to a fixed validation accuracy, and what the cycle costs per step.

    python bench/bench_onecycle.py [--data mnist1d] [--epochs 30] [--target 0.6] [--repeats 3]

Part 1 (convergence): the default preset (AdamW) trains twice from the same seed for the same
budget with early stopping off: once at its constant learning rate, once with 1cycle whose
``max_lr`` is ``--max-lr`` (default: the LR finder's suggestion by ``--rule``, ``minimum``).
Prints the epochs each needs to reach ``--target`` validation accuracy and their ratio.

Part 2 (throughput): plain ``model.fit`` of the same model with the stock optimizer and constant
LR vs with the 1cycle optimizer (LR schedule plus in-graph momentum cycle), same data and
epochs, in the same process, one epoch at a time in alternating order. The first epoch (which
traces the train step) is timed apart; the ratio 1cycle / plain is over the epochs after it
(target >= 0.95).
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
    parser.add_argument("--throughput-epochs", type=int, default=4,
                        help="alternating timed epochs per repeat")
    parser.add_argument("--optimizer", default=None, help="override the preset's (adamw)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="the constant LR (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-convergence", action="store_true")
    args = parser.parse_args(argv)
    data = dnnguide.load_dataset(args.data, seed=args.seed)
    overrides = {"optimizer": args.optimizer} if args.optimizer else {}
    if args.learning_rate:
        overrides["learning_rate"] = args.learning_rate
    config = dnnguide.get_preset("default", schedule="constant",
                                 **{"early_stopping.enabled": False}, **overrides)
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
    if keras.backend.backend() == "tensorflow":
        schedule_cost()
    return 0


def schedule_cost(calls: int = 3000) -> None:
    """CPU time of evaluating 1cycle's LR and momentum in graph, against reading a constant LR.

    Steady where the epoch timings above are not: it isolates the only work 1cycle adds per step.
    """
    import tensorflow as tf

    from dnnguide.schedules import OneCycleMomentum, OneCycleSchedule

    step, constant = tf.Variable(5, dtype=tf.int64), tf.Variable(0.1)
    lr, momentum = OneCycleSchedule(0.1, 10_000), OneCycleMomentum(10_000)
    cycled = tf.function(lambda: (lr(step), momentum(step)))
    plain = tf.function(lambda: constant.read_value())
    cost = {}
    for fn in (cycled, plain, cycled, plain):  # first pass traces and warms up
        fn()
        start = time.process_time()
        for _ in range(calls):
            fn()
        cost[fn] = (time.process_time() - start) / calls * 1e6
    print(f"in-graph cost per step: 1cycle LR + momentum {cost[cycled]:.0f} us CPU vs constant "
          f"LR {cost[plain]:.0f} us (tf.function call overhead included in both): "
          f"+{cost[cycled] - cost[plain]:.0f} us per step")


def throughput(config, data, args) -> None:
    """Steps/s of ``model.fit``: stock optimizer at a constant LR vs the 1cycle optimizer.

    Both models are built and traced once (a warm-up epoch each, timed apart), then train one
    epoch at a time in alternating order, ``--repeats`` rounds; the ratio of the medians and
    of the minimums (robust to other load on the machine) is printed.
    """
    rounds = args.repeats * args.throughput_epochs
    per_epoch = math.ceil(len(data.x_train) / config.batch_size)
    models, warm = {}, {}
    for name, overrides in (("plain", {}),
                            ("1cycle", {"schedule": "onecycle", "max_lr": 3 * config.optimizer.learning_rate,
                                        "total_steps": per_epoch * (rounds + 1)})):
        keras.utils.set_random_seed(args.seed)
        models[name] = dnnguide.build_model(config, data.input_shape, data.n_outputs, data.task,
                                            **overrides)
        start = time.perf_counter()
        models[name].fit(data.x_train, data.y_train, epochs=1, batch_size=config.batch_size,
                         verbose=0)
        warm[name] = time.perf_counter() - start  # includes tracing the train step
    times = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for i in range(rounds):
        for name in (("plain", "1cycle") if i % 2 == 0 else ("1cycle", "plain")):
            start, start_cpu = time.perf_counter(), time.process_time()
            models[name].fit(data.x_train, data.y_train, epochs=1, batch_size=config.batch_size,
                             verbose=0)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    med = {name: statistics.median(t) for name, t in times.items()}
    med_cpu = {name: statistics.median(t) for name, t in cpu.items()}
    print(f"throughput ({rounds} alternating epochs of {per_epoch} steps each, "
          f"{type(models['plain'].optimizer).__name__} vs "
          f"{type(models['1cycle'].optimizer).__name__}): plain {per_epoch / med['plain']:.0f} "
          f"steps/s, 1cycle {per_epoch / med['1cycle']:.0f} steps/s (medians)")
    print(f"ratio 1cycle/plain (target >= 0.95): wall-clock {med['plain'] / med['1cycle']:.3f}, "
          f"process CPU time {med_cpu['plain'] / med_cpu['1cycle']:.3f} (the CPU-time ratio is "
          "the steadier one on a shared machine)")
    print(f"first epoch incl. tracing: plain {warm['plain']:.2f} s, 1cycle {warm['1cycle']:.2f} s")


if __name__ == "__main__":
    main()
