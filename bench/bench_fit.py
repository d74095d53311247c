"""dnnguide.fit vs plain model.fit: what the runner's callbacks and run directory cost.

    python bench/bench_fit.py [--data digits] [--epochs 10] [--repeats 3]

Both train identical models (same preset, same seed, same data, same epochs, early stopping
off so both run every epoch) in the same process, alternating order. Prints the throughput
ratio of the training loop (dnnguide's callbacks: exact-resume checkpoints, CSVLogger, TensorBoard,
TerminateOnNaN, the schedule) and of the whole call (plus evaluation, model save, plot, JSON).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import keras

import dnnguide


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    data = dnnguide.load_dataset(args.data)
    overrides = {"early_stopping.enabled": False, "epochs": args.epochs}

    def build():
        keras.utils.set_random_seed(0)
        return dnnguide.build_model("default", data.input_shape, data.n_outputs, data.task,
                                    **overrides)

    def plain():
        model = build()
        start = time.perf_counter()
        model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                  epochs=args.epochs, batch_size=32, verbose=0)
        return time.perf_counter() - start, None

    def runner():
        model = build()
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            result = dnnguide.fit(model, data, run_dir=root, epochs=args.epochs, verbose=0)
            return time.perf_counter() - start, result.metrics["train_time_s"]

    plain(), runner()  # warm-up: graph tracing, TensorBoard import
    base, loop, whole = [], [], []
    for i in range(args.repeats):
        order = (plain, runner) if i % 2 == 0 else (runner, plain)
        for fn in order:
            total, train = fn()
            (base if fn is plain else whole).append(total)
            if train is not None:
                loop.append(train)
    b, l, w = (statistics.median(v) for v in (base, loop, whole))
    print(f"plain model.fit:        {b:.2f} s for {args.epochs} epochs on {args.data}")
    print(f"dnnguide.fit loop:      {l:.2f} s   throughput ratio {b / l:.2f}")
    print(f"dnnguide.fit whole run: {w:.2f} s   throughput ratio {b / w:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
