"""A read-only view of a Keras model for the audit: its layers, who feeds whom, what each computes.

Functional models are read from their graph (every layer's inbound nodes, restricted to the
model's own nodes so a layer shared with another model is not confused); a Sequential model is
a chain by definition; a subclassed model has no graph, so its layers are taken as a chain in
the order they were assigned (``assumed_order`` tells the rules so). Nested models are
flattened: their layers become part of the graph, joined at the nested model's inputs/outputs.
Nothing here calls the model or reads a weight value: the whole view costs milliseconds.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.Activation("tanh"), keras.layers.Dense(2)])
    >>> view = ModelView(model)
    >>> [view.activation(layer) for layer in view.kernel_layers]
    ['tanh', 'linear']
"""

from __future__ import annotations

import keras

# Keras exposes its functional graph only through these names; pinned by keras<4 in pyproject and
# exercised by every functional-model test of the audit (a rename fails them, not users silently).
from keras.src.ops.function import make_node_key

_NORMALIZATION = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                  keras.layers.GroupNormalization)
_DROPOUT = (keras.layers.Dropout, keras.layers.AlphaDropout, keras.layers.GaussianDropout,
            keras.layers.GaussianNoise, keras.layers.SpatialDropout1D,
            keras.layers.SpatialDropout2D, keras.layers.SpatialDropout3D)
# Layers an activation may sit behind and still belong to the layer before them
# (Dense -> BatchNormalization -> Activation is one "Dense with that activation").
_PASS_THROUGH = _NORMALIZATION + _DROPOUT + (
    keras.layers.Flatten, keras.layers.Reshape, keras.layers.InputLayer,
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D)


def activation_name(fn) -> str:
    """The name of an activation function (``None`` and identity are ``'linear'``)."""
    if fn is None:
        return "linear"
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return {"silu": "swish", "hard_swish": "hard_silu"}.get(name, name).lower()


def layer_activation(layer) -> str | None:
    """What an activation layer computes, or ``None`` for a layer that is not one."""
    if isinstance(layer, keras.layers.ReLU):
        return "leaky_relu" if float(layer.negative_slope or 0.0) > 0 else "relu"
    if isinstance(layer, (keras.layers.LeakyReLU, keras.layers.PReLU)):
        return "leaky_relu"
    if isinstance(layer, keras.layers.ELU):
        return "elu"
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if isinstance(layer, keras.layers.Activation):
        return activation_name(layer.activation)
    return None


def kernel_initializer(layer):
    """The initializer of a layer's main weights (a depthwise conv's depthwise kernel)."""
    for attribute in ("kernel_initializer", "depthwise_initializer"):
        init = getattr(layer, attribute, None)
        if init is not None:
            return init
    return None


def initializer_family(init) -> str:
    """``'he'``, ``'lecun'``, ``'glorot'``, ``'fixed'`` (std ignores the fan-in) or ``'other'``."""
    if isinstance(init, keras.initializers.VarianceScaling):
        if abs(init.scale - 2.0) < 1e-6:  # He's fan_out variant keeps the backward variance
            return "he"
        if abs(init.scale - 1.0) < 1e-6 and init.mode == "fan_in":
            return "lecun"
        if abs(init.scale - 1.0) < 1e-6 and init.mode == "fan_avg":
            return "glorot"
        return "other"
    if isinstance(init, (keras.initializers.RandomNormal, keras.initializers.RandomUniform,
                         keras.initializers.TruncatedNormal)):
        return "fixed"
    return "other"


def initializer_name(init) -> str:
    """A short name for messages: ``'he_normal'``, ``'RandomNormal(mean=0.0, stddev=0.05)'``..."""
    cls = type(init).__name__
    if type(init).__module__.startswith("keras") and cls != "VarianceScaling" \
            and isinstance(init, keras.initializers.VarianceScaling):
        return "".join("_" + c.lower() if c.isupper() else c for c in cls).lstrip("_")
    try:
        config = init.get_config()
    except Exception:  # noqa: BLE001 - a user's initializer without get_config still gets a name
        return cls
    args = ", ".join(f"{k}={v}" for k, v in config.items() if k != "seed" and v is not None)
    return f"{cls}({args})"


class ModelView:
    """Flattened layers of ``model`` with successors/predecessors and effective activations."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.layers: list = []
        self._succ: dict[int, list] = {}
        self._pred: dict[int, list] = {}
        self.assumed_order = False
        _, self.output_layers = self._add(model)

    # ------------------------------------------------------------------ graph building
    def _edge(self, sources, targets) -> None:
        for source in sources:
            for target in targets:
                self._succ.setdefault(id(source), []).append(target)
                self._pred.setdefault(id(target), []).append(source)

    def _add(self, op):
        """Add ``op`` (a layer or a nested model); return its (entry, exit) leaf layers."""
        if not isinstance(op, keras.Model):
            self.layers.append(op)
            return [op], [op]
        if isinstance(op, keras.Sequential) or not hasattr(op, "_nodes"):
            if not isinstance(op, keras.Sequential):
                self.assumed_order = True  # subclassed: assignment order stands in for calls
            entries = exits = None
            for child in op.layers:
                child_in, child_out = self._add(child)
                if exits is not None:
                    self._edge(exits, child_in)
                entries = child_in if entries is None else entries
                exits = child_out
            return entries or [], exits or []
        ends = {id(child): self._add(child) for child in op.operations}
        for child in op.operations:
            for index, node in enumerate(child._inbound_nodes):
                if make_node_key(child, index) not in op._nodes:
                    continue  # a call of a shared layer in another model
                for tensor in node.input_tensors:
                    source = tensor._keras_history.operation
                    if id(source) in ends:
                        self._edge(ends[id(source)][1], ends[id(child)][0])
        entries = [layer for t in op.inputs for layer in ends[id(t._keras_history.operation)][0]]
        exits = [layer for t in op.outputs for layer in ends[id(t._keras_history.operation)][1]]
        return entries, exits

    # ------------------------------------------------------------------ queries
    def successors(self, layer) -> list:
        return self._succ.get(id(layer), [])

    def predecessors(self, layer) -> list:
        return self._pred.get(id(layer), [])

    @property
    def kernel_layers(self) -> list:
        """Layers with a kernel to initialize (Dense, Conv, EinsumDense, depthwise convs...)."""
        return [layer for layer in self.layers if kernel_initializer(layer) is not None]

    def of_type(self, classes) -> list:
        return [layer for layer in self.layers if isinstance(layer, classes)]

    def activation(self, layer) -> str:
        """What follows ``layer`` before the next weighted layer: its own activation, or the first
        activation layer behind pass-through layers (batch norm, dropout, reshapes)."""
        own = activation_name(getattr(layer, "activation", None))
        if own != "linear":
            return own
        current = layer
        while len(self.successors(current)) == 1:
            current = self.successors(current)[0]
            found = layer_activation(current)
            if found is not None:
                return found
            if not isinstance(current, _PASS_THROUGH):
                break
        return "linear"

    def output_head(self, exit_layer):
        """(the weighted layer that makes an output, its activation, layers after it)."""
        trail, current = [], exit_layer
        while True:
            if kernel_initializer(current) is not None:
                own = activation_name(getattr(current, "activation", None))
                # trail runs backwards from the output: its first activation is applied last
                after = [layer_activation(t) for t in trail if layer_activation(t)]
                return current, (after[0] if after else own), trail[::-1]
            preds = self.predecessors(current)
            if len(preds) != 1:
                return None, None, trail[::-1]
            trail.append(current)
            current = preds[0]

    def is_branching(self) -> list:
        """Layers that merge several inputs (residual Add, Concatenate...): not a plain stack."""
        return [layer for layer in self.layers if len(self.predecessors(layer)) > 1]
