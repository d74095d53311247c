"""Benchmark: what the audit adds to ``build_model`` (which runs it on every model it builds).

Builds preset models in one process and prints the median time of ``build_model`` (audit
included), the median time of ``audit()`` alone on the built model, and their ratio (the share
of a build spent auditing); then ``audit()`` on a keras.applications model.

Usage::

    python bench/bench_audit.py            # 15 builds, 60 audits per model
    python bench/bench_audit.py --quick    # 3 builds, 12 audits
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats

    import keras

    from dnnguide.auditing import audit
    from dnnguide.presets import build_model

    print(f"{'model':<30} {'build_model ms':>14} {'audit ms':>9} {'audit/build':>12}")
    for preset, depth in (("default", 3), ("default", 20), ("low_latency", 3),
                          ("self_normalizing", 20)):
        build = lambda: build_model(preset, (64,), 10, depth=depth)  # noqa: E731
        built = _median_s(build, repeats)
        model = build()
        alone = _median_s(lambda: audit(model), repeats * 4)
        print(f"{preset + f' depth={depth}':<30} {built * 1e3:>14.1f} {alone * 1e3:>9.3f} "
              f"{alone / built:>12.5f}")
    app = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=10)
    app.compile("adam", "sparse_categorical_crossentropy")
    alone = _median_s(lambda: audit(app), repeats * 4)
    print(f"{'MobileNetV3Small (audit only)':<30} {'':>14} {alone * 1e3:>9.3f}")


if __name__ == "__main__":
    main()
