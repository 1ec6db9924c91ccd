"""Changes and diagnoses in words, for subjects and bodies."""
import pytest

from tracking.emails import change_in_words, format_value, main_diagnosis


@pytest.mark.parametrize("value, text", [(0.0005, "5e-4"), (0.1, "0.1"), (1e-3, "1e-3"), (0.00125, "1.25e-3"),
                                         (3.0, "3"), (64, "64"), (True, "True"), ("adamw", "adamw")])
def test_values_read_as_people_write_them(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize("change, config, words", [
    ({"weight_decay": 0.0005}, {"weight_decay": 0.0}, "raise weight_decay to 5e-4"),
    ({"lr": 0.01}, {"lr": 0.1}, "lower lr to 0.01"),
    ({"lr": 0.01}, {}, "set lr to 0.01"),  # the project default is already 0.01
    ({"batch_norm": True}, {}, "turn on batch_norm"),
    ({"grad_clip": None}, {"grad_clip": 1.0}, "turn off grad_clip"),
    ({"grad_clip": 1.0}, {}, "set grad_clip to 1"),
    ({"optimizer": "adamw"}, {"optimizer": "sgd"}, "set optimizer to adamw"),
    ({"dropout": 0.3, "epochs": 40}, {}, "raise dropout to 0.3 and raise epochs to 40"),
])
def test_a_change_reads_as_what_to_do(change, config, words):
    assert change_in_words(change, config) == words


def test_the_main_diagnosis_is_the_most_severe():
    analysis = {"diagnoses": [{"id": "plateau", "severity": 0.4}, {"id": "unstable", "severity": 0.9},
                              {"id": "overfitting", "severity": 0.9}]}
    assert main_diagnosis(analysis)["id"] == "unstable"
    assert main_diagnosis({}) is None
