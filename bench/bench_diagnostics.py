"""Benchmark: training throughput with the diagnostics callback vs without.

Fits the same 20-layer default-preset net (Swish + batch norm) on MNIST-1D, in the same
process and in rotating order: plain; with ``DiagnosticsCallback`` at its defaults
(a record every 100 steps within a 5% time budget); and with the budget off (strictly
every 100 steps). Prints samples/second after the first epoch (every run pays its own
one-time graph tracing there), the ratio of each to the plain run (target >= 0.9 at the
defaults), the records each took, and the whole-fit wall-clock ratios (tracing and the
end-of-training plots included).

Usage::

    python bench/bench_diagnostics.py            # 2 rounds x 4 epochs
    python bench/bench_diagnostics.py --quick    # 1 round x 2 epochs
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: variant -> DiagnosticsCallback keyword arguments (None: no callback).
VARIANTS = {"without": None, "defaults": {}, "strict": {"max_overhead": None}}


def _timer_callback():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()


def _fit(data, epochs: int, batch_size: int, kwargs, seed: int):
    import keras

    import dnnguide
    from dnnguide.diagnostics import DiagnosticsCallback

    keras.utils.set_random_seed(seed)
    model = dnnguide.build_model("default", data.input_shape, data.n_outputs, depth=20)
    timer = _timer_callback()
    callbacks = [timer]
    diagnostics = None
    if kwargs is not None:
        out = tempfile.mkdtemp(prefix="bench_diagnostics_")
        diagnostics = DiagnosticsCallback(data.x_train[:256], data.y_train[:256], out, **kwargs)
        callbacks.append(diagnostics)
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
              callbacks=callbacks, verbose=0)
    wall = time.perf_counter() - start
    samples = len(data.x_train) * (epochs - 1)
    records = diagnostics.frame["step"].nunique() if diagnostics else 0
    return samples / sum(timer.times[1:]), wall, records


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs = 1, 2
    if args.epochs < 2:
        parser.error(f"--epochs must be >= 2 (the first epoch is warm-up). Received: {args.epochs}")

    from dnnguide.data import load_dataset
    from dnnguide.diagnostics import DEFAULT_INTERVAL, DEFAULT_MAX_OVERHEAD

    data = load_dataset("mnist1d")
    steps = -(-len(data.x_train) // args.batch_size)
    print(f"MNIST-1D, {len(data.x_train)} rows, batch {args.batch_size} ({steps} steps/epoch, "
          f"{steps * args.epochs} steps), 20-layer default preset; diagnostics every "
          f"{DEFAULT_INTERVAL} steps, budget {DEFAULT_MAX_OVERHEAD:.0%}")
    results = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order
            throughput, wall, records = _fit(data, args.epochs, args.batch_size, VARIANTS[name],
                                             seed=r)
            results[name].append((throughput, wall))
            print(f"round {r + 1}: {name:<8} {throughput:7.0f} samples/s after epoch 1, "
                  f"{wall:6.1f} s whole fit" + (f", {records} records" if records else ""))
    median = {name: (statistics.median(t for t, _ in runs), statistics.median(w for _, w in runs))
              for name, runs in results.items()}
    summary = {}
    for name in ("defaults", "strict"):
        summary[f"{name}_throughput_ratio"] = median[name][0] / median["without"][0]
        summary[f"{name}_wall_ratio"] = median["without"][1] / median[name][1]
        print(f"{name:<8}: throughput ratio {summary[f'{name}_throughput_ratio']:.3f}, "
              f"whole-fit speed ratio {summary[f'{name}_wall_ratio']:.3f} "
              f"(with / without, medians of {args.rounds})")
    print("target: throughput ratio >= 0.9 at the defaults")
    return summary


if __name__ == "__main__":
    main()
