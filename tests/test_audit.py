"""``dnnguide.audit``: one bad model per rule is flagged with its fix; the guidelines' own models
are clean; any Keras model (functional, Sequential, subclassed, keras.applications) is read;
build_model/fit run the audit; the CLI's exit codes."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

import dnnguide
from dnnguide import guidelines
from dnnguide.auditing import AuditError, AuditWarning, audit
from dnnguide.auditing.rules import LOCAL_REASONS, REASON_KEYS, reason
from dnnguide.cli import main
from dnnguide.presets import build_model

L = keras.layers


def stack(*layers, n_in=8, loss=None, optimizer="sgd", name="bad"):
    model = keras.Sequential([keras.Input((n_in,)), *layers], name=name)
    if loss is not None:
        model.compile(optimizer, loss)
    return model


def only(report, rule):
    """The one finding of ``rule`` (and fail if there are several or none)."""
    found = [f for f in report.items if f.rule == rule]
    assert len(found) == 1, (rule, report.rules)
    return found[0]


# --------------------------------------------------------------------------- one model per rule
@pytest.mark.parametrize("activation, init, expected, severity", [
    ("relu", "lecun_normal", "he_normal", "warning"),
    ("elu", "glorot_uniform", "he_normal", "warning"),
    ("swish", "glorot_normal", "he_normal", "warning"),
    ("gelu", "lecun_uniform", "he_normal", "warning"),
    ("tanh", "he_normal", "glorot_uniform", "warning"),
    ("sigmoid", "he_uniform", "glorot_uniform", "warning"),
    ("selu", "he_normal", "lecun_normal", "error"),
])
def test_initializer_not_matched_to_activation(activation, init, expected, severity):
    model = stack(L.Dense(16, activation, kernel_initializer=init, name="h1"),
                  L.Dense(16, activation, kernel_initializer=expected, name="h2"), L.Dense(1))
    finding = only(audit(model), "initializer")
    assert finding.layers == ("h1",) and finding.severity == severity
    assert finding.fix == {"kernel_initializer": expected}
    assert init in finding.reason and expected in finding.code


def test_initializer_follows_activation_layers_behind_batch_norm():
    # Dense(linear) -> BN -> LeakyReLU is a LeakyReLU layer: He, not Keras' default Glorot.
    model = stack(L.Dense(16, name="h1"), L.BatchNormalization(), L.LeakyReLU(0.2),
                  L.Dense(3, name="h2"), L.Activation("softmax"))
    finding = only(audit(model), "initializer")
    assert finding.layers == ("h1",) and finding.fix == {"kernel_initializer": "he_normal"}
    assert reason("init.he") in finding.reason  # the table's text, not a copy


def test_fixed_std_initializer_is_flagged_with_its_reason():
    model = stack(L.Dense(16, "relu", kernel_initializer=keras.initializers.RandomNormal(0, 1.0),
                          name="h1"), L.Dense(1))
    finding = only(audit(model), "initializer")
    assert "RandomNormal" in finding.reason and reason("init.fixed") in finding.reason


def selu(name="h1", **kw):
    return L.Dense(16, "selu", kernel_initializer="lecun_normal", name=name, **kw)


@pytest.mark.parametrize("bad, rule, fix", [
    (L.BatchNormalization(name="bn"), "selu_batch_norm", {"normalization": "none"}),
    (L.Dropout(0.2, name="drop"), "selu_standard_dropout", {"dropout_kind": "alpha"}),
    (dnnguide.MCDropout(0.2, name="drop"), "selu_standard_dropout", {"dropout_kind": "mc_alpha"}),
])
def test_selu_with_batch_norm_or_standard_dropout(bad, rule, fix):
    report = audit(stack(selu(), bad, selu("h2"), L.Dense(1)))
    finding = only(report, rule)
    assert finding.severity == "error" and finding.layers == (bad.name,) and finding.fix == fix
    assert not report.ok


@pytest.mark.parametrize("penalty", [
    {"kernel_regularizer": keras.regularizers.L1(1e-4)},
    {"kernel_regularizer": keras.regularizers.L2(1e-4)},
    {"kernel_constraint": keras.constraints.MaxNorm(1.0)},
])
def test_selu_with_weight_penalties(penalty):
    finding = only(audit(stack(selu(**penalty), selu("h2"), L.Dense(1))), "selu_weight_penalty")
    assert finding.layers == ("h1",) and finding.severity == "error"
    assert finding.fix == {"l1": 0.0, "l2": 0.0, "max_norm": None}
    assert reason("selu.regularization") in finding.reason


def test_selu_in_a_residual_stack():
    inputs = keras.Input((16,))
    x = selu("h2")(selu("h1")(inputs))
    x = L.Add(name="skip")([inputs, x])
    report = audit(keras.Model(inputs, L.Dense(1)(x)))
    finding = only(report, "selu_not_sequential")
    assert finding.layers == ("skip",) and finding.fix == {"architecture": "sequential"}
    # The same net with Swish + He is allowed to branch.
    assert "selu_not_sequential" not in audit(dnnguide.build_model(
        "default", (16,), 3, depth=4, architecture="residual")).rules


@pytest.mark.parametrize("depth, norm, flagged", [(10, False, True), (9, False, False),
                                                   (10, True, False)])
def test_deep_sigmoid_stack_without_normalization(depth, norm, flagged):
    layers = []
    for i in range(depth):
        layers.append(L.Dense(8, "sigmoid", name=f"h{i}"))
        if norm:
            layers.append(L.BatchNormalization())
    report = audit(stack(*layers, L.Dense(1)))
    assert ("deep_saturating_stack" in report.rules) == flagged
    if flagged:
        finding = only(report, "deep_saturating_stack")
        assert len(finding.layers) == guidelines.DEEP_FROM
        assert finding.fix["normalization"] == "batch_norm_after"
        assert reason("deep.normalization") in finding.reason


def test_batch_norm_after_the_activation_cannot_be_folded_for_low_latency():
    after = stack(L.Dense(16, "relu", kernel_initializer="he_normal"),
                  L.BatchNormalization(name="bn_after"), L.Dense(1))
    finding = only(audit(after, low_latency=True), "bn_not_foldable")
    assert finding.layers == ("bn_after",) and finding.fix == {"normalization": "batch_norm_before"}
    assert "bn_not_foldable" not in audit(after).rules  # only when low latency is asked
    before = stack(L.Dense(16, kernel_initializer="he_normal"), L.BatchNormalization(),
                   L.ReLU(), L.Dense(1))
    assert audit(before, low_latency=True).items == []


def test_adamw_with_l2_regularizers():
    layers = [L.Dense(16, "relu", kernel_initializer="he_normal", name="h1",
                      kernel_regularizer=keras.regularizers.L2(1e-3)), L.Dense(1)]
    report = audit(stack(*layers, loss="mse", optimizer=keras.optimizers.AdamW()))
    finding = only(report, "adamw_with_l2")
    assert finding.severity == "error" and finding.layers == ("h1",)
    assert finding.fix["l2"] == 0.0 and finding.fix["weight_decay"] > 0
    layers = [L.Dense(16, "relu", kernel_initializer="he_normal",
                      kernel_regularizer=keras.regularizers.L2(1e-3)), L.Dense(1)]
    assert audit(stack(*layers, loss="mse", optimizer="adam")).items == []


def test_lr_schedule_with_reduce_lr_on_plateau():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.5)
    model = stack(L.Dense(1), loss="mse", optimizer=keras.optimizers.SGD(schedule))
    finding = only(audit(model, callbacks=[keras.callbacks.ReduceLROnPlateau()]),
                   "schedule_with_plateau")
    assert finding.severity == "error" and "ExponentialDecay" in finding.reason
    assert finding.fix == {"schedule": "performance"}
    plain = stack(L.Dense(1), loss="mse", optimizer="sgd")
    assert audit(plain, callbacks=[keras.callbacks.ReduceLROnPlateau()]).items == []


def test_no_early_stopping_and_no_schedule():
    model = stack(L.Dense(1), loss="mse")
    finding = only(audit(model, callbacks=[]), "no_stopping_no_schedule")
    assert finding.severity == "warning" and finding.fix["early_stopping.enabled"] is True
    assert finding.fix["schedule"] == guidelines.DEFAULT_TABLE["schedule"][0].name
    assert audit(model).items == []  # callbacks unknown: not judged
    assert audit(model, callbacks=[keras.callbacks.EarlyStopping()]).items == []


def test_unstandardized_inputs_from_a_data_sample():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 8)).astype("float32")
    model = stack(L.Dense(1), loss="mse")
    finding = only(audit(model, z * 100 + 50), "inputs_not_standardized")
    assert finding.fix == {"standardize_inputs": True} and "max |mean|" in finding.reason
    assert audit(model, z).items == []
    norm = L.Normalization()
    norm.adapt(z * 100 + 50)
    assert audit(stack(norm, L.Dense(1)), z * 100 + 50).items == []
    # A Rescaling layer first counts with its scale: x / 100 is standardized here.
    assert audit(stack(L.Rescaling(0.01), L.Dense(1)), z * 100).items == []
    tokens = np.random.default_rng(0).integers(0, 100, (50, 8))  # ids are looked up, not scaled
    assert audit(stack(L.Embedding(100, 4), L.Flatten(), L.Dense(1)), tokens).items == []


def test_unstandardized_regression_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype("float32")
    y = (rng.normal(size=300) * 1e3 + 5e3).astype("float32")
    model = stack(L.Dense(1, name="out"), loss="mse")
    finding = only(audit(model, (x, y)), "target_not_standardized")
    assert finding.layers == ("out",) and "mean 4.93e+03 and std 955" in finding.reason
    # A final rescaling layer de-standardizes: the model was trained on a standardized target.
    rescaled = stack(L.Dense(1), L.Rescaling(1e3, offset=5e3), loss="mse")
    assert audit(rescaled, (x, y)).items == []
    assert audit(model, (x, (y - y.mean()) / y.std())).items == []
    # dnnguide's regression presets end with TargetScale and a standardized loss.
    from dnnguide.targets import target_statistics

    preset = dnnguide.build_model("default", (8,), 1, "regression",
                                  target_stats=target_statistics(y))
    assert [f.rule for f in audit(preset, (x, y)).items] == []


@pytest.mark.parametrize("units, activation, loss", [
    (3, "softmax", "binary_crossentropy"),
    (3, "sigmoid", "sparse_categorical_crossentropy"),
    (3, None, "sparse_categorical_crossentropy"),
    (3, None, keras.losses.CategoricalCrossentropy()),
    (3, "softmax", keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    (1, "softmax", "binary_crossentropy"),
])
def test_output_activation_and_loss_mismatch(units, activation, loss):
    model = stack(L.Dense(units, activation, name="out"), loss=loss)
    finding = only(audit(model), "output_loss")
    assert finding.severity == "error" and finding.layers == ("out",) and finding.code


@pytest.mark.parametrize("units, activation, loss", [
    (3, "softmax", "sparse_categorical_crossentropy"),
    (3, None, keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    (1, "sigmoid", "binary_crossentropy"),
    (4, "sigmoid", "binary_crossentropy"),  # multi-label
    (1, None, keras.losses.BinaryCrossentropy(from_logits=True)),
])
def test_matching_output_and_loss_pass(units, activation, loss):
    assert audit(stack(L.Dense(units, activation), loss=loss)).items == []


def test_softmax_as_a_separate_layer_is_read():
    model = stack(L.Dense(3, name="logits"), L.Activation("softmax"), loss="binary_crossentropy")
    assert only(audit(model), "output_loss").layers == ("logits",)


def test_dropout_on_the_output():
    model = stack(L.Dense(3, "softmax"), L.Dropout(0.3, name="late"),
                  loss="sparse_categorical_crossentropy")
    finding = only(audit(model), "dropout_on_output")
    assert finding.layers == ("late",) and finding.severity == "error"


def test_mc_dropout_asked_for_without_dropout():
    model = stack(L.Dense(16, "relu", kernel_initializer="he_normal"), L.Dense(1))
    finding = only(audit(model, mc_dropout=True), "mc_dropout_without_dropout")
    assert finding.fix["dropout_kind"] == "mc" and finding.fix["dropout_rate"] > 0
    assert reason("mc_dropout") in finding.reason
    with_dropout = stack(L.Dense(16, "relu", kernel_initializer="he_normal"), L.Dropout(0.2),
                         L.Dense(1))
    assert audit(with_dropout, mc_dropout=True).items == []


# --------------------------------------------------------------------------- the guidelines' own models
@pytest.mark.parametrize("preset", dnnguide.list_presets())
@pytest.mark.parametrize("depth", [3, 12])
def test_every_preset_audits_clean(preset, depth):
    for task, n_outputs in (("classification", 4), ("binary", 1), ("regression", 2)):
        model = build_model(preset, (8,), n_outputs, task, depth=depth, width=8)
        report = audit(model)
        assert report.items == [], str(report)


SITUATIONS = [
    {"depth": "shallow"}, {"depth": "deep"}, {"self_normalizing": True},
    {"self_normalizing": True, "depth": "deep", "risk_sensitive": True}, {"sparse": True},
    {"sparse": True, "depth": "deep"}, {"low_latency": True}, {"risk_sensitive": True},
    {"risk_sensitive": True, "depth": "deep"}, {"overfitting": True},
    {"self_normalizing": True, "overfitting": True}, {"low_latency": True, "sparse": True},
]


@pytest.mark.parametrize("situation", SITUATIONS,
                         ids=lambda s: "+".join(f"{k}={v}" for k, v in s.items()))
def test_every_recommendation_audits_clean(situation):
    config = dnnguide.recommend(**situation, width=8).config
    report = audit(build_model(config, (8,), 3))
    assert report.items == [], str(report)


def test_every_reason_comes_from_the_guideline_tables():
    texts = {row[1] for row in guidelines.DEFAULT_TABLE.values()}
    texts |= {row[1] for row in guidelines.SELF_NORMALIZING_TABLE.values()}
    texts |= set(guidelines.COMMON_TABLE.values())
    texts |= {text for rows in guidelines.EXCEPTIONS_TABLE.values() for text in rows.values()}
    for key in REASON_KEYS:
        assert reason(key) in texts, key
    assert not set(LOCAL_REASONS) & set(REASON_KEYS)


# --------------------------------------------------------------------------- any Keras model
@pytest.mark.parametrize("name, kwargs", [("MobileNetV3Small", {}),
                                          ("MobileNetV2", {"alpha": 0.35})])
def test_keras_applications_audit(name, kwargs):
    model = getattr(keras.applications, name)(input_shape=(32, 32, 3), weights=None,
                                              classes=10, **kwargs)
    model.compile("adam", "sparse_categorical_crossentropy")
    report = audit(model, np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)))
    assert report.ok
    relu = [f for f in report.items if f.rule == "initializer" and f.reason.startswith("relu")]
    # Keras builds these ReLU convs with its default Glorot init: the guideline says He.
    assert relu and relu[0].fix == {"kernel_initializer": "he_normal"} and len(relu[0].layers) > 5
    assert str(report).startswith(f"Audit of model {model.name!r}")


def test_subclassed_model_is_read_as_a_stack():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.hidden = L.Dense(16, "relu", kernel_initializer="lecun_normal")
            self.out = L.Dense(3, "softmax")

        def call(self, x):
            return self.out(self.hidden(x))

    net = Net()
    net.compile("adam", "binary_crossentropy")
    report = audit(net)
    assert set(report.rules) == {"output_loss", "initializer", "layer_order_assumed"}
    # An unbuilt Sequential (no Input) is a stack by definition: nothing assumed.
    unbuilt = keras.Sequential([L.Dense(16, "relu", kernel_initializer="lecun_normal"),
                                L.Dense(3, "softmax")])
    unbuilt.compile("adam", "binary_crossentropy")
    assert set(audit(unbuilt).rules) == {"output_loss", "initializer"}


def test_nested_sequential_inside_a_functional_model():
    inner = keras.Sequential([L.Dense(16, kernel_initializer="glorot_uniform", name="h1"),
                              L.BatchNormalization(), L.ReLU()], name="block")
    inputs = keras.Input((8,))
    model = keras.Model(inputs, L.Dense(3, "softmax")(inner(inputs)))
    assert only(audit(model), "initializer").layers == ("h1",)


def test_the_function_does_not_shadow_its_module():
    # `dnnguide.audit` is the function; a package of the same name would be unreachable by
    # `import dnnguide.audit.rules as r` (ImportError), hence the module name `auditing`.
    import dnnguide.auditing.rules as rules

    assert dnnguide.audit is audit and rules.RULES


def test_canary_keras_functional_graph_internals():
    # graph.py reads Keras' private graph (make_node_key, _nodes, _inbound_nodes, _keras_history):
    # if a Keras release renames them, this fails first and names what moved.
    from keras.src.ops.function import make_node_key

    inputs = keras.Input((4,))
    hidden = L.Dense(4, name="h")
    model = keras.Model(inputs, L.Dense(2)(hidden(inputs)))
    assert make_node_key(hidden, 0) in model._nodes
    (node,) = hidden._inbound_nodes
    assert node.input_tensors[0]._keras_history.operation is model.layers[0]
    from dnnguide.auditing.graph import ModelView

    view = ModelView(model)
    assert [layer.name for layer in view.successors(hidden)] == [model.layers[-1].name]


# --------------------------------------------------------------------------- report
def test_report_table_json_and_fixed_config():
    model = build_model("default", (8,), 3, activation="tanh",
                        early_stopping={"enabled": False}, schedule="constant")
    report = audit(model)
    assert report.ok and set(report.rules) == {"initializer", "no_stopping_no_schedule"}
    frame = report.findings
    assert list(frame.columns) == ["rule", "severity", "layers", "reason", "fix", "code"]
    assert (frame["severity"] == "warning").all()
    assert json.loads(json.dumps(report.to_dict()))["findings"][0]["rule"] == "initializer"
    text = str(report)
    assert "2 warnings" in text and "fix:" in text and "hidden_1" in text
    fixed = report.fixed_config()
    assert fixed.kernel_initializer == "glorot_uniform" and fixed.early_stopping.enabled
    assert audit(build_model(fixed, (8,), 3)).items == []
    with pytest.raises(ValueError, match="dnnguide model"):
        audit(stack(L.Dense(1))).fixed_config()
    with pytest.raises(TypeError, match="keras.Model"):
        audit(L.Dense(3))


def test_build_model_raises_on_an_error_finding(monkeypatch):
    import dnnguide.presets as presets

    monkeypatch.setattr(presets, "_head", lambda task, n: ("softmax", "binary_crossentropy", []))
    with pytest.raises(AuditError, match="output_loss"):
        build_model("default", (8,), 3)


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
def test_fit_warns_about_a_users_model_with_errors(blobs):
    x, y = blobs
    model = stack(L.Dense(1, "softmax"), loss="binary_crossentropy")  # trains on a constant
    with pytest.warns(AuditWarning, match="output_loss"):
        dnnguide.fit(model, (x, (y == 0).astype("int64")), run_dir=None, epochs=1, verbose=0,
                     task="binary")


# --------------------------------------------------------------------------- CLI
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_cli_exit_codes(tmp_path, capsys):
    bad = stack(L.Dense(16, "selu"), L.BatchNormalization(), L.Dense(3, "softmax"),
                loss="binary_crossentropy")
    bad.save(tmp_path / "bad.keras")
    assert main(["audit", str(tmp_path / "bad.keras")]) == 1
    out = capsys.readouterr().out
    assert "selu_batch_norm" in out and "output_loss" in out
    assert main(["audit", str(tmp_path / "bad.keras"), "--json"]) == 1
    assert {"selu_batch_norm", "output_loss"} <= {
        f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]}
    run = tmp_path / "run"  # a run directory: its config.json is used
    run.mkdir()
    good = build_model("default", (3,), 1, "regression", depth=2, width=8)
    good.save(run / "model.keras")
    (run / "config.json").write_text(good.dnnguide_config.to_json())
    assert main(["audit", str(run)]) == 0
    assert "no findings" in capsys.readouterr().out
    csv = tmp_path / "houses.csv"
    rng = np.random.default_rng(0)
    columns = {"a": rng.normal(size=50) * 100, "b": rng.normal(size=50),
               "c": rng.normal(size=50), "price": rng.normal(size=50) * 1e4 + 1e5}
    pd.DataFrame(columns).to_csv(csv, index=False)
    assert main(["audit", str(run), "--data", str(csv), "--target", "price"]) == 0  # warnings
    out = capsys.readouterr().out
    assert "inputs_not_standardized" in out and "target_not_standardized" in out
    assert main(["audit", str(tmp_path / "missing.keras")]) == 2
