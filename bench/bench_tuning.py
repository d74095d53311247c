"""Trials per hour: trials in this process vs in 1 and 2 worker processes (keras-tuner chief/worker).

    python bench/bench_tuning.py                 # 8 trials of 3 epochs on 1000 rows of mnist1d
    python bench/bench_tuning.py --trials 4      # quicker

The same random search (same seed, same space, same trials) runs three times: in this process
(the baseline), then with ``workers=1`` and ``workers=2`` (one chief process holding the oracle
on loopback plus the workers). Wall time includes starting the processes (TensorFlow imports).
Prints trials/hour and the ratio to the baseline. On a shared machine the figures vary: run it
when the machine is quiet, and compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from dnnguide.data import load_dataset
    from dnnguide.tuning import SearchSpace, tune

    data = load_dataset("mnist1d", seed=0)
    data = dataclasses.replace(data, x_train=data.x_train[:args.rows],
                               y_train=data.y_train[:args.rows], spec={})
    space = SearchSpace.default().narrow(depth=[1, 2, 3], width=[32, 64], schedule="performance")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for workers in [0, *args.workers]:
            start = time.perf_counter()
            result = tune(data, space=space, algorithm="random", max_trials=args.trials,
                          epochs=args.epochs, directory=root, project_name=f"w{workers}",
                          workers=workers, verbose=0)
            wall = time.perf_counter() - start
            done = int((result.trials["status"] == "COMPLETED").sum())
            rows.append((workers, done, wall, result.trials["time_s"].sum()))
    base = rows[0][1] / rows[0][2] * 3600
    print(f"{'setup':<22}{'trials':>7}{'wall s':>9}{'fit s':>8}{'trials/hour':>13}{'ratio':>7}")
    for workers, done, wall, fit_s in rows:
        rate = done / wall * 3600
        label = "in process" if workers == 0 else f"{workers} worker process(es)"
        print(f"{label:<22}{done:>7}{wall:>9.1f}{fit_s:>8.1f}{rate:>13.0f}{rate / base:>7.2f}")
    print(f"CPU cores visible: {os.cpu_count()} (shared machine: figures are indicative)")


if __name__ == "__main__":
    main()
