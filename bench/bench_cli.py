"""Start-up time of the light ``dnnguide`` commands vs ``python -c "import keras"``.

    python bench/bench_cli.py [--repeats 5]

Runs, in fresh processes and alternating order, the baseline ``python -c "import keras"``
(what every command paid before the CLI imported TensorFlow lazily) and ``dnnguide --help``,
``--version``, ``presets``, ``recommend --depth deep``, ``runs`` (on an empty folder), and
prints each command's median wall time as a ratio of the baseline's median (lower is better;
the target is that none of them imports TensorFlow, so the ratio is far below 1).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "--help": ["--help"],
    "--version": ["--version"],
    "presets": ["presets"],
    "recommend": ["recommend", "--depth", "deep"],
    "runs": ["runs", "--root", "{empty}"],
}


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in ["import keras", *COMMANDS]}
    with tempfile.TemporaryDirectory() as empty:
        for _ in range(args.repeats):
            times["import keras"].append(_wall([sys.executable, "-c", "import keras"]))
            for name, command in COMMANDS.items():
                command = [part.format(empty=empty) for part in command]
                times[name].append(_wall([sys.executable, "-m", "dnnguide.cli", *command]))
    baseline = statistics.median(times["import keras"])
    print(f"baseline `python -c \"import keras\"`: median {baseline:.2f} s "
          f"over {args.repeats} runs")
    print(f"{'command':<28} {'median s':>9} {'ratio':>7}")
    for name in COMMANDS:
        median = statistics.median(times[name])
        print(f"{'dnnguide ' + name:<28} {median:>9.2f} {median / baseline:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
