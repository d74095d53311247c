"""Ideas measured against what the product does, so they can be measured again.

    python bench/ablations.py ema --data breast_cancer digits diabetes --seeds 0 1 2 3 4 5 6 7 8 9
    python bench/ablations.py refit --data breast_cancer digits diabetes --seeds 0 ... 9
    python bench/ablations.py mc_rate --data digits breast_cancer --seeds 0 ... 6
    python bench/ablations.py onecycle_peak --preset self_normalizing --data mnist1d digits
    python bench/ablations.py mc_pooling --data digits breast_cancer --seeds 0 ... 19
    python bench/ablations.py ensemble --data digits breast_cancer --seeds 0 ... 9
    python bench/ablations.py crossfit --data breast_cancer diabetes digits --seeds 0 1 2 3 4
    python bench/ablations.py cv_dropout --data diabetes --seeds 0 ... 9 --rates 0.2

- ``ema``: validate, keep and predict with an exponential moving average of the weights
  (Polyak averaging) over ``--horizons`` epochs of steps (1 and 3) instead of the raw weights;
- ``refit``: Goodfellow et al. (2016), algorithm 7.2: early stopping finds the epochs, then
  the same network is trained again on train + validation for that many epochs, replaying the
  learning rate the first run used in each epoch; the first run's temperature is kept;
- ``mc_rate``: the risk-sensitive preset with a higher dropout rate, scored by its calibrated
  MC prediction (more diverse masks, in the hope of a better MC average);
- ``onecycle_peak`` (adopted): ``--preset`` with ``schedule="onecycle"`` and 1cycle's peak as
  the product picks it (``lr_finder.onecycle_peak``: the finder's ``minimum`` rule lifted
  towards 5x the constant LR), against the ``minimum`` rule alone as ``base``;
- ``mc_pooling`` (adopted: ``geometric``): the risk-sensitive preset's calibrated MC prediction
  (100 samples, the same masks for every rule; the temperature fitted on the validation split)
  pooled by the normalized geometric mean of the samples, by their mean, and by the geometric
  mean with the MC temperature kept at 1 unless the 5% likelihood-ratio test supports it
  (``geometric_tested``, not adopted), against ``base``: whichever pooling's calibrated
  prediction has the lower validation NLL, as ``calibrate()`` chose before. Classification only;
- ``ensemble``: ``--members`` (5) independently initialized nets on the same split (seeds
  ``seed + 1000 k``; member 0 is the ``base`` run), their probabilities pooled by the normalized
  geometric mean and tempered on the validation split: the default preset's nets
  (``default_x5``), and the risk-sensitive preset's with ``100 / members`` MC samples each
  (``risk_sensitive_mc_x5``: as many forward passes as one net's 100-sample MC prediction).
  Deep ensembles (Lakshminarayanan et al. 2017), for issue 14's "NLL better than the default",
  which MC dropout over one net does not reach. Classification only. (Adopted since: the
  risk-sensitive preset is ``ensemble=5``, built by ``dnnguide.ensemble``.)
- ``crossfit``: ``--members`` (5) default nets on the folds of train + validation (stratified
  for classes), each early-stopped on its own fold, pooled as the ensemble pools them; the
  temperature is fitted on every row's out-of-fold prediction, with the 5% test
  (``crossfit_x5``), freely (``_free_t``) or not at all (``_no_t``). On small data one
  validation split of a few dozen rows decides early stopping and the temperature; here every
  row validates one net. Any task. (Not adopted: as good as the same-split ensemble, no better.)
- ``cv_dropout`` (adopted for regression under 1,000 training rows: ``dnnguide.cross_fit``):
  the cross-fitted nets without dropout and with each of ``--rates``, and the candidate whose
  out-of-fold predictions score best (RMSE; NLL after the out-of-fold temperature for classes).

The risk-sensitive fits here are one net each (``ensemble=1``): ``mc_rate``, ``mc_pooling`` and
``ensemble`` measure that net, as they did before the preset became an ensemble.

Each row is one run scored on the test split (``presets_vs_baselines.score_or_nan``: accuracy,
NLL and 15-bin ECE, or RMSE; NaN for a run that diverged), with the variant's name; ``base`` is the default preset itself
(``dnnguide.fit("default", data, seed=s)``, scored as the harness scores it), or for
``onecycle_peak`` the preset's 1cycle with the ``minimum`` rule as its peak, and for
``mc_pooling`` the pooling rule ``calibrate()`` had before; ``time_s`` counts
from the start of the seed's first fit. Rows are written to ``--csv`` (never an existing one) as
they finish; each variant's gain over ``base``, paired by seed, prints at the end
(:func:`paired`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def ema_callback(horizon_epochs: float):
    """A callback that averages the trainable weights over ``horizon_epochs`` epochs of steps
    and swaps the average in for validation (so early stopping picks, and keeps, averages).

    Not Keras' ``use_ema=True``: that optimizer option writes the average into the weights only
    when ``fit`` ends, so validation and early stopping would see the raw weights (and with
    ``ema_overwrite_frequency`` set, training goes on from the average, which is another method).
    """
    import keras
    import tensorflow as tf

    class EMAWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            momentum = 1.0 - 1.0 / max(1.0, horizon_epochs * (self.params.get("steps") or 1))
            self.weights = list(self.model.trainable_variables)
            self.shadow = [tf.Variable(w.numpy(), trainable=False) for w in self.weights]
            self.raw = None

            @tf.function
            def update():
                for s, w in zip(self.shadow, self.weights):
                    s.assign(momentum * s + (1.0 - momentum) * tf.convert_to_tensor(w))

            self.update = update

        def on_train_batch_end(self, batch, logs=None):
            self.update()

        def on_test_begin(self, logs=None):  # validation: the average, until the next epoch
            if self.raw is None:
                self.raw = [w.numpy() for w in self.weights]
                for w, s in zip(self.weights, self.shadow):
                    w.assign(s.numpy())

        def on_epoch_begin(self, epoch, logs=None):
            if self.raw is not None:
                for w, r in zip(self.weights, self.raw):
                    w.assign(r)
                self.raw = None

    return EMAWeights()


def _predict(model, data):
    return model.predict(data.x_test, batch_size=1024, verbose=0)


def _fit(preset, data, seed, **kwargs):
    import dnnguide

    return dnnguide.fit(preset, data, run_dir=None, seed=seed, verbose=0, **kwargs)


def ema_rows(data, seed, args):
    yield "base", _predict(_fit("default", data, seed).model, data)
    for horizon in args.horizons:
        result = _fit("default", data, seed, callbacks=[ema_callback(horizon)])
        yield f"ema_{horizon:g}_epochs", _predict(result.model, data)


def refit_rows(data, seed, args):
    import keras
    import numpy as np

    from dnnguide.calibration import temper
    from dnnguide.uncertainty import uncalibrated

    first = _fit("default", data, seed)
    yield "base", _predict(first.model, data)
    epochs = int(first.metrics["best_epoch"])
    rates = list(first.history["learning_rate"])[:epochs]
    full = dataclasses.replace(data, x_train=np.concatenate([data.x_train, data.x_val]),
                               y_train=np.concatenate([data.y_train, data.y_val]))
    config = dataclasses.replace(
        first.config, epochs=epochs, calibration="none",
        early_stopping=dataclasses.replace(first.config.early_stopping, enabled=False),
        schedule=dataclasses.replace(first.config.schedule, name="constant"))
    replay = keras.callbacks.LearningRateScheduler(lambda epoch, lr: float(rates[epoch]))
    out = _predict(uncalibrated(_fit(config, full, seed, callbacks=[replay]).model), data)
    yield "refit", out if data.task == "regression" else temper(
        out, first.metrics.get("temperature", 1.0))


def mc_rate_rows(data, seed, args):
    import dnnguide

    yield "base", _predict(_fit("default", data, seed).model, data)
    for rate in args.rates:
        result = _fit("risk_sensitive", data, seed, dropout_rate=rate, ensemble=1)
        yield f"risk_sensitive_mc_{rate:g}", dnnguide.mc_predict(
            result.model, data.x_test, seed=seed, verbose=0).mean


def onecycle_peak_rows(data, seed, args):
    import presets_vs_baselines as harness

    from dnnguide import lr_finder

    preset, overrides = harness.parse_contender(args.preset)
    rule = lr_finder.onecycle_peak
    for variant, peak in (("base", lambda minimum, *_, **__: minimum), ("onecycle_peak", rule)):
        lr_finder.onecycle_peak = peak  # base: the minimum rule alone, as before
        try:
            result = _fit(preset, data, seed, schedule="onecycle", **overrides)
        finally:
            lr_finder.onecycle_peak = rule
        yield variant, _predict(result.model, data)


def mc_pooling_rows(data, seed, args):
    import dnnguide
    from dnnguide.calibration import fit_temperature, negative_log_likelihood, temper
    from dnnguide.uncertainty import uncalibrated

    if data.task == "regression":
        raise SystemExit(f"mc_pooling: classification data only. Received: {data.name} "
                         "(regression pools by the mean only)")
    model = uncalibrated(_fit("risk_sensitive", data, seed, ensemble=1).model)
    fitted = {}
    for pooling in ("geometric", "mean"):
        val, test = (dnnguide.mc_predict(model, x, 100, seed=0, verbose=0, pooling=pooling).mean
                     for x in (data.x_val, data.x_test))
        for tested in (False, True):
            t = fit_temperature(data.y_val, val, significance=0.05 if tested else None)
            fitted[pooling, tested] = (negative_log_likelihood(data.y_val, temper(val, t)),
                                       temper(test, t))
    chosen = min(("mean", "geometric"), key=lambda pooling: fitted[pooling, False][0])
    yield "base", fitted[chosen, False][1]
    yield "geometric", fitted["geometric", False][1]
    yield "mean", fitted["mean", False][1]
    yield "geometric_tested", fitted["geometric", True][1]


def _geometric_pool(members):
    """The members' class probabilities pooled as mc_predict pools samples (the normalized
    geometric mean); binary outputs as two classes."""
    import numpy as np

    from dnnguide.calibration import _EPS, _class_probabilities
    from dnnguide.uncertainty.mc_dropout import _geometric

    log_p = np.mean([np.log(np.clip(_class_probabilities(p), _EPS, 1.0)) for p in members],
                    axis=0)
    return _geometric(log_p, "classification")


def ensemble_rows(data, seed, args):
    import dnnguide
    from dnnguide.calibration import fit_temperature, temper
    from dnnguide.uncertainty import uncalibrated

    if data.task == "regression":
        raise SystemExit(f"ensemble: classification data only. Received: {data.name}")
    def pooled(members):  # members: (validation, test) predictions
        val, test = _geometric_pool([m[0] for m in members]), _geometric_pool(
            [m[1] for m in members])
        return temper(test, fit_temperature(data.y_val, val))

    samples = max(1, 100 // args.members)
    plain, mc = [], []
    for k in range(args.members):
        default = _fit("default", data, seed + 1000 * k)
        if k == 0:
            yield "base", _predict(default.model, data)
        net = uncalibrated(default.model)
        plain.append([net.predict(x, batch_size=1024, verbose=0)
                      for x in (data.x_val, data.x_test)])
        risk = uncalibrated(_fit("risk_sensitive", data, seed + 1000 * k, ensemble=1).model)
        mc.append([dnnguide.mc_predict(risk, x, samples, seed=0, verbose=0,
                                       pooling="geometric").mean
                   for x in (data.x_val, data.x_test)])
    yield f"default_x{args.members}", pooled(plain)
    yield f"risk_sensitive_mc_x{args.members}", pooled(mc)


def _crossfit(data, seed, members, **overrides):
    """``members`` nets of the default preset (with ``overrides``) on the folds of train +
    validation (stratified for classes), each early-stopped on its own fold. Returns the
    targets of train + validation, every row's out-of-fold prediction (class probabilities for
    classes) and the nets' test predictions pooled as the ensemble pools them (the geometric
    mean of the probabilities, the mean for regression)."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    from dnnguide.calibration import _class_probabilities
    from dnnguide.uncertainty import uncalibrated

    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    classes = data.task != "regression"
    folds = (StratifiedKFold if classes else KFold)(members, shuffle=True, random_state=seed)
    oof, tests = None, []
    for k, (train, val) in enumerate(folds.split(x, y if classes else None)):
        fold = dataclasses.replace(data, x_train=x[train], y_train=y[train], x_val=x[val],
                                   y_val=y[val])
        net = uncalibrated(_fit("default", fold, seed + 1000 * k, **overrides).model)
        out_val = net.predict(x[val], batch_size=1024, verbose=0)
        if oof is None:
            oof = np.zeros((len(x),) + out_val.shape[1:], out_val.dtype)
        oof[val] = out_val
        tests.append(_predict(net, data))
    if not classes:
        return y, oof, np.mean(tests, axis=0)
    return y, _class_probabilities(oof), _geometric_pool(tests)


def crossfit_rows(data, seed, args):
    """K nets of the default preset, each validated on its own fold of train + validation
    (stratified for classes): every row trains K - 1 nets and validates one, so early stopping
    and the temperature see every row instead of one small validation split. Pooled as the
    ensemble is (geometric mean of the probabilities, the mean for regression); the temperature is
    fitted on the out-of-fold predictions."""
    from dnnguide.calibration import fit_temperature, temper

    yield "base", _predict(_fit("default", data, seed).model, data)
    y, oof, pooled = _crossfit(data, seed, args.members)
    if data.task == "regression":
        yield f"crossfit_x{args.members}", pooled
        return
    yield f"crossfit_x{args.members}", temper(pooled, fit_temperature(y, oof, significance=0.05))
    yield f"crossfit_x{args.members}_free_t", temper(pooled, fit_temperature(y, oof))
    yield f"crossfit_x{args.members}_no_t", pooled


def cv_dropout_rows(data, seed, args):
    """The cross-fitted nets (:func:`_crossfit`) without dropout and with each of ``--rates``;
    ``cv_dropout`` is the candidate whose out-of-fold predictions score best (RMSE, or NLL after
    the out-of-fold temperature): regularization chosen "if needed" by every row of train +
    validation instead of one small validation split."""
    import numpy as np

    from dnnguide.calibration import fit_temperature, negative_log_likelihood, temper

    yield "base", _predict(_fit("default", data, seed).model, data)
    scored = {}
    for rate in [0.0, *args.rates]:
        y, oof, pooled = _crossfit(data, seed, args.members, dropout_rate=rate)
        if data.task == "regression":
            score = float(np.sqrt(np.mean((oof.reshape(len(y), -1) - y.reshape(len(y), -1)) ** 2)))
        else:
            t = fit_temperature(y, oof, significance=0.05)
            score, pooled = negative_log_likelihood(y, temper(oof, t)), temper(pooled, t)
        scored[rate] = score, pooled
        print(f"{data.name} seed {seed}: dropout {rate:g}, out-of-fold score {score:.4g}",
              file=sys.stderr, flush=True)
        yield f"crossfit_x{args.members}_dropout_{rate:g}", pooled
    yield "cv_dropout", scored[min(scored, key=lambda rate: scored[rate][0])][1]


ABLATIONS = {"ema": ema_rows, "refit": refit_rows, "mc_rate": mc_rate_rows,
             "onecycle_peak": onecycle_peak_rows, "mc_pooling": mc_pooling_rows,
             "ensemble": ensemble_rows, "crossfit": crossfit_rows,
             "cv_dropout": cv_dropout_rows}


def write_rows(csv, rows):
    """Each row of ``rows`` (dicts, as they come) printed and the whole table rewritten to
    ``csv`` after it (a regression's rows have other columns), so every finished row is kept;
    an existing ``csv`` is refused before the first row is made. Returns the table (pandas)."""
    import pandas as pd

    csv = Path(csv)
    if csv.exists():
        raise SystemExit(f"{csv} exists: name another --csv (results are never overwritten).")
    table = []
    for row in rows:
        table.append(row)
        print(row, flush=True)
        pd.DataFrame(table).to_csv(csv, index=False)
    return pd.DataFrame(table)


def paired(frame):
    """Each variant against ``base`` by the harness's own pairing (``presets_vs_baselines.paired``:
    ``gain_base`` is the mean improvement per seed, accuracy up and NLL/ECE/RMSE down, ``se_base``
    its standard error, and a win / tie / loss verdict at 2 standard errors)."""
    import pandas as pd

    import presets_vs_baselines as harness

    frame = frame.rename(columns={"variant": "contender"})
    tables = [harness.paired(frame, variant, rivals=("base",)).assign(variant=variant)
              for variant in frame.contender.unique() if variant != "base"]
    return pd.concat(tables, ignore_index=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ablation", choices=tuple(ABLATIONS))
    parser.add_argument("--data", nargs="+", default=["breast_cancer", "digits", "diabetes"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--horizons", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.35, 0.5])
    parser.add_argument("--members", type=int, default=5, help="ensemble's nets")
    parser.add_argument("--preset", default="default",
                        help="onecycle_peak's preset, with overrides: 'default[depth=20]'")
    parser.add_argument("--csv", default="ablations.csv")
    args = parser.parse_args(argv)

    import numpy as np

    import presets_vs_baselines as harness

    def rows():
        for name in args.data:
            for seed in args.seeds:
                data = harness.load(name, seed)
                start = time.perf_counter()
                for variant, out in ABLATIONS[args.ablation](data, seed, args):
                    yield {"data": data.name, "variant": variant, "seed": seed,
                           **harness.score_or_nan(data, out),
                           "diverged": not np.all(np.isfinite(out)),
                           "time_s": round(time.perf_counter() - start, 1)}

    print(paired(write_rows(args.csv, rows())).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
