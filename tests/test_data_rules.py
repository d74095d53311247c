"""The data-aware rules: what the rows, features and task of the data change, and why."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import dnnguide
from dnnguide.data_rules import (
    DATA_TABLE,
    DataProfile,
    choose_batch_norm_momentum,
    choose_patience,
    choose_width,
)
from dnnguide.guidelines import recommend
from dnnguide.presets import get_preset, recommend_preset

MNIST1D = DataProfile(n_train=3600, n_features=40, task="classification", n_outputs=10)
BIG = DataProfile(n_train=50_000, n_features=784, task="classification", n_outputs=10)
DIABETES = DataProfile(n_train=317, n_features=10, task="regression", n_outputs=1)


@pytest.mark.parametrize("features, width", [(1, 64), (10, 64), (30, 128), (40, 256),
                                              (64, 256), (100, 512), (3072, 512)])
def test_width_is_four_times_the_inputs_as_a_power_of_two_in_64_512(features, width):
    assert choose_width(DataProfile(1000, features)) == width


def test_small_data_gets_weight_decay_and_dropout_with_a_reason_naming_the_rows():
    rec = recommend(data=MNIST1D)
    cfg = rec.config
    assert cfg.width == 256
    assert cfg.optimizer.name == "adamw" and cfg.optimizer.weight_decay == 0.088
    assert cfg.regularization.dropout_rate == 0.2
    assert cfg.regularization.dropout_kind == "standard"
    assert "3,600 training rows" in rec.reasons["regularization"]
    assert "weight decay 0.088" in rec.reasons["regularization"]
    assert "113 steps an epoch" in rec.reasons["optimizer.weight_decay"]
    assert "40 input features" in rec.reasons["width"]


@pytest.mark.parametrize("profile", [MNIST1D, DIABETES, DataProfile(409, 30, "binary"),
                                     DataProfile(4_500, 20)])
@pytest.mark.parametrize("depth", [None, 20])  # AdamW at 1e-3; a deep stack's Nesterov at 1e-2
def test_weight_decay_forgets_an_update_over_the_tables_epochs_whatever_the_data(profile, depth):
    opt = recommend(data=profile, depth=depth).config.optimizer
    steps = profile.steps_per_epoch(32)
    epochs = 1.0 / (opt.learning_rate * opt.weight_decay * steps)
    # two significant digits: within 5% of the table's 100 epochs
    assert epochs == pytest.approx(DATA_TABLE["weight_decay"][0]["timescale_epochs"], rel=0.05)
    # twice the rows, twice the steps an epoch: half the decay keeps the timescale
    doubled = DataProfile(2 * profile.n_train, profile.n_features, profile.task)
    more = recommend(data=doubled, depth=depth or 3).config.optimizer.weight_decay
    assert more == pytest.approx(opt.weight_decay / 2, rel=0.1)


def test_tiny_data_gets_no_weight_decay_and_the_reason_says_why():
    wine = DataProfile(127, 13, "classification", 3)  # 4 steps an epoch
    rec = recommend(data=wine)
    assert rec.config.optimizer.weight_decay == 0.0
    assert rec.config.regularization.dropout_rate == 0.2  # dropout stays
    assert rec.reasons["optimizer.weight_decay"].startswith(
        "No weight decay: an epoch of 127 rows is 4 steps, fewer than 10")
    assert "127 training rows for" in rec.reasons["regularization"]
    assert "weight decay" not in rec.reasons["regularization"]
    # from 10 steps an epoch on, the rule's decay (diabetes: exactly 10)
    assert recommend(data=DIABETES).config.optimizer.weight_decay == 1.0
    # a weight decay you give wins, on tiny data too
    assert recommend_preset("default", data=wine, weight_decay=0.5).config.optimizer \
        .weight_decay == 0.5


def test_tiny_regression_keeps_the_weight_decay_its_only_regularizer():
    prices = DataProfile(221, 15, "regression")  # 7 steps an epoch; no dropout for regression
    rec = recommend(data=prices)
    assert rec.config.optimizer.weight_decay == 1.4  # 1 / (1e-3 x 7 steps x 100 epochs)
    assert rec.config.regularization.dropout_rate == 0.0
    why = rec.reasons["optimizer.weight_decay"]
    assert why.startswith("Weight decay 1.4:")
    assert "Kept on 221 rows (7 steps an epoch, fewer than 10): classifiers this small" in why
    assert "decoupled weight decay 1.4" in rec.reasons["regularization"]


@pytest.mark.parametrize("depth", [None, 20])
def test_the_optimizer_really_decays_the_weights_over_the_rules_timescale(depth):
    """The rule assumes Keras' decoupled decay, ``w -= lr * decay * w`` a step; with zero
    gradients the weights must fall to 1/e of themselves after the timescale's steps."""
    import keras

    from dnnguide.optimizers import make_optimizer

    opt_config = recommend(data=DIABETES, depth=depth).config.optimizer
    steps = round(1.0 / (opt_config.learning_rate * opt_config.weight_decay))
    assert steps == 1000  # 100 epochs of 10 steps
    weight = keras.Variable(np.ones((4, 4), "float32"))
    optimizer = make_optimizer(opt_config)
    zero = keras.ops.zeros((4, 4))
    for _ in range(steps):
        optimizer.apply_gradients([(zero, weight)])
    assert float(np.mean(weight.numpy())) == pytest.approx(np.exp(-1.0), rel=0.01)


def test_small_data_gets_three_hidden_layers_unless_a_depth_is_given():
    rec = recommend(data=DIABETES)
    assert rec.config.depth == DATA_TABLE["depth"][0]["depth"] == 3
    assert "317 training rows (fewer than 5,000): 3 hidden layers" in rec.reasons["depth"]
    assert "depth=5" in rec.reasons["depth"]  # the way back, where depth pays
    assert "8,896 weights" in rec.reasons["regularization"]  # sized on the 3 layers it has
    for preset in ("default", "sparse", "risk_sensitive"):
        assert get_preset(preset, data=MNIST1D).depth == 3
    assert get_preset("self_normalizing", data=MNIST1D).depth == 5  # measured worse with 3
    # a depth the user gives wins, "shallow" included; large data and no data keep the table's
    assert recommend(depth=5, data=DIABETES).config.depth == 5
    assert recommend(depth="shallow", data=DIABETES).config.depth == 5
    assert get_preset("default", data=MNIST1D, depth=4).depth == 4
    assert recommend(data=BIG).config.depth == recommend().config.depth == 5
    # from 5,000 rows the gain was gone: the table's depth, with the small-data regularization
    near_edge = recommend(data=DataProfile(8000, 20, "classification", 4)).config
    assert (near_edge.depth, near_edge.regularization.dropout_rate) == (5, 0.2)
    assert "deep from" in recommend(data=BIG).reasons["depth"]
    # low latency has its own depth and reason ("fewer layers"), data or not
    low = recommend(low_latency=True, data=DIABETES)
    assert low.config.depth == 3 and "training rows" not in low.reasons["depth"]


def test_regularization_follows_weights_per_row_not_a_row_count():
    # 50,000 rows for a 512 x 5 net's 1.45M weights: it can still memorize them. The rule
    # once stopped at 10,000 rows, and such data then lost to a plain Keras MLP.
    rec = recommend(data=BIG)
    assert rec.config.regularization.dropout_rate == 0.2
    assert rec.config.optimizer.weight_decay == 0.0064  # 1 / (1e-3 x 1,563 steps x 100 epochs)
    assert "50,000 training rows for 1,455,104 weights" in rec.reasons["regularization"]
    assert "more weights than rows" in rec.reasons["regularization"]
    assert rec.config.early_stopping.start_from_epoch == 0  # small validation splits only
    # fewer weights than rows: early stopping alone, the tables as they are (sized)
    tall = DataProfile(n_train=200_000, n_features=8, task="binary")
    assert tall.n_weights(5, 64) == 16_960 < tall.n_train
    cfg = recommend(data=tall).config
    assert cfg.optimizer.weight_decay == 0.0 and cfg.regularization.dropout_rate == 0.0
    assert cfg == recommend(width=cfg.width).config
    # the edge is the weights: one more feature than rows allow tips it
    edge = DataProfile(n_train=16_960, n_features=8, task="binary")
    assert recommend(data=edge).config.regularization.dropout_rate == 0.0
    over = DataProfile(n_train=16_959, n_features=8, task="binary")
    assert recommend(data=over).config.regularization.dropout_rate == 0.2


def test_regression_gets_the_decay_without_dropout_and_says_why():
    # dropout's noise caps a regression net's precision: the decay alone, on any number of rows
    prices = DataProfile(n_train=38_000, n_features=26, task="regression")
    rec = recommend(data=prices)
    assert rec.config.regularization.dropout_rate == 0.0
    assert rec.config.optimizer.weight_decay == 0.0084  # 1 / (1e-3 x 1,188 steps x 100)
    assert "decoupled weight decay 0.0084." in rec.reasons["regularization"]
    assert "No dropout: a regression target" in rec.reasons["regularization"]
    small = recommend(data=DIABETES)
    assert small.config.regularization.dropout_rate == 0.0
    assert small.config.optimizer.weight_decay > 0
    assert "No dropout: a regression target" in small.reasons["regularization"]
    # classes keep it; a rate the user gives wins
    assert recommend(data=DataProfile(38_000, 26, "classification", 5)).config.regularization \
        .dropout_rate == 0.2
    for data in (prices, DIABETES):
        given = recommend(data=data, dropout_rate=0.2)
        assert given.config.regularization.dropout_rate == 0.2
        assert "No dropout" not in given.reasons["regularization"]


def test_no_data_keeps_the_tables_alone():
    cfg = recommend().config
    assert cfg.width == 100 and cfg.optimizer.weight_decay == 0.0
    assert cfg.regularization.dropout_rate == 0.0 and cfg.optimizer.clipnorm is None


def test_self_normalizing_small_data_gets_neither_weight_decay_nor_alpha_dropout_and_says_why():
    rec = recommend(self_normalizing=True, data=MNIST1D)
    cfg = rec.config
    assert cfg.activation == "selu"
    assert cfg.regularization.dropout_rate == 0.0
    assert DATA_TABLE["regularization.selu"][0]["alpha_dropout_rate"] == 0.0
    assert cfg.optimizer.weight_decay == 0.0
    assert "3,600 training rows" in rec.reasons["regularization"]
    assert "AlphaDropout 0.1 after every SELU layer made it worse" in rec.reasons["regularization"]
    # asking for dropout still gets AlphaDropout, never standard dropout
    asked = recommend(self_normalizing=True, data=MNIST1D, dropout_rate=0.1).config.regularization
    assert (asked.dropout_rate, asked.dropout_kind) == (0.1, "alpha")
    risky = recommend(self_normalizing=True, risk_sensitive=True, data=MNIST1D).config
    assert risky.regularization.dropout_kind == "mc_alpha" and risky.regularization.dropout_rate > 0


def test_risk_sensitive_keeps_mc_dropout_and_both_reasons():
    rec = recommend(risk_sensitive=True, data=MNIST1D)
    assert rec.config.regularization.dropout_kind == "mc"
    assert "MC dropout" in rec.reasons["regularization"]
    assert "3,600 training rows" in rec.reasons["regularization"]


def test_regression_clips_gradients_and_standardizes_the_target():
    rec = recommend(data=DIABETES)
    assert rec.config.optimizer.clipnorm == 1.0
    assert "squared error" in rec.reasons["optimizer"]
    assert rec.config.standardize_target is True
    assert rec.config.width == 64


def test_batch_norm_momentum_follows_the_epoch_length():
    # 3,600 rows / 32 = 113 steps per epoch: a horizon of a quarter epoch, ~28 steps.
    assert choose_batch_norm_momentum(MNIST1D, 32) == pytest.approx(0.965, abs=1e-3)
    assert choose_batch_norm_momentum(BIG, 32) == 0.99  # capped at Keras' default
    assert choose_batch_norm_momentum(DIABETES, 32) == 0.9  # floor
    deep = recommend(depth=20, data=MNIST1D)
    assert deep.config.batch_norm_momentum == pytest.approx(0.965, abs=1e-3)
    assert "113 steps" in deep.reasons["batch_norm_momentum"]
    assert recommend(data=MNIST1D).config.batch_norm_momentum == 0.99  # no BN, untouched


def test_user_overrides_win_over_the_data_rules():
    rec = recommend_preset("default", data=MNIST1D, width=32, dropout_rate=0.0,
                           weight_decay=0.0)
    cfg = rec.config
    assert (cfg.width, cfg.regularization.dropout_rate, cfg.optimizer.weight_decay) == (32, 0, 0)
    assert rec.reasons["width"].startswith("Set by you")


def test_an_optimizer_without_weight_decay_drops_the_rules_decay_and_says_so():
    rec = recommend_preset("default", data=MNIST1D, optimizer="adam")
    assert rec.config.optimizer.name == "adam" and rec.config.optimizer.weight_decay == 0.0
    assert "dropped" in rec.reasons["optimizer.weight_decay"]


def test_task_must_match_the_data():
    with pytest.raises(ValueError, match="contradicts the data"):
        recommend(task="regression", data=MNIST1D)


def test_profile_of_a_dataset(blobs):
    x, y = blobs
    data = dnnguide.data.from_arrays(x, y, task="classification")
    profile = DataProfile.of(data)
    assert (profile.n_features, profile.n_outputs, profile.task) == (8, 3, "classification")
    assert profile.n_train == len(data.x_train)
    with pytest.raises(TypeError, match="Received: data of type list"):
        DataProfile.of([1, 2])


def test_onecycle_gets_its_budget_and_no_early_stopping():
    rec = recommend_preset("default", data=MNIST1D, schedule="onecycle")
    cfg = rec.config
    assert cfg.schedule.name == "onecycle" and cfg.early_stopping.enabled is False
    assert cfg.epochs == 30 and "never anneals" in rec.reasons["early_stopping"]
    assert "at least 5x the constant learning rate" in rec.reasons["schedule.max_lr"]
    # An explicit budget or early-stopping choice wins.
    cfg = get_preset("default", schedule="onecycle", epochs=12, **{"early_stopping.patience": 3})
    assert cfg.epochs == 12 and cfg.early_stopping.enabled and cfg.early_stopping.patience == 3


def _dropout_after(model) -> list[str]:
    """Names of the layers each Dropout layer follows, in order."""
    import keras

    layers = model.layers
    return [layers[i - 1].name for i, layer in enumerate(layers)
            if isinstance(layer, keras.layers.Dropout)]


def test_in_a_deep_batch_norm_net_dropout_follows_the_last_batch_norm_only():
    rec = recommend_preset("default", data=MNIST1D, depth=20)
    assert rec.config.normalization == "batch_norm_after"
    assert rec.config.regularization.dropout_layers == 1
    assert "Li et al. 2019" in rec.reasons["regularization"]
    model = dnnguide.build_model(rec.config, (40,), 10)
    assert _dropout_after(model) == ["batch_norm_20"]  # nothing feeds a BN layer a dropped input


def test_without_batch_norm_every_hidden_layer_keeps_its_dropout():
    assert get_preset("low_latency", data=MNIST1D).regularization.dropout_layers is None
    config = get_preset("default", data=MNIST1D)
    assert config.normalization == "none" and config.regularization.dropout_layers is None
    assert config.depth == 3  # the small-data depth: every one of its layers has dropout
    model = dnnguide.build_model(config, (40,), 10)
    assert _dropout_after(model) == ["hidden_1", "hidden_2", "hidden_3"]


def test_dropout_placement_follows_a_batch_norm_override_and_yields_to_an_explicit_one():
    assert get_preset("default", data=MNIST1D, depth=12,
                      normalization="batch_norm_before").regularization.dropout_layers == 1
    assert get_preset("default", data=MNIST1D,  # 5 layers: the shift is small, dropout stays
                      normalization="batch_norm_before").regularization.dropout_layers is None
    assert get_preset("default", data=MNIST1D, depth=20,
                      normalization="none").regularization.dropout_layers is None
    config = get_preset("default", data=MNIST1D, depth=20, dropout_layers=3)
    assert config.regularization.dropout_layers == 3
    model = dnnguide.build_model(config, (40,), 10)
    assert len(_dropout_after(model)) == 3


def test_dropout_layers_must_be_a_positive_count():
    with pytest.raises(ValueError, match="dropout_layers"):
        get_preset("default", dropout_layers=0)


# --------------------------------------------------------------------------- learning rate
def test_the_lr_rule_covers_presets_by_name_with_the_tables_adam_family_lr_only():
    from dnnguide.data_rules import finder_applies

    def applies(preset="default", **overrides):
        config = (get_preset(preset, data=MNIST1D, **overrides) if isinstance(preset, str)
                  else preset)
        return finder_applies(preset, config, overrides)

    assert applies() and applies("risk_sensitive") and applies("low_latency")
    assert applies(optimizer="adam")  # a name only: the LR is still the table's
    assert not applies(learning_rate=3e-3) and not applies(**{"optimizer.learning_rate": 3e-3})
    assert not applies("self_normalizing")  # Nesterov: not measured
    assert not applies(schedule="onecycle")  # 1cycle's max_lr has its own finder rule
    assert not applies(get_preset("default", data=MNIST1D))  # a config is the user's choice
    reasons = recommend_preset("default", data=MNIST1D).reasons
    assert "3,600 rows" in reasons["optimizer.learning_rate"]
    assert "optimizer.learning_rate" not in recommend_preset(
        "default", data=MNIST1D, learning_rate=3e-3).reasons


def test_fit_lowers_the_lr_to_the_finders_valley_and_trains_as_if_it_had_been_given():
    data = dnnguide.load_dataset("digits", seed=7)  # valley 2.9e-4: over 2x below 1e-3
    found = dnnguide.fit("default", data, run_dir=None, epochs=1, verbose=0, seed=7)
    lr = found.config.optimizer.learning_rate
    assert 1e-4 < lr < 1e-3
    given = dnnguide.fit("default", data, run_dir=None, epochs=1, verbose=0, seed=7,
                         learning_rate=lr)
    assert given.config == found.config  # the user's value is used as is, with no sweep
    for a, b in zip(found.model.get_weights(), given.model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the sweep left no trace on training


def test_the_lr_rule_never_raises_the_tables_lr():
    from dnnguide.fit_setup import finder_learning_rate

    data = dnnguide.load_dataset("digits", seed=0)
    config = get_preset("default", data=data, learning_rate=1e-5)  # far below any valley
    assert finder_learning_rate(config, data, seed=0) == config


def test_a_valley_less_than_twice_below_the_table_is_noise_and_keeps_the_tables_lr():
    from dnnguide.fit_setup import finder_learning_rate

    data = dnnguide.load_dataset("breast_cancer", seed=1)  # valley 6.6e-4: within the noise
    config = get_preset("default", data=data)
    assert finder_learning_rate(config, data, seed=1) == config


@pytest.mark.parametrize("schedule", ["performance", "onecycle"])
def test_a_bad_callback_is_refused_before_any_lr_sweep_trains(monkeypatch, tmp_path, schedule):
    import keras

    import dnnguide.lr_finder

    def sweep(*args, **kwargs):
        raise AssertionError("the LR finder swept before the bad callback was refused")

    monkeypatch.setattr(dnnguide.lr_finder, "lr_find", sweep)
    data = dnnguide.load_dataset("digits", seed=2)  # the LR rule sweeps this default preset
    with pytest.raises(dnnguide.ConfigError, match="val_acc"):
        dnnguide.fit("default", data, run_dir=tmp_path, epochs=1, verbose=0, schedule=schedule,
                     callbacks=[keras.callbacks.EarlyStopping(monitor="val_acc")])
    assert not list(tmp_path.iterdir())  # no run folder either


def test_checking_callbacks_before_the_sweep_leaves_training_unchanged():
    import keras

    data = dnnguide.load_dataset("digits", seed=2)
    runs = [dnnguide.fit("default", data, run_dir=None, epochs=1, verbose=0, seed=2,
                         callbacks=callbacks)
            for callbacks in ([], [keras.callbacks.TerminateOnNaN()])]
    assert runs[0].config == runs[1].config
    for a, b in zip(runs[0].model.get_weights(), runs[1].model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rows, start", [(317, 10), (1293, 10), (1437, 9), (3600, 4),
                                         (9000, 2), (10_000, 0)])
def test_small_data_early_stopping_ignores_about_400_steps_at_most_10_epochs(rows, start):
    # ceil(400 / steps an epoch) at batch 32, capped at 10 epochs; none from 10,000 rows.
    profile = DataProfile(n_train=rows, n_features=20, task="binary")
    assert recommend(data=profile).config.early_stopping.start_from_epoch == start


def test_small_data_early_stopping_ignores_the_first_epochs_and_says_why():
    rec = recommend(data=MNIST1D)
    stop = rec.config.early_stopping
    assert stop.enabled and stop.start_from_epoch == 4 and stop.patience == 10
    assert "3,600 training rows" in rec.reasons["early_stopping"]
    assert "ignores the first 4 epochs" in rec.reasons["early_stopping"]
    assert "113 steps an epoch" in rec.reasons["early_stopping"]
    risky = recommend(risk_sensitive=True, data=MNIST1D).config.early_stopping
    assert (risky.monitor, risky.start_from_epoch) == ("val_mc_loss", 4)
    assert recommend(data=BIG).config.early_stopping.start_from_epoch == 0
    assert recommend().config.early_stopping.start_from_epoch == 0
    # The user's choice wins; 1cycle has no early stopping to delay.
    assert recommend_preset("default", data=MNIST1D,
                            start_from_epoch=0).config.early_stopping.start_from_epoch == 0
    assert not recommend_preset("default", data=MNIST1D,
                                schedule="onecycle").config.early_stopping.enabled


def test_early_stopping_restores_no_weights_from_before_its_first_counted_epoch():
    """Validation labels are the training labels flipped, so the validation loss is lowest
    after the first epoch and rises as the net learns: without the small-data rule early
    stopping (patience 2) ends the run at epoch 3 with the epoch-1 weights."""
    from dnnguide.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(360, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    data = Dataset("flipped", "binary", 1, x[:300], y[:300], x[300:330], 1 - y[300:330],
                   x[330:], y[330:], standardized=True)
    # calibration="none": the restored network itself is scored, without a temperature
    patience = {"early_stopping.patience": 2, "calibration": "none"}
    run = dnnguide.fit("default", data, epochs=16, seed=0, run_dir=None, verbose=0, **patience)
    val_loss = list(run.history["val_loss"])
    assert run.config.early_stopping.start_from_epoch == 10  # 10 steps an epoch: the cap
    assert 13 <= len(val_loss) <= 16  # counted from epoch 11 (index 10), then 2 epochs of patience
    assert min(val_loss) == val_loss[0] < min(val_loss[10:])  # the uncounted epoch 1 was best
    restored = run.model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(min(val_loss[10:]), rel=1e-4)
    # The record says so: the best epoch is the best counted one, whose weights the model holds.
    best = 11 + int(np.argmin(val_loss[10:]))
    assert run.metrics["best_epoch"] == run.metrics["weights_epoch"] == best
    assert run.metrics["best_val_loss"] == pytest.approx(min(val_loss[10:]))
    rule_off = dnnguide.fit("default", data, epochs=16, start_from_epoch=0, seed=0,
                            run_dir=None, verbose=0, **patience)
    assert len(rule_off.history) == 3  # the failure the rule prevents


@pytest.mark.parametrize("rows, patience, epochs", [
    (150, 50, 500),      # 5 steps an epoch: both capped
    (720, 44, 435),      # 23 steps: ~1,000 steps of patience, ~10,000 of budget
    (3_200, 10, 100),    # 100 steps: the tables' 10 epochs and 100 epochs
    (38_000, 10, 100),   # never less than the tables'
])
def test_regression_patience_and_budget_are_counted_in_steps(rows, patience, epochs):
    profile = DataProfile(n_train=rows, n_features=20, task="regression")
    assert choose_patience(profile, 32) == (patience, epochs)
    cfg = recommend(data=profile).config
    assert cfg.early_stopping.patience == patience and cfg.epochs == epochs
    assert cfg.schedule.name == "performance" and cfg.schedule.patience == max(5, patience // 2)


def test_regression_patience_says_why_and_classifiers_keep_the_tables():
    linear = DataProfile(n_train=720, n_features=20, task="regression")
    rec = recommend(data=linear)
    assert ("Regression on 720 training rows, 23 steps an epoch: patience counted in steps. "
            "Early stopping waits 44 epochs (~1,012 steps") in rec.reasons["early_stopping"]
    assert "halves the LR after 22 epochs" in rec.reasons["early_stopping"]
    assert "the budget is 435 epochs" in rec.reasons["epochs"]
    classes = recommend(data=replace(linear, task="classification", n_outputs=3)).config
    assert (classes.early_stopping.patience, classes.schedule.patience, classes.epochs) == (
        10, 5, 100)
    # yours win; 1cycle keeps its budget and no early stopping
    given = get_preset("default", data=linear, epochs=60, **{"early_stopping.patience": 12})
    assert (given.epochs, given.early_stopping.patience) == (60, 12)
    cycled = get_preset("default", data=linear, schedule="onecycle")
    assert cycled.epochs == 30 and not cycled.early_stopping.enabled


def test_regression_training_really_waits_the_rules_patience():
    """The validation targets are noise, so the validation loss never improves after the first
    counted epoch: the run stops exactly the rule's patience later, not the table's 10."""
    from dnnguide.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0])).astype("float32")
    noise = rng.normal(size=30).astype("float32") * 10
    data = Dataset("noise", "regression", 1, x[:200], y[:200], x[200:230], noise,
                   x[230:], y[230:], standardized=True)
    run = dnnguide.fit("default", data, seed=0, run_dir=None, verbose=0, cross_fit=1)
    patience, _ = choose_patience(DataProfile(n_train=200, n_features=4, task="regression"), 32)
    assert run.config.early_stopping.patience == patience == 50  # 7 steps an epoch: capped
    best = run.metrics["best_epoch"]
    assert len(run.history["val_loss"]) == best + patience


def test_under_onecycle_the_rules_decay_keeps_its_timescale_over_the_cycle():
    """Keras scales the decay by each step's LR; 1cycle's LR averages about half its peak, so
    the decay is divided by that mean over the constant LR the rule sized it at."""
    import keras

    from dnnguide.fit_setup import decay_over_the_cycle
    from dnnguide.schedules import onecycle_lr

    config = get_preset("default", data=MNIST1D, schedule="onecycle")
    config = replace(config, schedule=replace(config.schedule, max_lr=5e-3, total_steps=3390))
    cycled = decay_over_the_cycle(config)
    steps = np.arange(3390, dtype="float32")
    mean_lr = float(np.mean(keras.ops.convert_to_numpy(onecycle_lr(steps, 3390, 5e-3))))
    rule = config.optimizer.weight_decay * config.optimizer.learning_rate  # shrink a step
    assert cycled.optimizer.weight_decay * mean_lr == pytest.approx(rule, rel=0.05)
    assert cycled.optimizer.weight_decay < config.optimizer.weight_decay / 2
    # no peak yet (the sweep finds it), no decay, or another schedule: as is
    for same in (get_preset("default", data=MNIST1D, schedule="onecycle"),
                 replace(config, optimizer=replace(config.optimizer, weight_decay=0.0)),
                 get_preset("default", data=MNIST1D)):
        assert decay_over_the_cycle(same) == same


def test_a_onecycle_fit_trains_with_the_cycled_decay_unless_you_give_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(560, 6)).astype("float32")  # 403 training rows: 13 steps an epoch
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    data = dnnguide.data.from_arrays(x, y, task="binary", seed=0)
    ruled = recommend(data=DataProfile.of(data)).config.optimizer.weight_decay
    assert ruled == 0.77
    run = dnnguide.fit("default", data, run_dir=None, epochs=1, verbose=0, seed=0,
                       schedule="onecycle", max_lr=5e-3)
    assert run.config.optimizer.weight_decay == pytest.approx(ruled / 2.35, rel=0.05)
    given = dnnguide.fit("default", data, run_dir=None, epochs=1, verbose=0, seed=0,
                         schedule="onecycle", max_lr=5e-3, weight_decay=0.5)
    assert given.config.optimizer.weight_decay == 0.5


def test_the_rules_decay_follows_a_learning_rate_you_give():
    """Keras decays by lr x decay a step: at 50x the LR, the same decay would forget 50x faster."""
    table = get_preset("default", data=MNIST1D).optimizer
    rec = recommend_preset("default", data=MNIST1D, learning_rate=0.05)
    opt = rec.config.optimizer
    assert opt.learning_rate * opt.weight_decay == pytest.approx(
        table.learning_rate * table.weight_decay, rel=0.05)
    assert "scaled to your learning rate 0.05" in rec.reasons["optimizer.weight_decay"]
    # a decay you give, with or without a learning rate, is used as is
    both = recommend_preset("default", data=MNIST1D, learning_rate=0.05, weight_decay=0.3)
    assert both.config.optimizer.weight_decay == 0.3
    assert recommend_preset("default", data=MNIST1D).config.optimizer == table
