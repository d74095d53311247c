"""Trials in fresh processes: keras-tuner's own chief/worker mode, started on this machine.

:func:`run_tuning_processes` starts one chief (holding the oracle) and ``workers`` worker
processes running ``python -m dnnguide.tuning.worker PROJECT_DIR``; each worker reads the
search's saved settings and runs :func:`dnnguide.tuning.tune` in its keras-tuner role
(``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``, see
:func:`oracle_env`). Memory then does not grow in the caller (keras-tuner#395). See
``docs/distributed_tuning.md`` for several machines.

References:
    KerasTuner "Distributed hyperparameter tuning"
    (https://keras.io/guides/keras_tuner/distributed_tuning/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dnnguide.config import ConfigError, check_choice, check_range
from dnnguide.distribute import LOOPBACK, free_port
from dnnguide.tuning.search import SETTINGS_FILE, tune
from dnnguide.tuning.space import SearchSpace


def oracle_env(role: str, *, tuner_id: str | None = None, ip: str = LOOPBACK,
               port: int = 8000) -> dict[str, str]:
    """The keras-tuner environment variables for a chief or a worker.

    The chief serves gRPC without TLS or authentication: keep ``ip`` on loopback or a
    private network.
    """
    check_choice("role", role, ("chief", "worker"))
    check_range("port", port, 1, 65535, integer=True)
    if role == "chief":
        tuner_id = "chief"
    elif not tuner_id or "chief" in tuner_id:
        raise ConfigError(f"A worker needs a tuner id without 'chief' in it (e.g. 'worker0'). "
                          f"Received: tuner_id={tuner_id!r}")
    return {"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": ip,
            "KERASTUNER_ORACLE_PORT": str(port)}


def run_tuning_processes(project_dir, workers: int, *, max_trials: int, max_failures: int = 3,
                         oracle_ip: str = LOOPBACK, oracle_port: int | None = None,
                         verbose: int = 1, timeout: float | None = None,
                         strategy: str | None = None, mixed_precision: bool = False,
                         executions_per_trial: int = 1) -> None:
    """Run a saved search (``project_dir``) in one chief and ``workers`` worker processes.

    Every trial runs in a worker process, so this process's memory does not grow with the
    search (keras-tuner#395). Returns when every worker has finished; the chief's oracle
    state is on disk by then (it saves after each trial), so the chief is then stopped.
    ``strategy`` (a kind for :func:`dnnguide.distribute.strategy`), ``mixed_precision`` and
    ``executions_per_trial`` reach every worker's :func:`~dnnguide.tuning.tune`.
    """
    check_range("workers", workers, 1, integer=True)
    if strategy is not None and not isinstance(strategy, str):
        raise ConfigError("Argument `strategy` must be a kind the worker processes create "
                          f"themselves (e.g. 'auto'). Received: strategy={strategy!r}")
    port = oracle_port or free_port(oracle_ip)
    command = [sys.executable, "-m", "dnnguide.tuning.worker", str(project_dir),
               "--max-trials", str(max_trials), "--max-failures", str(max_failures),
               "--executions-per-trial", str(executions_per_trial)]
    command += ["--strategy", strategy] if strategy is not None else []
    command += ["--mixed-precision"] if mixed_precision else []
    logs = Path(project_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def start(role, tuner_id, verbosity):
        env = {**os.environ, **oracle_env(role, tuner_id=tuner_id, ip=oracle_ip, port=port)}
        log = open(logs / f"{tuner_id or 'chief'}.log", "a")
        out = None if verbosity else log
        return subprocess.Popen(command + ["--verbose", str(verbosity)], env=env, stdout=out,
                                stderr=log), log

    chief, chief_log = start("chief", None, verbose)  # the chief prints the trial progress
    procs = [start("worker", f"worker{i}", 0) for i in range(workers)]
    start_time = time.monotonic()
    try:
        while any(p.poll() is None for p, _ in procs):
            # The chief exits 0 as soon as the last worker was told to stop, which can be
            # before that worker's process has exited; any other exit is a failure.
            if chief.poll() not in (None, 0):
                raise RuntimeError(f"The tuning chief failed (exit {chief.returncode}); "
                                   f"see {logs / 'chief.log'}.")
            if timeout is not None and time.monotonic() - start_time > timeout:
                raise TimeoutError(f"Tuning processes still running after {timeout} s.")
            time.sleep(0.5)
        bad = [f"worker{i} (exit {p.returncode})" for i, (p, _) in enumerate(procs) if p.returncode]
        if bad:
            raise RuntimeError(f"Tuning worker processes failed: {', '.join(bad)}; see {logs}.")
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            log.close()
        # keras-tuner's chief polls every 20 s before exiting; its state is already saved.
        if chief.poll() is None:
            chief.terminate()
        chief.wait()
        chief_log.close()



def _main(argv=None) -> int:
    """Entry point of a chief/worker process started by :func:`tune` with ``workers=N``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dnnguide.tuning.worker")
    parser.add_argument("project_dir")
    parser.add_argument("--max-trials", type=int, required=True)
    parser.add_argument("--max-failures", type=int, default=3)
    parser.add_argument("--verbose", type=int, default=0)
    parser.add_argument("--strategy", default=None)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--executions-per-trial", type=int, default=1)
    args = parser.parse_args(argv)
    project_dir = Path(args.project_dir)
    settings = json.loads((project_dir / SETTINGS_FILE).read_text())
    ref = settings["data"]
    if "spec" in ref:
        from dnnguide.data import from_spec

        data = from_spec(ref["spec"])
    else:
        from dnnguide.data import Dataset

        with np.load(project_dir / ref["npz"]) as f:
            arrays = {k: f[k] for k in f.files}
        data = Dataset("arrays", ref["task"], ref["n_outputs"], **arrays)
    tune(data, space=SearchSpace.from_dict(settings["space"]), algorithm=settings["algorithm"],
         max_trials=args.max_trials, epochs=settings["epochs"], directory=project_dir.parent,
         project_name=project_dir.name, objective=settings["objective"],
         factor=settings["factor"], seed=settings["seed"], max_failures=args.max_failures,
         strategy=args.strategy, mixed_precision=args.mixed_precision,
         executions_per_trial=args.executions_per_trial, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(_main())