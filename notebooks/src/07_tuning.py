# %% [markdown]
# # 7. Hyperparameter search over the presets
#
# The guidelines give good defaults, not the best values for your data. The usual next step is a
# search, and the presets are a good search space: the default and self-normalizing networks,
# their depth and width, the activations each allows, dropout, optimizer, learning rate (on a
# log scale), schedule and batch size, with the presets' own values as defaults.
# `dnnguide.tune` runs it with keras-tuner; every trial is built by `build_model`, so a
# combination the guidelines forbid (SELU with batch norm) is skipped as an invalid trial, never
# trained as a silently odd model.
#
# This notebook runs a small Hyperband search on MNIST-1D, reads the trials table and plot,
# continues the search where it stopped, and runs trials in worker processes, the way a search
# is spread over several machines.
#
# *Outputs: a full run of `python tools/run_notebooks.py --only 07`. With
# `DNNGUIDE_NOTEBOOK_QUICK=1` the notebook runs on a tiny budget (a slice of the data, tiny
# networks, a few trials of 1-2 epochs) in about a minute; the tests do that.*

# %%
import dataclasses
import io
import logging
import os
import warnings

import dnnguide  # first: it keeps TensorFlow's start-up messages out of the outputs

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, display

# TensorFlow warns when many small models retrace their functions in one process; harmless here.
logging.getLogger("tensorflow").addFilter(lambda record: record.levelno >= logging.ERROR)
# Hyperband continues a trial from the weights of an earlier one, without its optimizer state
# (a fresh optimizer per trial); Keras warns about the skipped optimizer variables each time.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
QUICK = os.environ.get("DNNGUIDE_NOTEBOOK_QUICK") == "1"  # tiny budget, for the tests
MAX_EPOCHS = 3 if QUICK else 9  # Hyperband's largest budget per trial
FIRST_TRIALS, ALL_TRIALS = (2, 3) if QUICK else (12, 20)
pd.set_option("display.max_columns", 30)
pd.set_option("display.width", 200)


def show(fig):
    """Embed a figure as a PNG (works under any matplotlib backend)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    display(Image(buffer.getvalue()))


def claim(text, holds):
    """Print a claim of the "What we saw" text and whether this run supports it."""
    print(("supported: " if holds else "NOT IN THIS RUN: ") + text)


data = dnnguide.load_dataset("mnist1d")
if QUICK:  # a slice of the data: the pipeline, not the result
    data = dataclasses.replace(data, x_train=data.x_train[:600], y_train=data.y_train[:600],
                               x_val=data.x_val[:200], y_val=data.y_val[:200], spec={})
print(f"dnnguide {dnnguide.__version__}; {'quick' if QUICK else 'full'} mode; "
      f"{len(data.x_train)} training rows")

# %% [markdown]
# ## The search space
#
# `SearchSpace.default()` is the guidelines' space over both presets. It is data: `narrow`
# replaces parameters (a list becomes a choice, a scalar a fixed value), `extend` adds any
# config field. Here it is narrowed to small networks and large batches to keep the search
# short. `space.hyperparameters()` is keras-tuner's own `HyperParameters`, with conditions: the
# activation is searched only for the default preset (SELU is the self-normalizing preset's
# only activation).

# %%
def describe(param):
    """A parameter's values in one line."""
    if param.kind in ("int", "float"):
        return (f"{param.low:g} .. {param.high:g}" + (f" step {param.step:g}" if param.step else "")
                + (" (log scale)" if param.log else ""))
    return ", ".join(map(str, param.options()))


default_space = dnnguide.SearchSpace.default()
space = default_space.narrow(depth=[1, 2] if QUICK else [2, 3, 4, 5],
                             width=[16, 32] if QUICK else [64, 128, 256], batch_size=[64, 128])
pd.DataFrame([{"parameter": name, "default space": describe(default_space.params[name]),
               "searched here": describe(param), "only for presets": param.presets or "all"}
              for name, param in space.params.items()]).set_index("parameter")

# %% [markdown]
# ## A Hyperband search
#
# Hyperband (Li et al. 2018) starts many trials on a small budget of epochs and continues only
# the best ones on larger budgets. The objective is the validation accuracy at each trial's best
# epoch; every trial trains on the training split and is scored on the validation split, so the
# test split stays untouched for the best model. `max_trials` caps the number of trials. The
# search lives in `directory/project_name` (here `tuning/search`).

# %%
result = dnnguide.tune(data, space=space, algorithm="hyperband", epochs=MAX_EPOCHS, factor=3,
                       max_trials=FIRST_TRIALS, directory="tuning", seed=0, verbose=0)
shown = ["trial_id", "status", "score", *space.params, "budget_epochs", "epochs", "time_s"]
result.trials[[c for c in shown if c in result.trials]].round(4)

# %% [markdown]
# The trials plot: the objective of each completed trial in order, with the best so far, and
# one panel per searched hyperparameter against the objective.

# %%
Image(filename=result.plot("plots/trials.png"))

# %% [markdown]
# `result.best_config` is a regular `NetworkConfig` (train it again with `dnnguide.fit`, save
# it as JSON); `result.best_model` is the best trial's trained model, which has not seen the
# test split yet.

# %%
test = result.best_model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
print("best hyperparameters:", result.best_hyperparameters)
print(f"best validation accuracy {result.trials['score'].max():.4f}, "
      f"test accuracy of the best model {test['accuracy']:.4f}")

# %% [markdown]
# ## Continuing a search
#
# keras-tuner saves the oracle (every trial's hyperparameters, status and score) after each
# trial. Calling `tune` again with the same settings and directory continues the search: the
# recorded trials are not run again, and `max_trials` counts all of them. A search with
# different settings in the same place is refused rather than mixed in (`overwrite=True` starts
# over). The same holds on the command line (`dnnguide tune ... --directory tuning/`), and
# `dnnguide tune --report tuning/search` prints the table of a search at any time;
# `dnnguide.trials_frame("tuning/search")` reads it in Python.

# %%
resumed = dnnguide.tune(data, space=space, algorithm="hyperband", epochs=MAX_EPOCHS, factor=3,
                        max_trials=ALL_TRIALS, directory="tuning", seed=0, verbose=0)
on_disk = dnnguide.trials_frame("tuning/search")
before = set(result.trials["trial_id"])
first = result.trials.set_index("trial_id")["score"]
unchanged = resumed.trials.set_index("trial_id")["score"].loc[first.index].equals(first)
print(f"{len(before)} trials before, {len(resumed.trials)} after continuing; "
      f"the first {len(before)} unchanged: {unchanged}")
try:
    dnnguide.tune(data, space=space, algorithm="random", epochs=MAX_EPOCHS, max_trials=ALL_TRIALS,
                  directory="tuning", seed=0, verbose=0)
except dnnguide.TuningError as error:
    print("refused:", error)
on_disk[["trial_id", "status", "score", "preset", "budget_epochs", "epochs"]].tail(8).round(4)

# %% [markdown]
# ## Distributing the search
#
# keras-tuner has a chief/worker mode: one **chief** process holds the oracle and serves it
# over gRPC; **workers** ask it for trials, train them and report back. `workers=N` starts a
# chief and N worker processes on this machine (a long search then also keeps the notebook's
# memory flat: keras-tuner's memory grows across trials in one process). Across machines, start
# the roles yourself with the same flags everywhere:
#
# ```bash
# ARGS="--data mnist1d --algorithm hyperband --max-epochs 30 --directory tuning/ --oracle-port 8000"
# dnnguide tune --role chief --oracle-ip 10.0.0.5 $ARGS                  # on the chief machine
# dnnguide tune --role worker --tuner-id worker-$(hostname) --oracle-ip 10.0.0.5 $ARGS  # workers
# ```
#
# The chief serves gRPC without TLS or authentication: bind it to loopback (the default) or a
# private network only. `docs/distributed_tuning.md` has the details (shared directories,
# resuming, devices inside a trial). Below, a small search with two worker processes: the
# `worker_pid` column shows which process trained each trial.

# %%
distributed = dnnguide.tune(data, space=space, algorithm="random", epochs=1 if QUICK else 3,
                            max_trials=2 if QUICK else 6, directory="tuning",
                            project_name="distributed", workers=2, seed=0, verbose=0)
table = distributed.trials
table[[c for c in ["trial_id", "status", "score", "preset", "depth", "width", "worker_pid"]
       if c in table]].round(4)

# %% [markdown]
# ## What we saw
#
# - Every trial of the search completed or was skipped as invalid; none crashed.
# - Continuing the search kept the recorded trials as they were and added new ones up to the
#   new `max_trials`; a different search in the same directory was refused.
# - The best model's test accuracy was close to its validation accuracy (the objective the
#   search maximized), so the search did not simply pick a lucky validation split.
# - With `workers=2` the trials were trained by two different worker processes.
#
# The numbers behind these sentences, recomputed from this run (a claim this run does not support
# is marked):

# %%
status = resumed.trials["status"].value_counts().to_dict()
print(f"trials: {status}; best validation accuracy {resumed.trials['score'].max():.4f}; "
      f"test accuracy of the first search's best model {test['accuracy']:.4f}")
claim("no trial crashed (FAILED)", "FAILED" not in status)
claim("continuing kept the recorded trials and reached the new max_trials",
      unchanged and len(resumed.trials) == ALL_TRIALS)
claim("the best model's test accuracy was within 5 points of its validation accuracy",
      abs(test["accuracy"] - result.trials["score"].max()) < 0.05)
claim("two worker processes trained the distributed trials",
      table["worker_pid"].nunique() == 2 if "worker_pid" in table else False)
