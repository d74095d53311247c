"""Benchmark: training throughput with the diagnostics callback vs without.

Fits the same 20-layer default-preset net (Swish + batch norm) on MNIST-1D, in the same
process and in rotating order: plain; with ``DiagnosticsCallback`` at its defaults
(a record every 100 steps within a 5% time budget); and with the budget off (strictly
every 100 steps). Prints samples per second and per CPU-second after the first epoch
(every run pays its own one-time graph tracing there; CPU time is robust to other
processes on a shared machine), the ratio of each to the plain run (target >= 0.9 at the
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
            self._start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            wall, cpu = self._start
            self.times.append((time.perf_counter() - wall, time.process_time() - cpu))

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
    share = diagnostics._spent / wall if diagnostics else 0.0  # the callback's own accounting
    steady_wall = sum(w for w, _ in timer.times[1:])
    steady_cpu = sum(c for _, c in timer.times[1:])
    return samples / steady_wall, samples / steady_cpu, wall, records, share


def _record_cost(data, batch_size: int, repeats: int = 15) -> dict:
    """Median cost of one training step and of one record (eager / traced), in-process.

    Medians of interleaved repeats are robust to other processes on a shared machine;
    their ratio predicts the strict-interval overhead: record cost / (interval x step).
    """
    import keras

    import dnnguide
    from dnnguide.diagnostics.probe import _Probe

    keras.utils.set_random_seed(0)
    model = dnnguide.build_model("default", data.input_shape, data.n_outputs, depth=20)
    probe = _Probe(model, data.x_train[:256], data.y_train[:256])
    xb, yb = data.x_train[:batch_size], data.y_train[:batch_size]
    model.train_on_batch(xb, yb), probe.measure(compiled=True), probe.measure(compiled=False)
    times = {"step": [], "traced record": [], "eager record": []}
    for _ in range(repeats):
        for name, run in (("step", lambda: model.train_on_batch(xb, yb)),
                          ("traced record", lambda: probe.measure(compiled=True)),
                          ("eager record", lambda: probe.measure(compiled=False))):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow intra/inter-op threads (default 1: steadier timings "
                             "on a shared machine; 0 = TensorFlow's default)")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 epochs")
    args = parser.parse_args(argv)
    if args.threads:
        import tensorflow as tf  # TF-only: thread pools must be set before the first op

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
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
          f"{DEFAULT_INTERVAL} steps, budget {DEFAULT_MAX_OVERHEAD:.0%}; "
          f"TF threads: {args.threads or 'default'}")
    results = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order
            throughput, per_cpu, wall, records, share = _fit(
                data, args.epochs, args.batch_size, VARIANTS[name], seed=r)
            results[name].append((throughput, per_cpu, wall, share))
            print(f"round {r + 1}: {name:<8} {throughput:7.0f} samples/s, {per_cpu:7.0f} "
                  f"samples/CPU-s after epoch 1, {wall:6.1f} s whole fit"
                  + (f", {records} records, {share:.1%} of the fit in diagnostics (plots "
                     "excluded)" if records else ""))
    median = {name: [statistics.median(run[i] for run in runs) for i in range(4)]
              for name, runs in results.items()}
    summary = {}
    for name in ("defaults", "strict"):
        base = median["without"]
        summary[name] = {"throughput_ratio": median[name][0] / base[0],
                         "cpu_throughput_ratio": median[name][1] / base[1],
                         "wall_ratio": base[2] / median[name][2],
                         "share_in_diagnostics": median[name][3]}
        print(f"{name:<8}: throughput ratio {summary[name]['throughput_ratio']:.3f} (wall), "
              f"{summary[name]['cpu_throughput_ratio']:.3f} (CPU time); whole-fit speed ratio "
              f"{summary[name]['wall_ratio']:.3f} (with / without, medians of {args.rounds}); "
              f"time share in diagnostics {summary[name]['share_in_diagnostics']:.1%}")
    print("target: throughput ratio >= 0.9 at the defaults")
    cost = _record_cost(data, args.batch_size)
    step = cost["step"]
    print(f"median cost: training step {step * 1e3:.1f} ms; traced record "
          f"{cost['traced record'] * 1e3:.1f} ms ({cost['traced record'] / step:.1f} steps); "
          f"eager record {cost['eager record'] * 1e3:.0f} ms "
          f"({cost['eager record'] / step:.0f} steps)")
    for name in ("traced record", "eager record"):
        overhead = cost[name] / (DEFAULT_INTERVAL * step)
        print(f"predicted throughput ratio at interval {DEFAULT_INTERVAL}, {name}s only: "
              f"{1 / (1 + overhead):.3f}")
    summary["cost_s"] = cost
    return summary


if __name__ == "__main__":
    main()
