"""Pruned + int8 TFLite vs the float model: gzip size, accuracy and latency, side by side.

    python bench/bench_compress.py [--preset sparse] [--data mnist1d] [--epochs 60]
                                   [--sparsity 0.8] [--prune-epochs 30] [--width N] [--repeats 200]

Trains the preset once on MNIST-1D (early stopping), then in one process makes and measures
(:func:`dnnguide.compress.compress`): the float Keras model, the magnitude-pruned model
(TF-MOT via the tf_keras bridge), the float32 TFLite model, and the pruned model in TFLite
dynamic-range and full int8 (run in LiteRT). Prints the report, then the ratios the issue
asks for against the float baselines measured in the same process:

- gzip size: float ``.keras`` (no optimizer state) and float32 ``.tflite`` / pruned int8
  ``.tflite`` (target >= 8x);
- test accuracy change, pruned int8 - float (target: within 1 point);
- latency of one sample: Keras ``model.predict`` / LiteRT int8 ``invoke`` (target >= 5x),
  also against ``predict_on_batch`` (no per-call data pipeline), and for a batch of 256.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sparse")
    parser.add_argument("--data", default="mnist1d")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--prune-epochs", type=int, default=30)
    parser.add_argument("--width", type=int, help="hidden width (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=200, help="timed single-sample calls")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: digits, 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.data, args.epochs, args.prune_epochs, args.repeats = "digits", 2, 1, 5

    import pandas as pd

    import dnnguide
    from dnnguide.compress import compress

    data = dnnguide.load_dataset(args.data, seed=args.seed)
    # run_dir=None: the sparse preset's own pruning runs only for runs kept on disk; the
    # bench prunes explicitly below so that every variant is made the same way.
    overrides = {"width": args.width} if args.width else {}
    run = dnnguide.fit(args.preset, data, run_dir=None, epochs=args.epochs, seed=args.seed,
                       verbose=0, **overrides)
    params = run.model.count_params()
    result = compress(run.model, data, prune=args.sparsity, quantize=("dynamic", "int8"),
                      fold_bn=False, prune_epochs=args.prune_epochs, repeats=args.repeats,
                      seed=args.seed)
    report = result.report.set_index("variant")
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(f"{args.preset} on {args.data}: {params} parameters, "
              f"{run.metrics['epochs_trained']} epochs")
        print(report.to_string())
    float_keras, float_lite = report.loc["float"], report.loc["tflite float32"]
    int8 = report.loc["tflite pruned+int8"]
    metric = "test_accuracy" if "test_accuracy" in report else "test_rmse"
    print()
    print(f"gzip size, float .keras / pruned int8 .tflite:   "
          f"{float_keras.gzip_bytes / int8.gzip_bytes:.1f}x  (target >= 8x)")
    print(f"gzip size, float32 .tflite / pruned int8 .tflite: "
          f"{float_lite.gzip_bytes / int8.gzip_bytes:.1f}x")
    print(f"{metric} change, pruned int8 - float:            "
          f"{100 * (int8[metric] - float_keras[metric]):+.2f} points  (target within 1)")
    print(f"latency per sample, Keras predict / LiteRT int8: "
          f"{float_keras.latency_sample_ms / int8.latency_sample_ms:.0f}x  (target >= 5x; "
          f"{float_keras.latency_sample_ms:.2f} ms vs {1e3 * int8.latency_sample_ms:.1f} us)")
    # predict() sets up a data pipeline on every call; predict_on_batch is Keras's cheapest
    # compiled call, the fairer baseline for serving one sample.
    from dnnguide.compress.report import _median_seconds

    one = data.x_test[:1]
    on_batch_ms = 1e3 * _median_seconds(lambda: run.model.predict_on_batch(one), args.repeats)
    print(f"latency per sample, Keras predict_on_batch / LiteRT int8: "
          f"{on_batch_ms / int8.latency_sample_ms:.0f}x  ({on_batch_ms:.3f} ms)")
    print(f"latency per 256, Keras predict / LiteRT int8:    "
          f"{float_keras.latency_batch_ms / int8.latency_batch_ms:.1f}x")
    print(f"latency per sample, LiteRT float32 / LiteRT int8: "
          f"{float_lite.latency_sample_ms / int8.latency_sample_ms:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
