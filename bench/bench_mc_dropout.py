"""One-shot ``mc_predict`` vs the naive MC dropout loop and vs the compute floor; MC vs plain on MNIST-1D.

    python bench/bench_mc_dropout.py [--samples 100] [--epochs 30] [--repeats 3] [--small 16]

First issue 14's workload, the figures its targets are about: a 2x100 BN + dropout net (the
``risk_sensitive`` preset at ``depth=2, width=100`` with batch norm: MNIST-1D's 40 inputs, 10
classes, 16,010 parameters), 1000 inputs x 100 samples, in one process, alternating order,
``--workload-repeats`` times:

- naive loop: ``np.stack([plain(x, training=True) for _ in range(100)])``, what a user writes
  (eager calls; ``plain`` is the net's standard-dropout twin, a copy, because a loop like this
  also runs BatchNormalization in training mode and overwrites its moving statistics);
- ``mc_predict(model, x, 100)``, one-shot;
- the floor: one plain ``model.predict`` of the same 100,000 tiled rows in calls of the same
  size (4096 rows, ``max_rows``): the same FLOPs without the dropout masks.

Prints the median times, mc_predict's speed-up over the naive loop (target: >= 5x) and its
ratio to the floor (target: <= 1.3x), and whether the net's weights and BN statistics stayed
bitwise unchanged. ``--workload-only`` stops there.

Then an extra, bigger model (not the issue's workload): the ``risk_sensitive`` preset trained on
MNIST-1D, sized for it by the data-aware rules (256 wide, ~276k parameters). On the same model
and the same inputs (the 1000 test inputs, then the first ``--small`` of them: the serving case),
in one process, alternating order:

- naive: ``np.stack([model(x, training=True) for _ in range(100)])`` (the model with standard
  dropout; eager calls; with BatchNormalization this would also corrupt its statistics);
- compiled loop: ``[mc_model.predict_on_batch(x) for _ in range(100)]`` (one pass per sample;
  its predict function traced inside ``mc_sampling()``);
- ``mc_predict``: one-shot, tiled samples in compiled calls of at most ``max_rows`` rows
  (the sampler is traced once per model and kept with it);
- ``MCDropoutPredictor``: the same, built once and reused.

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
    parser.add_argument("--workload-repeats", "--floor-repeats", dest="workload_repeats",
                        type=int, default=15, help="alternating repeats of issue 14's workload")
    parser.add_argument("--workload-only", "--floor-only", dest="workload_only",
                        action="store_true", help="only issue 14's workload (2x100 BN net)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 epochs, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats, args.workload_repeats = 2, 1, 2
    issue_workload(args.samples, args.workload_repeats)
    if args.workload_only:
        return 0

    import keras
    import pandas as pd

    import dnnguide
    from dnnguide.layers import mc_sampling, to_mc_dropout, to_standard_dropout
    from dnnguide.uncertainty import MCDropoutPredictor, mc_predict
    from dnnguide.uncertainty_report import compare_mc_dropout

    data = dnnguide.load_dataset("mnist1d", seed=0)
    # one net (the preset trains an ensemble of 5): the sampling of one model is what is timed
    result = dnnguide.fit("risk_sensitive", data, run_dir=None, epochs=args.epochs, verbose=0,
                          ensemble=1)
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
        keras.utils.set_random_seed(0)
        cold, warm = time_alternating(methods, args.repeats)
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
    print(f"Extra, a bigger model (not issue 14's workload): MNIST-1D test inputs x {n} samples, "
          f"risk_sensitive preset sized for MNIST-1D ({mc_model.count_params():,} parameters), "
          f"{os.cpu_count()} CPUs, load {load:.1f}")
    with pd.option_context("display.float_format", "{:.3f}".format):
        print(speed.to_string())
        comparison = compare_mc_dropout(mc_model, x, data.y_test, n_samples=n, seed=0, verbose=0)
        print(f"\nplain vs MC dropout ({args.epochs} epochs of training, {n} samples):")
        print(comparison.table.to_string())
    return 0


def time_alternating(methods: dict, repeats: int) -> tuple[dict, dict]:
    """Cold time (first call) and the warm times of each method, alternating the order."""
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
    return cold, warm


def issue_workload(n_samples: int, repeats: int) -> dict[str, float]:
    """Issue 14's workload: naive loop, one-shot ``mc_predict`` and the floor on the 2x100 BN net.

    Returns the median warm times by method.
    """
    import keras

    import dnnguide
    from dnnguide.layers import to_standard_dropout
    from dnnguide.uncertainty import mc_predict

    keras.utils.set_random_seed(0)
    model = dnnguide.build_model("risk_sensitive", (40,), 10, depth=2, width=100,
                                 normalization="batch_norm_after")
    plain = to_standard_dropout(model)  # the naive loop's net: a copy (its BN stats change)
    x = np.random.default_rng(0).normal(size=(1000, 40)).astype("float32")
    tiled = np.tile(x, (n_samples, 1))
    before = [w.numpy().copy() for w in model.weights]
    naive, mc, floor = ("naive loop", "mc_predict (one-shot)", "plain predict, tiled rows (floor)")
    methods = {
        naive: lambda: np.stack([np.asarray(plain(x, training=True)) for _ in range(n_samples)]),
        mc: lambda: mc_predict(model, x, n_samples, verbose=0),
        floor: lambda: model.predict(tiled, batch_size=4096, verbose=0),
    }
    cold, warm = time_alternating(methods, repeats)
    unchanged = all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
    median = {name: statistics.median(times) for name, times in warm.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Issue 14's workload: 2x100 BN + dropout net ({model.count_params():,} parameters), "
          f"{len(x)} inputs x {n_samples} samples, {repeats} alternating repeats, "
          f"{os.cpu_count()} CPUs, load {load:.1f}")
    for name in methods:
        print(f"  {name:36s} cold {cold[name]:.3f} s   warm median {median[name]:.3f} s"
              f"   min {min(warm[name]):.3f} s")
    print(f"  mc_predict vs the naive loop: {median[naive] / median[mc]:.1f}x warm (median), "
          f"min {min(warm[naive]) / min(warm[mc]):.1f}x, cold {cold[naive] / cold[mc]:.1f}x"
          f"   [target >= 5x]")
    print(f"  mc_predict / floor: median {median[mc] / median[floor]:.2f}x, "
          f"min {min(warm[mc]) / min(warm[floor]):.2f}x   [target <= 1.3x]; "
          f"weights and BN statistics bitwise unchanged: {unchanged}\n")
    return median


if __name__ == "__main__":
    raise SystemExit(main())
