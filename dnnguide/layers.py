"""Dropout layers for Monte Carlo dropout (Gal & Ghahramani 2016), and model conversion.

The MC layers drop units in training, like ``Dropout``, and at inference only when MC
sampling is asked for explicitly: inside :func:`mc_sampling` (what
:func:`dnnguide.mc_predict` and :class:`dnnguide.MCDropoutPredictor` use). Elsewhere a
saved MC-dropout model predicts and evaluates deterministically (dropout off, the usual
weight-scaling approximation), so its reported accuracy is not one random draw.
Inside the context only dropout changes: every other layer (BatchNormalization included)
stays in inference mode and its statistics stay untouched. Calling the whole model with
``training=True`` is no substitute: it also switches BatchNormalization to batch
statistics and overwrites its moving mean and variance.

:func:`to_mc_dropout` turns a trained model's ``Dropout``/``AlphaDropout`` layers
into these layers (weights copied, nothing retrained); :func:`to_standard_dropout`
goes back. :class:`Calibration` is the last layer of a calibrated model
(:func:`dnnguide.calibrate`): temperature scaling, or the noise variance of a regression.

Example:
    >>> import numpy as np
    >>> layer = MCDropout(0.5, seed=0)
    >>> x = np.ones((1, 1000), "float32")
    >>> bool((np.asarray(layer(x)) == 0).any())  # off by default
    False
    >>> with mc_sampling():
    ...     bool((np.asarray(layer(x)) == 0).any())
    True

References:
    Gal & Ghahramani (2016), "Dropout as a Bayesian Approximation: Representing Model
    Uncertainty in Deep Learning", ICML.
"""

from __future__ import annotations

import contextlib
import itertools
import numbers
import threading
import warnings

import keras
import numpy as np
from keras import ops

from dnnguide.config import check_choice, check_pooling, check_range


def _check_rate(rate) -> float:
    if isinstance(rate, numbers.Real) and not isinstance(rate, bool):
        rate = float(rate)  # NumPy scalars (e.g. from a search space) are fine
    # rate=1 would scale the kept units by 1/(1-rate): every output would be inf or nan.
    check_range("rate", rate, 0.0, 1.0, high_inclusive=False)
    return rate


_MC = threading.local()


@contextlib.contextmanager
def mc_sampling(samples: int | None = None):
    """Switch the MC dropout layers on for the layer calls (and traces) made inside.

    Affects eager calls (``model(x)``) and functions *traced* inside the block; a model's
    ``predict`` reuses the function it compiled before, so for sampling use
    :func:`dnnguide.mc_predict`, which traces its own sampler inside this context.

    ``samples``: the calls inside run on ``samples`` tiled copies of a batch, sample-major
    (what :func:`dnnguide.mc_predict`'s sampler passes), so an ensemble's pool can give every
    member its share of each row's samples (:class:`EnsembleRouter`); None: rows are not tiled.

    Example:
        >>> model = keras.Sequential([keras.Input((64,)), MCDropout(0.5)])
        >>> x = np.ones((2, 64), "float32")
        >>> bool((np.asarray(model(x)) == 1).all())
        True
        >>> with mc_sampling():
        ...     bool((np.asarray(model(x)) == 0).any())
        True
    """
    if samples is not None:
        check_range("samples", samples, 1, integer=True)
    depth, tiling = getattr(_MC, "depth", 0), getattr(_MC, "samples", None)
    _MC.depth, _MC.samples = depth + 1, samples
    try:
        yield
    finally:
        _MC.depth, _MC.samples = depth, tiling


def mc_sampling_active() -> bool:
    """Whether the calling code runs inside :func:`mc_sampling`."""
    return getattr(_MC, "depth", 0) > 0


def mc_samples_tiled() -> int | None:
    """Inside :func:`mc_sampling` with ``samples``: how many tiled copies of the batch a call
    holds (sample-major); else None."""
    return getattr(_MC, "samples", None) if mc_sampling_active() else None


@keras.saving.register_keras_serializable(package="dnnguide")
class MCDropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` that also drops at inference inside :func:`mc_sampling`.

    Args:
        rate: fraction of the input units to drop, in [0, 1).
        noise_shape: shape of the binary mask, as in ``keras.layers.Dropout``.
        seed: seed of the layer's random generator (None: drawn from the global seed).
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Example:
        >>> import numpy as np
        >>> layer = MCDropout(0.5, seed=1)
        >>> x = np.ones((2, 64), "float32")
        >>> with mc_sampling():  # a new mask per call
        ...     bool((np.asarray(layer(x)) != np.asarray(layer(x))).any())
        True
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        rate = _check_rate(rate)
        super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)

    def call(self, inputs, training=None):
        # Read when called or traced: predict() passes training=False, the context says MC.
        return super().call(inputs, True if mc_sampling_active() else training)


@keras.saving.register_keras_serializable(package="dnnguide")
class MCAlphaDropout(keras.layers.AlphaDropout):
    """``keras.layers.AlphaDropout`` (keeps SELU's mean and variance), MC inside :func:`mc_sampling`.

    Args:
        rate: fraction of the input units to drop, in [0, 1).
        noise_shape: shape of the binary mask, as in ``keras.layers.AlphaDropout``.
        seed: seed of the layer's random generator (None: drawn from the global seed).
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Example:
        >>> import numpy as np
        >>> layer = MCAlphaDropout(0.2, seed=1)
        >>> x = np.ones((2, 64), "float32")
        >>> with mc_sampling():
        ...     bool((np.asarray(layer(x)) != 1.0).any())
        True

    References:
        Klambauer et al. (2017), "Self-Normalizing Neural Networks", NeurIPS.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        rate = _check_rate(rate)
        super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)

    def call(self, inputs, training=None):
        # Read when called or traced: predict() passes training=False, the context says MC.
        return super().call(inputs, True if mc_sampling_active() else training)


@keras.saving.register_keras_serializable(package="dnnguide")
class Calibration(keras.layers.Layer):
    """Last layer of a calibrated model: temperature scaling, or a regression's noise variance.

    Classification/binary: the class probabilities ``p`` become ``softmax(log(p) / T)``
    (for one sigmoid unit, ``sigmoid(logit(p) / T)``), which is temperature scaling of the
    logits (Guo et al. 2017), with ``T = temperature`` for plain prediction. ``T = 1``
    returns ``p`` bitwise unchanged. Inside :func:`mc_sampling` the samples pass through
    unchanged: :func:`dnnguide.mc_predict` pools them as ``mc_pooling`` says (the mean, or
    the normalized geometric mean) and applies ``mc_temperature`` to the pooled prediction
    (tempering the pooled prediction calibrated better than tempering each sample: on
    digits, ECE 0.035 vs 0.064). Regression: outputs pass through unchanged, and the
    noise variances (per output, in the output's units) are what
    :func:`dnnguide.mc_predict` adds to the spread of the samples. The values are fitted by
    :func:`dnnguide.calibrate` on a validation split and saved with the model.

    Args:
        task: ``"classification"``, ``"binary"`` or ``"regression"``.
        temperature: temperature of plain (deterministic) prediction, > 0.
        mc_temperature: temperature of the mean of the MC dropout samples, > 0.
        noise_variance: regression: per-output noise variance of plain prediction.
        mc_noise_variance: regression: per-output noise variance added to the MC spread.
        mc_pooling: classification: how :func:`dnnguide.mc_predict` pools the samples,
            ``"mean"`` or ``"geometric"`` (see :data:`dnnguide.uncertainty.POOLINGS`).

    Example:
        >>> layer = Calibration("classification", temperature=2.0)
        >>> np.round(np.asarray(layer(np.array([[0.8, 0.2]], "float32"))), 3)
        array([[0.667, 0.333]], dtype=float32)

    References:
        Guo et al. (2017), "On Calibration of Modern Neural Networks", ICML.
    """

    def __init__(self, task, temperature=1.0, mc_temperature=1.0, noise_variance=None,
                 mc_noise_variance=None, mc_pooling="mean", **kwargs):
        from dnnguide.config import TASKS

        super().__init__(**kwargs)
        check_choice("task", task, TASKS)
        self.task = task
        self.temperature = _check_temperature("temperature", temperature)
        self.mc_temperature = _check_temperature("mc_temperature", mc_temperature)
        self.noise_variance = _check_variance("noise_variance", noise_variance)
        self.mc_noise_variance = _check_variance("mc_noise_variance", mc_noise_variance)
        self.mc_pooling = check_pooling("mc_pooling", mc_pooling, task)

    def call(self, inputs):
        temperature = self.temperature
        if self.task == "regression" or temperature == 1.0 or mc_sampling_active():
            return inputs  # exactly the input
        p = ops.cast(inputs, "float32")
        tiny = float(np.finfo("float32").tiny)  # log(0) would give inf - inf = nan below
        if self.task == "binary":
            logit = ops.log(ops.clip(p, tiny, 1.0)) - ops.log(ops.clip(1.0 - p, tiny, 1.0))
            out = ops.sigmoid(logit / temperature)
        else:
            out = ops.softmax(ops.log(ops.clip(p, tiny, 1.0)) / temperature, axis=-1)
        return ops.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "task": self.task, "temperature": self.temperature,
                "mc_temperature": self.mc_temperature, "noise_variance": self.noise_variance,
                "mc_noise_variance": self.mc_noise_variance, "mc_pooling": self.mc_pooling}


def _members_drawn(rows, members: int, seed_generator):
    """Which member each row of an MC call comes from (int32, one per row).

    On ``n`` tiled copies of a batch (:func:`mc_samples_tiled`), each row starts at a random
    member and its successive samples take the next ones in turn: every member gives a row
    ``n / members`` of its samples (when ``n`` is a multiple; else one more or one fewer), and
    the members' mix is the same in every row. Drawing each sample's member independently left
    each of 5 members drawn 20 ± 4 times in a row's 100 samples, a noisier mean than the
    members' pool. Without tiling: one uniform draw per row.
    """
    n = mc_samples_tiled() or 1
    batch = ops.maximum(rows // n, 1)  # rows of the batch; sample j is rows j*batch...
    start = keras.random.randint((batch,), 0, members, seed=seed_generator)
    row = ops.arange(rows)
    return ops.cast((row // batch + ops.take(start, row % batch)) % members, "int32")


def _rows_of(pick, member: int):
    """The row indices ``pick`` assigns to ``member``, shape ``(m,)``."""
    return ops.reshape(ops.nonzero(ops.equal(pick, member))[0], (-1,))


@keras.saving.register_keras_serializable(package="dnnguide")
class EnsembleRouter(keras.layers.Layer):
    """Draws which member each row comes from under MC sampling (:func:`_members_drawn`).

    Its output (int32, one per row; zeros outside MC sampling) feeds an :class:`EnsembleSelect`
    before each member and the :class:`EnsemblePool` after them, so under MC sampling each
    member computes only the rows it was drawn for: a 5-member ensemble's MC prediction costs
    one net's (plus the gathers), not five.
    """

    def __init__(self, members, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_range("members", members, 1, integer=True)
        self.members, self.seed = int(members), seed
        # seeded per call by the MC sampler, like the MC dropout layers' generators
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x):
        rows = ops.shape(x)[0]
        if not mc_sampling_active() or self.members == 1:
            return ops.zeros((rows,), "int32")
        return _members_drawn(rows, self.members, self.seed_generator)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "members": self.members, "seed": self.seed}


@keras.saving.register_keras_serializable(package="dnnguide")
class EnsembleSelect(keras.layers.Layer):
    """``[x, pick]`` -> the rows of ``x`` that :class:`EnsembleRouter` drew for ``member``
    under MC sampling; all of ``x`` otherwise."""

    def __init__(self, member, **kwargs):
        super().__init__(**kwargs)
        check_range("member", member, 0, integer=True)
        self.member = int(member)

    def call(self, inputs):
        x, pick = inputs
        if not mc_sampling_active():
            return x
        return ops.take(x, _rows_of(pick, self.member), axis=0)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "member": self.member}


@keras.saving.register_keras_serializable(package="dnnguide")
class EnsemblePool(keras.layers.Layer):
    """Pools the predictions of an ensemble's members into one (:mod:`dnnguide.ensemble`).

    Prediction: classes get the normalized geometric mean of the members' probabilities,
    ``softmax(mean_k log p_k)`` (binary: the sigmoid of the mean log-odds), the rule
    :func:`dnnguide.calibrate` pools MC dropout samples by; its NLL is never above the members'
    mean NLL (the normalizer is at most 1 by the AM-GM inequality). Regression gets the mean,
    in the members' (original) units.

    MC sampling (:func:`mc_sampling`): each row of each sample is one member's sample, so the
    samples are draws from the ensemble's predictive mixture; under :func:`dnnguide.mc_predict`
    the draws are stratified, every member giving each row its share of the samples
    (:func:`_members_drawn`). Their spread then holds the members' disagreement as well as each
    member's dropout noise; pooling all members inside every sample would average that
    disagreement away (diabetes, 5 members: the 90% interval covered 0.82 of test targets,
    against 0.89 for one net). Pooled over many samples (:func:`dnnguide.mc_predict`), the mean
    or geometric mean is again the members' pool.

    ``routed=True`` (what :func:`dnnguide.ensemble.pool_models` builds): the last input is an
    :class:`EnsembleRouter`'s draw and each member computed only its drawn rows, which the pool
    puts back in place. ``routed=False`` (ensembles saved before routing): every member computed
    every row and the pool keeps the drawn one's.

    Example:
        >>> pool = EnsemblePool("classification")
        >>> p = [np.array([[0.9, 0.1]], "float32"), np.array([[0.5, 0.5]], "float32")]
        >>> np.round(np.asarray(pool(p)), 3)
        array([[0.75, 0.25]], dtype=float32)
    """

    def __init__(self, task, seed=None, routed=False, **kwargs):
        from dnnguide.config import TASKS

        super().__init__(**kwargs)
        check_choice("task", task, TASKS)
        self.task, self.seed, self.routed = task, seed, bool(routed)
        # seeded per call by the MC sampler, like the MC dropout layers' generators
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        inputs = list(inputs)
        pick = inputs.pop() if self.routed else None
        if mc_sampling_active() and len(inputs) > 1:
            if pick is not None:  # each member's rows back in their places
                out = ops.zeros((ops.shape(pick)[0],) + tuple(inputs[0].shape[1:]), "float32")
                for k, y in enumerate(inputs):
                    out = ops.scatter_update(out, ops.expand_dims(_rows_of(pick, k), -1),
                                             ops.cast(y, "float32"))
                return out
            stacked = ops.stack([ops.cast(x, "float32") for x in inputs], axis=0)
            drawn = _members_drawn(ops.shape(stacked)[1], len(inputs), self.seed_generator)
            weights = ops.cast(ops.transpose(ops.one_hot(drawn, len(inputs))), "float32")
            for _ in range(len(stacked.shape) - 2):  # (members, rows, 1...): one per output
                weights = ops.expand_dims(weights, -1)
            return ops.sum(stacked * weights, axis=0)
        stacked = ops.stack([ops.cast(x, "float32") for x in inputs], axis=0)
        if self.task == "regression":
            return ops.mean(stacked, axis=0)
        tiny = float(np.finfo("float32").tiny)
        log_p = ops.log(ops.clip(stacked, tiny, 1.0))
        if self.task == "binary":
            log_p = log_p - ops.log(ops.clip(1.0 - stacked, tiny, 1.0))
            return ops.sigmoid(ops.mean(log_p, axis=0))
        return ops.softmax(ops.mean(log_p, axis=0), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "task": self.task, "seed": self.seed,
                "routed": self.routed}


def _check_temperature(name, value) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, float) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"Argument `{name}` must be a positive finite number. "
                         f"Received: {name}={value!r}")
    return value


def _check_variance(name, value):
    if value is None:
        return None
    values = np.atleast_1d(np.asarray(value, "float64"))
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"Argument `{name}` must be a list of non-negative finite numbers "
                         f"(one per output). Received: {name}={value!r}")
    return [float(v) for v in values]


# Exact classes only: a Dropout subclass (SpatialDropout1D, a user's own) has its own semantics.
_TO_MC = {keras.layers.Dropout: MCDropout, keras.layers.AlphaDropout: MCAlphaDropout}
_TO_STANDARD = {mc: standard for standard, mc in _TO_MC.items()}
# Train-only noise these conversions leave alone (and therefore off at inference).
_OTHER_NOISE = (
    keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout, keras.layers.GaussianNoise,
)


def to_mc_dropout(model: keras.Model, *, seed: int | None = None) -> keras.Model:
    """Copy of ``model`` whose ``Dropout``/``AlphaDropout`` layers are MC (always-on) layers.

    Every other layer keeps its class and config (names included), the trained weights
    are copied (BatchNormalization's moving statistics too), and ``model`` itself is
    not modified. MC layers already in ``model`` stay MC, so a converted model converts
    to an equivalent one. A compiled model's compile settings are reapplied (with a
    fresh optimizer state). Nested Sequential/functional models are converted too.

    Args:
        model: a built Sequential or functional ``keras.Model``.
        seed: if given, the MC layers get seeds ``seed, seed + 1, ...`` in layer order
            (reproducible masks); by default each keeps its original layer's seed.

    Returns:
        A new ``keras.Model``.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
        ...                           keras.layers.Dropout(0.5), keras.layers.Dense(2)])
        >>> [type(layer).__name__ for layer in to_mc_dropout(model).layers]
        ['Dense', 'MCDropout', 'Dense']

    References:
        Gal & Ghahramani (2016): MC dropout needs no retraining, only dropout at test time.
    """
    return _convert(model, _TO_MC, seed=seed, keep=(MCDropout, MCAlphaDropout))


def to_standard_dropout(model: keras.Model) -> keras.Model:
    """Copy of ``model`` whose MC dropout layers are plain ``Dropout``/``AlphaDropout``.

    The result predicts deterministically (dropout off at inference, i.e. the usual
    weight-scaling approximation); everything else is as in :func:`to_mc_dropout`.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), MCDropout(0.5), keras.layers.Dense(2)])
        >>> [type(layer).__name__ for layer in to_standard_dropout(model).layers]
        ['Dropout', 'Dense']
    """
    return _convert(model, _TO_STANDARD, seed=None, keep=())


def has_dropout(model: keras.Model, kinds=("standard", "mc")) -> bool:
    """Whether ``model`` (nested models included) holds dropout layers of the given kinds.

    ``"standard"``: ``Dropout``/``AlphaDropout``;
    ``"mc"``: :class:`MCDropout`/:class:`MCAlphaDropout`.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), MCDropout(0.5), keras.layers.Dense(2)])
        >>> has_dropout(model, kinds=("mc",)), has_dropout(model, kinds=("standard",))
        (True, False)
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    for kind in kinds:
        check_choice("kinds", kind, ("standard", "mc"))
    classes = []
    if "standard" in kinds:
        classes += list(_TO_MC)
    if "mc" in kinds:
        classes += list(_TO_STANDARD)
    return any(type(layer) in classes for layer in _all_layers(model))


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _convert(model, mapping, *, seed, keep):
    # Functional lives in keras.src only; clone_model itself dispatches on the same classes.
    from keras.src.models.functional import Functional

    if not isinstance(model, (keras.Sequential, Functional)):
        raise TypeError(
            "Argument `model` must be a Sequential or functional keras.Model (a subclassed "
            "model has no layer graph to rebuild). "
            f"Received: model={type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "Argument `model` must be built (give it an Input or call it once) so its weights "
            f"can be copied. Received: model={model.name!r} (not built)"
        )
    others = sorted({type(layer).__name__ for layer in _all_layers(model)
                     if isinstance(layer, _OTHER_NOISE)})
    if others and mapping is _TO_MC:
        warnings.warn(
            f"Layers {others} are not dropout layers MC conversion handles; they stay off at "
            "inference, so the MC samples ignore them.",
            stacklevel=3,
        )
    counter = itertools.count()

    def clone_layer(layer):
        config = layer.get_config()
        target = mapping.get(type(layer))
        if target is None and isinstance(layer, keep):
            target = type(layer)
        if target is None:
            return type(layer).from_config(config)
        if seed is not None:
            config["seed"] = seed + next(counter)
        return target.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    copy_weights(model, clone)
    _copy_dnnguide_attributes(model, clone, standard=mapping is _TO_STANDARD)
    if getattr(model, "compiled", False):
        try:
            clone.compile_from_config(model.get_compile_config())
        except Exception as exc:  # noqa: BLE001 - the conversion is still usable for predict()
            warnings.warn(
                f"The converted model could not be compiled like the original ({exc!r}); "
                "compile it yourself before fit()/evaluate().",
                stacklevel=3,
            )
    return clone


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every weight of ``source`` into ``target`` (same architecture), state included."""
    target.set_weights(source.get_weights())
    for layer in _all_layers(target):
        # set_weights only assigns variables: an adapted Normalization layer keeps the mean and
        # variance tensors it derived when built (zeros/ones) until finalize_state() refreshes
        # them, which load_model does and set_weights does not. Without this the copy would
        # silently skip the input standardization.
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()


def _copy_dnnguide_attributes(model, clone, *, standard: bool) -> None:
    """Keep what build_model attached (config, task), with the dropout kind the copy now has."""
    import dataclasses

    if hasattr(model, "dnnguide_task"):
        clone.dnnguide_task = model.dnnguide_task
    config = getattr(model, "dnnguide_config", None)
    if config is None:
        return
    reg = config.regularization
    if standard:
        kind = {"mc": "standard", "mc_alpha": "alpha"}.get(reg.dropout_kind, reg.dropout_kind)
    else:
        kind = {"standard": "mc", "alpha": "mc_alpha"}.get(reg.dropout_kind, reg.dropout_kind)
    clone.dnnguide_config = dataclasses.replace(
        config, regularization=dataclasses.replace(reg, dropout_kind=kind))
