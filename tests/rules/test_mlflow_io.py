"""Reading any MLflow run into a run input: params coerced, aliases mapped, status mapped."""
from tracking.mlflow_io import coerce, metric_sources, read_run

from .mlflow_helpers import log_run


def test_params_come_back_as_the_values_they_were_logged_from():
    assert coerce("0.1") == 0.1 and coerce("64") == 64 and coerce("True") is True
    assert coerce("false") is False and coerce("None") is None and coerce("adam") == "adam"
    assert coerce("1e-4") == 1e-4 and coerce("[1, 2]") == "[1, 2]"


def test_every_key_the_engine_reads_is_fetched_with_what_it_stands_for():
    sources = metric_sources(["loss", "train_loss", "valid_loss", "eval_accuracy", "learning_rate", "foo",
                              "train_loss_step", "lr-Adam-pg0", "epoch", "eval_runtime"])
    assert sources == {"epoch": "epoch", "eval_accuracy": "val_accuracy", "learning_rate": "lr",
                       "loss": "train_loss", "lr-Adam-pg0": "lr", "train_loss": "train_loss",
                       "train_loss_step": "train_loss", "valid_loss": "val_loss"}


def test_it_reads_a_running_foreign_run_with_non_finite_values():
    run_id = log_run(params={"lr": "0.3", "optimizer": "adam", "steps_per_epoch": "10"},
                     metrics={"training_loss": [(0, 2.3), (1, float("nan")), (2, float("inf"))],
                              "validation_loss": [(1, 1.9)]}, status="RUNNING")
    data = read_run(run_id)
    assert data["config"] == {"lr": 0.3, "optimizer": "adam"}
    assert data["steps_per_epoch"] == 10 and data["status"] == "running"
    assert data["metrics"]["training_loss"] == [[0, 2.3], [1, "nan"], [2, "inf"]]
    assert data["metrics"]["validation_loss"] == [[1, 1.9]]
