# %% [markdown]
# # 6. Compression: pruning, batch-norm folding and quantization
#
# Two of the guidelines' exceptions are about the deployed model rather than training: a
# **sparse** model (L1 and magnitude pruning, most weights exactly zero, so it compresses well)
# and a **low-latency** model (few layers, ReLU, batch norm placed right after each Dense layer
# so it can be folded into its weights, 8-bit export). `dnnguide.compress` turns a trained model
# into those variants and measures each one on the test split: file size and gzip size,
# sparsity, accuracy, and latency.
#
# This notebook trains the low-latency preset on MNIST-1D, folds its batch norm, prunes it and
# quantizes it (dynamic range, float16, full int8 with LiteRT), then sweeps the pruning target
# to see how far the weights can be thinned before the accuracy goes.
#
# *Outputs: a full run of `python tools/run_notebooks.py --only 06`. With
# `DNNGUIDE_NOTEBOOK_QUICK=1` the notebook runs on a tiny budget (digits, a small network, 2
# epochs) in about a minute; the tests do that. Needs the `compress` extra
# (`pip install "dnnguide[compress]"`; `[dev]` includes it).*

# %%
import io
import logging
import os

import dnnguide  # first: it keeps TensorFlow's start-up messages out of the outputs

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Image, display
from dnnguide.compress import (
    LiteRTModel, compress, fold_batch_norm, gzip_size, plot_size_vs_accuracy, prune, sparsity,
    to_tflite,
)

# TensorFlow warns when many small models retrace their functions in one process; harmless here.
logging.getLogger("tensorflow").addFilter(lambda record: record.levelno >= logging.ERROR)
QUICK = os.environ.get("DNNGUIDE_NOTEBOOK_QUICK") == "1"  # tiny budget, for the tests
DATA = "digits" if QUICK else "mnist1d"
EPOCHS = 2 if QUICK else None  # None: the preset's budget (early stopping ends it)
PRUNE_EPOCHS = 1 if QUICK else 20  # fine-tuning while pruning
SPARSITIES = [0.5, 0.9] if QUICK else [0.5, 0.8, 0.9, 0.95, 0.98]
REPEATS = 3 if QUICK else 50  # timed single-example predictions per variant
small = {"width": 32} if QUICK else {}
pd.set_option("display.max_colwidth", None)  # the reasons in full


def show(fig):
    """Embed a figure as a PNG (works under any matplotlib backend)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    display(Image(buffer.getvalue()))


def claim(text, holds):
    """Print a claim of the "What we saw" text and whether this run supports it."""
    print(("supported: " if holds else "NOT IN THIS RUN: ") + text)


data = dnnguide.load_dataset(DATA)
print(f"dnnguide {dnnguide.__version__}; {'quick' if QUICK else 'full'} mode; data: {DATA}")

# %% [markdown]
# ## The low-latency preset
#
# Its reasons say what each choice buys at inference time:

# %%
rec = dnnguide.recommend(low_latency=True, data=data)
table = rec.table()
table[table["field"].isin(["depth", "activation", "normalization", "fold_batch_norm",
                           "precision"])]

# %% [markdown]
# `fit` trains it like any preset and, because the configuration asks for folding and 8-bit
# precision, also writes `model_folded.keras` (batch norm folded into the Dense layers) and
# `model_int8.tflite` (full integer quantization) into the run directory, each scored on the
# test split in `metrics.json`. `model.keras` stays the float model that was trained.

# %%
run = dnnguide.fit("low_latency", data, epochs=EPOCHS, seed=0, verbose=0, **small)
print(f"{run.config.depth} x {run.config.width} {run.config.activation}, "
      f"{run.config.normalization}; {run.metrics['epochs_trained']} epochs")
pd.Series({k: v for k, v in run.metrics.items()
           if k.startswith(("test_accuracy", "folded", "int8"))}, name="value").to_frame()

# %% [markdown]
# ## Folding batch norm
#
# At inference a batch-norm layer is an affine map with frozen statistics, so right after a
# Dense layer it can be merged into that layer's weights: `W' = W * s` and
# `b' = (b - mean) * s + beta` with `s = gamma / sqrt(var + eps)`. The folded model has no
# batch-norm layers and predicts the same, up to float rounding:

# %%
folded = fold_batch_norm(run.model)
x = data.x_test.astype("float32")
difference = np.abs(folded.predict(x, verbose=0) - run.model.predict(x, verbose=0)).max()
print(f"layers: {len(run.model.layers)} -> {len(folded.layers)}; batch-norm layers left: "
      f"{sum('BatchNormalization' in type(l).__name__ for l in folded.layers)}; "
      f"largest difference in predicted probabilities: {difference:.1e}")

# %% [markdown]
# ## Every variant, measured
#
# `compress` makes the variants and measures them in one call: the float model, the model
# pruned to 80% sparsity (TF-MOT magnitude pruning, fine-tuned for `PRUNE_EPOCHS`), the pruned
# and folded model, and TFLite conversions run in the LiteRT interpreter: float32 (the
# baseline), dynamic-range (8-bit weights), float16 and full int8 (8-bit weights and
# activations, calibrated on training inputs). `gzip_bytes` is what the model costs to ship:
# zeros and 8-bit weights compress well. (The TFLite converter prints a line such as
# `fully_quantize: 0, ...` for each conversion, and LiteRT announces its XNNPACK delegate.)

# %%
result = compress(run.model, run.data, prune=0.8, quantize=("dynamic", "float16", "int8"),
                  prune_epochs=PRUNE_EPOCHS, repeats=REPEATS, seed=0)
report = result.report
report[["variant", "format", "size_bytes", "gzip_bytes", "gzip_ratio", "sparsity",
        "test_accuracy", "latency_sample_ms", "latency_batch_ms"]].round(4)

# %% [markdown]
# Size against accuracy, one point per variant (gzip size on a log scale):

# %%
Image(filename=plot_size_vs_accuracy(report, "plots/size_vs_accuracy.png", overwrite=True))

# %% [markdown]
# ## How far can pruning go?
#
# `prune` returns a pruned copy (the model it is given is untouched): the sparsity of each Dense
# kernel rises to the target during the fine-tuning, then the network recovers at that sparsity.
# The int8 TFLite model of each pruned copy shows what sparsity and quantization save together.

# %%
rows = []
for target in SPARSITIES:
    pruned = prune(run.model, run.data, target_sparsity=target, epochs=PRUNE_EPOCHS, seed=0)
    int8 = to_tflite(pruned, "int8", representative_data=run.data.x_train)
    int8_accuracy = np.mean(LiteRTModel(int8).predict(x).argmax(axis=1) == data.y_test)
    keras_accuracy = pruned.evaluate(x, data.y_test, verbose=0, return_dict=True)["accuracy"]
    rows.append({"target": target, "sparsity": sparsity(pruned)["total"],
                 "test_accuracy": keras_accuracy, "int8_test_accuracy": int8_accuracy,
                 "int8_gzip_bytes": gzip_size(int8)})
sweep = pd.DataFrame(rows)
float_accuracy = run.metrics["test_accuracy"]

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].plot(sweep["sparsity"], sweep["test_accuracy"], marker="o", label="pruned (Keras)")
axes[0].plot(sweep["sparsity"], sweep["int8_test_accuracy"], marker="s", label="pruned + int8")
axes[0].axhline(float_accuracy, color="grey", linestyle="--", label="float model")
axes[0].set(xlabel="sparsity of the Dense kernels", ylabel="test accuracy",
            title="accuracy vs sparsity")
axes[0].legend()
axes[1].plot(sweep["sparsity"], sweep["int8_gzip_bytes"] / 1024, marker="s")
axes[1].set(xlabel="sparsity of the Dense kernels", ylabel="gzip size (KiB)",
            title="int8 TFLite size vs sparsity")
show(fig)
sweep.round(4)

# %% [markdown]
# ## What we saw
#
# - Folding batch norm removed every batch-norm layer and changed the predictions only by float
#   rounding; the folded model's test accuracy equals the float model's.
# - Full int8 quantization cut the gzip size of the TFLite model about 4x against float32, at
#   a cost of less than a point of test accuracy; pruning to 80% shrank it further.
# - Moderate pruning cost little accuracy after the fine-tuning; at the highest sparsities the
#   accuracy fell. Pruning and 8-bit weights together (dynamic-range or int8 TFLite of the pruned
#   model) gave the smallest files of all the variants.
#
# The numbers behind these sentences, recomputed from this run (a claim this run does not support
# is marked):

# %%
by_variant = report.set_index("variant")
int8_rows = by_variant[by_variant.index.str.endswith("int8")]
print(f"float test accuracy {float_accuracy:.3f}; folded {run.metrics['folded_test_accuracy']:.3f}"
      f"; largest prediction difference after folding {difference:.1e}")
print("gzip bytes: " + ", ".join(f"{k} {v:,}" for k, v in by_variant["gzip_bytes"].items()))
print("pruning sweep (sparsity: accuracy): " + ", ".join(
    f"{s:.2f}: {a:.3f}" for s, a in zip(sweep["sparsity"], sweep["test_accuracy"])))
claim("folding left no batch-norm layer and changed the predicted probabilities by < 1e-4",
      difference < 1e-4 and not any("BatchNormalization" in type(l).__name__
                                    for l in folded.layers))
claim("the folded model's test accuracy equals the float model's",
      abs(run.metrics["folded_test_accuracy"] - float_accuracy) < 1e-3)
int8_plain = run.metrics["int8_tflite_gzip_bytes"]
claim("full int8 cut the TFLite gzip size at least 3x against float32, losing < 1 point",
      by_variant.loc["tflite float32", "gzip_bytes"] > 3 * int8_plain
      and float_accuracy - run.metrics["int8_test_accuracy"] < 0.01)
claim("the pruned int8 model was smaller than the unpruned int8 one",
      int8_rows["gzip_bytes"].min() < int8_plain)
claim("the smallest variant was a TFLite model of the pruned network with 8-bit weights",
      by_variant["gzip_bytes"].idxmin() in ("tflite pruned+dynamic", "tflite pruned+int8"))
moderate = sweep[sweep["target"] <= 0.8]
claim("pruning up to 80% cost at most 2 points of test accuracy",
      (float_accuracy - moderate["test_accuracy"]).max() <= 0.02)
claim("the highest sparsity lost more accuracy than 50%",
      sweep["test_accuracy"].iloc[-1] < sweep["test_accuracy"].iloc[0])
