# %% [markdown]
# # dnnguide quickstart
#
# Name a situation, get a configuration with a reason for every choice, build it in one call,
# train it with the right callbacks, and keep every result.
#
# Runs offline: the data are scikit-learn's digits, shipped with the package.
#
# *Outputs: a full run of `python tools/run_notebooks.py --only quickstart`. With
# `DNNGUIDE_NOTEBOOK_QUICK=1` it trains for 3 epochs instead of up to 100; the tests do that.*

# %%
import os

import pandas as pd
from IPython.display import Image

import dnnguide

QUICK = os.environ.get("DNNGUIDE_NOTEBOOK_QUICK") == "1"  # the tests run a tiny budget
EPOCHS = 3 if QUICK else 100
pd.set_option("display.max_colwidth", None)  # the reasons in full
print(f"dnnguide {dnnguide.__version__}; {'quick' if QUICK else 'full'} mode")

# %% [markdown]
# ## 1. Ask the guidelines
# `recommend` applies the default-DNN or self-normalizing table and the exceptions (sparse, low
# latency, risk-sensitive). Every field carries its reason.

# %%
rec = dnnguide.recommend(depth="deep", risk_sensitive=True)
rec.table()

# %% [markdown]
# Sparse models never self-normalize: the exception wins and says so.

# %%
print(dnnguide.recommend(sparse=True, self_normalizing=True).reasons["activation"])

# %% [markdown]
# ## 2. Presets and overrides
# A preset is a named situation; overrides win and are validated.

# %%
print(dnnguide.list_presets())
cfg = dnnguide.get_preset("self_normalizing", depth=20, dropout_rate=0.1)
cfg.activation, cfg.kernel_initializer, cfg.regularization.dropout_kind

# %%
try:
    dnnguide.get_preset("self_normalizing", normalization="batch_norm_after")
except dnnguide.ConfigError as err:
    print(err)

# %% [markdown]
# ## 3. Train and keep the run
# `fit` sizes the preset for the data, adds early stopping (best weights restored), the schedule,
# a NaN guard and a resumable checkpoint, and writes `runs/<time>-<name>/`.

# %%
result = dnnguide.fit("default", "digits", epochs=EPOCHS, verbose=0)
print(result.run_dir)
result.metrics

# %%
result.history.tail()

# %% [markdown]
# The run keeps its learning curves (with the best epoch and an early stop marked):

# %%
Image(filename=result.run_dir / "plots" / "learning_curves.png")

# %% [markdown]
# ## 4. Every run, as one table

# %%
frame = dnnguide.runs.load("runs")
frame[["run", "preset", "dataset", "epochs_trained", "test_accuracy"]]
