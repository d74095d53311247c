"""Compression recipe: train the default network, then prune, fold batch norm and quantize it.

Trains the ``default`` preset on MNIST-1D (or digits) with batch norm placed for folding
(``normalization="batch_norm_before"``), then makes every variant with
:func:`dnnguide.compress.compress`: magnitude-pruned to ``--sparsity`` (TF-MOT, via the
tf_keras bridge), BN-folded, and TFLite dynamic-range / float16 / int8 (run in LiteRT). Prints
the report (size, gzip size, sparsity, test accuracy, latency per sample and per batch of
256) and writes ``compression.csv`` and ``plots/size_vs_accuracy.png`` into the run directory,
the compressed models into ``compressed/``.

Usage::

    python recipes/compress.py --data mnist1d --sparsity 0.8
    python recipes/compress.py --quick        # seconds: digits, tiny network, 2 epochs
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["mnist1d", "digits"], default="mnist1d")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs (early stopping)")
    parser.add_argument("--sparsity", type=float, default=0.8, help="pruning target")
    parser.add_argument("--prune-epochs", type=int, default=5, help="pruning fine-tuning epochs")
    parser.add_argument("--qat", action="store_true", help="add quantization-aware training")
    parser.add_argument("--repeats", type=int, default=50, help="timed single-sample predictions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs", help="root folder of run directories")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run for tests: digits, 2 layers of 32, 2 epochs")
    args = parser.parse_args(argv)

    import pandas as pd

    import dnnguide
    from dnnguide.compress import compress, plot_size_vs_accuracy
    from dnnguide.runs import atomic_write_text

    overrides = {"normalization": "batch_norm_before"}
    if args.quick:
        args.data, args.epochs, args.prune_epochs, args.repeats = "digits", 2, 1, 3
        overrides.update(depth=2, width=32)
    result = dnnguide.fit("default", args.data, run_dir=args.run_dir,
                          name=f"compress-{args.data}", epochs=args.epochs, seed=args.seed,
                          verbose=0 if args.quick else "auto", **overrides)
    compressed = compress(result.model, result.data, prune=args.sparsity,
                          quantize=("dynamic", "float16", "int8"), qat=args.qat,
                          prune_epochs=args.prune_epochs, repeats=args.repeats, seed=args.seed)
    out = result.run_dir / "compressed"
    out.mkdir()
    compressed.save(out)
    report = compressed.report
    atomic_write_text(result.run_dir / "compression.csv", report.to_csv(index=False))
    plot = plot_size_vs_accuracy(report, result.run_dir / "plots" / "size_vs_accuracy.png")
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(report.to_string(index=False))
    print(f"run directory: {result.run_dir}")
    print(f"plot: {plot}")
    return report


if __name__ == "__main__":
    main()
