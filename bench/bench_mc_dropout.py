"""Batched ``mc_predict`` vs the naive MC dropout loop and vs the compute floor; MC vs plain on MNIST-1D.

    python bench/bench_mc_dropout.py [--samples 100] [--epochs 30] [--repeats 3] [--small 16]

First the compute floor: on a 2x100 BN + dropout net (MNIST-1D's 40 inputs, 10 classes),
one-shot ``mc_predict(model, x, 100)`` of 1000 inputs vs one plain ``model.predict`` of the
same 100,000 tiled rows in calls of the same size (4096 rows, ``max_rows``): the same FLOPs
without the dropout masks. Alternating order, ``--floor-repeats`` times; prints the median
times and their ratio (target: <= 1.3).

Trains the ``risk_sensitive`` preset on MNIST-1D once, then, on the same model and the same
inputs (the 1000 test inputs, then the first ``--small`` of them: the serving case), in one
process, alternating order:

- naive: ``np.stack([model(x, training=True) for _ in range(100)])`` (the model with standard
  dropout; eager calls; with BatchNormalization this would also corrupt its statistics);
- compiled loop: ``[mc_model.predict_on_batch(x) for _ in range(100)]`` (one pass per sample;
  its predict function traced inside ``mc_sampling()``);
- ``mc_predict``: one-shot, tiled samples in compiled calls of at most ``max_rows`` rows
  (every call traces its sampler again);
- ``MCDropoutPredictor``: the same, built once and reused (traced once).

Prints median times and the speed-up ratios over the naive loop (cold: first call, tracing
included; warm: median of later calls), then the plain vs MC table (accuracy, NLL, ECE,
Brier) on the test split.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", type=int, default=16, help="inputs of the small-batch case")
    parser.add_argument("--floor-repeats", type=int, default=15)
    parser.add_argument("--floor-only", action="store_true", help="only the compute floor")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 epochs, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats, args.floor_repeats = 2, 1, 2
    compute_floor(args.samples, args.floor_repeats)
    if args.floor_only:
        return 0

    import keras
    import pandas as pd

    import dnnguide
    from dnnguide.layers import mc_sampling, to_mc_dropout, to_standard_dropout
    from dnnguide.uncertainty import MCDropoutPredictor, mc_predict
    from dnnguide.uncertainty_report import compare_mc_dropout

    data = dnnguide.load_dataset("mnist1d", seed=0)
    result = dnnguide.fit("risk_sensitive", data, run_dir=None, epochs=args.epochs, verbose=0)
    mc_model = result.model  # the preset builds MC dropout layers
    plain_model = to_standard_dropout(mc_model)
    # MC layers sample only where traced inside mc_sampling(): a copy whose predict function
    # is traced (for each new shape) there gives the compiled one-pass-per-sample loop.
    loop_model = to_mc_dropout(mc_model)
    n = args.samples

    def time_methods(x):
        def naive():
            return np.stack([np.asarray(plain_model(x, training=True)) for _ in range(n)])

        def compiled_loop():
            with mc_sampling():
                return np.stack([np.asarray(loop_model.predict_on_batch(x)) for _ in range(n)])

        def one_shot():
            return mc_predict(mc_model, x, n, verbose=0).mean

        predictor = None

        def reused():
            nonlocal predictor
            predictor = predictor or MCDropoutPredictor(mc_model)
            return predictor.predict(x, n, verbose=0).mean

        methods = {"naive loop": naive, "compiled loop": compiled_loop, "mc_predict": one_shot,
                   "MCDropoutPredictor": reused}
        cold, warm = {}, {name: [] for name in methods}
        for name, fn in methods.items():
            keras.utils.set_random_seed(0)
            start = time.perf_counter()
            fn()
            cold[name] = time.perf_counter() - start
        for i in range(args.repeats):
            order = list(methods.items())
            for name, fn in order if i % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                fn()
                warm[name].append(time.perf_counter() - start)
        rows = []
        for name in methods:
            w = statistics.median(warm[name])
            rows.append({"inputs": len(x), "method": name, "cold_s": cold[name], "warm_s": w,
                         "speedup_cold": cold["naive loop"] / cold[name],
                         "speedup_warm": statistics.median(warm["naive loop"]) / w})
        return pd.DataFrame(rows).set_index(["inputs", "method"])

    x = data.x_test
    speed = pd.concat([time_methods(x), time_methods(x[:args.small])])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"MNIST-1D test inputs x {n} samples, risk_sensitive preset "
          f"({mc_model.count_params()} parameters), {os.cpu_count()} CPUs, load {load:.1f}")
    with pd.option_context("display.float_format", "{:.3f}".format):
        print(speed.to_string())
        comparison = compare_mc_dropout(mc_model, x, data.y_test, n_samples=n, seed=0, verbose=0)
        print(f"\nplain vs MC dropout ({args.epochs} epochs of training, {n} samples):")
        print(comparison.table.to_string())
    return 0


def compute_floor(n_samples: int, repeats: int) -> float:
    """Median time of one-shot ``mc_predict`` over one plain predict of the tiled rows."""
    import keras

    import dnnguide
    from dnnguide.uncertainty import mc_predict

    keras.utils.set_random_seed(0)
    model = dnnguide.build_model("risk_sensitive", (40,), 10, depth=2, width=100,
                                 normalization="batch_norm_after")
    x = np.random.default_rng(0).normal(size=(1000, 40)).astype("float32")
    tiled = np.tile(x, (n_samples, 1))
    before = [w.numpy().copy() for w in model.weights]
    methods = {
        "plain predict, tiled rows (floor)":
            lambda: model.predict(tiled, batch_size=4096, verbose=0),
        "mc_predict (one-shot)": lambda: mc_predict(model, x, n_samples, verbose=0),
    }
    cold, warm = {}, {name: [] for name in methods}
    for name, fn in methods.items():
        start = time.perf_counter()
        fn()
        cold[name] = time.perf_counter() - start
    for i in range(repeats):
        order = list(methods.items())
        for name, fn in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            warm[name].append(time.perf_counter() - start)
    unchanged = all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
    floor, mc = (statistics.median(warm[name]) for name in methods)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Compute floor: 2x100 BN + dropout net, {len(x)} inputs x {n_samples} samples, "
          f"{repeats} alternating repeats, {os.cpu_count()} CPUs, load {load:.1f}")
    for name in methods:
        print(f"  {name:36s} cold {cold[name]:.3f} s   warm median {statistics.median(warm[name]):.3f} s"
              f"   min {min(warm[name]):.3f} s")
    print(f"  ratio mc_predict / floor: median {mc / floor:.2f}x, "
          f"min {min(warm[list(methods)[1]]) / min(warm[list(methods)[0]]):.2f}x; "
          f"weights and BN statistics bitwise unchanged: {unchanged}\n")
    return mc / floor


if __name__ == "__main__":
    raise SystemExit(main())
