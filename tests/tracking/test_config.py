import math

import pytest

from tracking.config import DEFAULTS, FIXED_KEYS, ConfigError, apply_change, validate_config


def test_it_fills_defaults_for_an_empty_config():
    config = validate_config({})
    assert config == DEFAULTS
    assert set(FIXED_KEYS) <= set(config)


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"lr": -1}, "lr"),
        ({"lr": 0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"scheduler": "linear"}, "scheduler"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"dropout": 1.0}, "dropout"),
        ({"grad_clip": 0}, "grad_clip"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
        ({"nesterov": True, "momentum": 0}, "nesterov"),
        ({"model": "cnn", "dataset": "wine"}, "model"),
        ({"warmup_epochs": 30, "epochs": 10}, "warmup_epochs"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_it_names_the_bad_field(bad, field):
    with pytest.raises(ConfigError) as info:
        validate_config(bad)
    assert info.value.field == field
    assert info.value.message


def test_it_rejects_a_non_object():
    with pytest.raises(ConfigError) as info:
        validate_config([1, 2])
    assert info.value.field == "config"


def test_applying_a_change_keeps_the_rest():
    config = validate_config({"optimizer": "adam", "lr": 0.003})
    new = apply_change(config, {"lr": 0.001})
    assert new["lr"] == 0.001 and new["optimizer"] == "adam"
