"""Benchmark: training throughput with the diagnostics callback vs without.

Fits the same 20-layer default-preset net (Swish + batch norm) on MNIST-1D twice per
round, once plain and once with ``DiagnosticsCallback`` at its default interval, in the
same process, alternating the order; prints samples/second of each and their ratio
(target >= 0.9). Throughput is measured after the first epoch (both runs pay their own
one-time graph tracing there); the wall-clock ratio of whole fits, tracing and the
end-of-training plots included, is printed too.

Usage::

    python bench/bench_diagnostics.py            # 3 rounds x 4 epochs
    python bench/bench_diagnostics.py --quick    # 1 round x 2 epochs
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")



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


def _fit(data, epochs: int, batch_size: int, with_diagnostics: bool, seed: int):
    import keras

    import dnnguide
    from dnnguide.diagnostics import DiagnosticsCallback

    keras.utils.set_random_seed(seed)
    model = dnnguide.build_model("default", data.input_shape, data.n_outputs, depth=20)
    timer = _timer_callback()
    callbacks = [timer]
    if with_diagnostics:
        out = tempfile.mkdtemp(prefix="bench_diagnostics_")
        callbacks.append(DiagnosticsCallback(data.x_train[:256], data.y_train[:256], out))
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
              callbacks=callbacks, verbose=0)
    wall = time.perf_counter() - start
    steady = sum(timer.times[1:])
    samples = len(data.x_train) * (epochs - 1)
    return samples / steady, wall


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs = 1, 2
    if args.epochs < 2:
        parser.error(f"--epochs must be >= 2 (the first epoch is warm-up). Received: {args.epochs}")

    from dnnguide.data import load_dataset
    from dnnguide.diagnostics import DEFAULT_INTERVAL

    data = load_dataset("mnist1d")
    steps = -(-len(data.x_train) // args.batch_size)
    print(f"MNIST-1D, {len(data.x_train)} rows, batch {args.batch_size} ({steps} steps/epoch), "
          f"20-layer default preset; diagnostics every {DEFAULT_INTERVAL} steps")
    results = {False: [], True: []}
    for r in range(args.rounds):
        for with_diag in ((False, True) if r % 2 == 0 else (True, False)):
            throughput, wall = _fit(data, args.epochs, args.batch_size, with_diag, seed=r)
            results[with_diag].append((throughput, wall))
            print(f"round {r + 1}: {'with   ' if with_diag else 'without'} diagnostics: "
                  f"{throughput:8.0f} samples/s after epoch 1, {wall:6.1f} s whole fit")
    base = statistics.median(t for t, _ in results[False])
    diag = statistics.median(t for t, _ in results[True])
    wall_base = statistics.median(w for _, w in results[False])
    wall_diag = statistics.median(w for _, w in results[True])
    summary = {"throughput_ratio": diag / base, "wall_ratio": wall_base / wall_diag}
    print(f"throughput ratio (with / without, median of {args.rounds}): "
          f"{summary['throughput_ratio']:.3f}  (target >= 0.9)")
    print(f"whole-fit speed ratio incl. tracing and plots: {summary['wall_ratio']:.3f}")
    return summary


if __name__ == "__main__":
    main()
