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


def long_run(n):
    """A plain script's run with n steps of `loss` (a smooth fall) and 3 of `val_loss`."""
    return log_run(params={"lr": "0.1"}, metrics={"loss": [(s, 2.0 / (1.0 + s / 100)) for s in range(n)],
                                                  "val_loss": [(n // 3, 1.5), (2 * n // 3, 1.2), (n - 1, 1.1)]})


def test_a_history_under_the_limit_comes_back_whole_and_a_longer_one_as_an_even_sample():
    from tracking.mlflow_io import client_for, metric_history

    run_id = long_run(2500)
    client = client_for()
    whole = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert metric_history(client, run_id, "loss", limit=3000) == whole
    sample = metric_history(client, run_id, "loss", limit=500)
    steps = [s for s, _, _ in sample]
    assert len(sample) <= 500 and steps[0] == 0 and steps[-1] == 2499
    assert max(b - a for a, b in zip(steps, steps[1:])) <= 2 * 2500 // 500  # spread over the run, no gap
    assert set(sample) <= set(whole)  # logged points, not made-up ones


def test_a_store_read_in_pages_keeps_at_most_the_limit_with_the_first_and_last_point(monkeypatch):
    # the path of a store that samples nothing itself (an MLflow server), run on the SQL store's pages
    from tracking import mlflow_io

    run_id = long_run(2500)
    store = mlflow_io.client_for()._tracking_client.store
    monkeypatch.setattr(mlflow_io, "PAGE_POINTS", 300)
    pages = []
    real = store.get_metric_history
    monkeypatch.setattr(store, "get_metric_history", lambda *a, **k: pages.append(k) or real(*a, **k))
    sample = mlflow_io._thinned_pages(store, run_id, "loss", 400)
    steps = [s for s, _, _ in sample]
    assert len(pages) == 9 and all(p["max_results"] == 300 for p in pages)  # 2,500 points in pages of 300
    assert len(sample) <= 400 and steps[0] == 0 and steps[-1] == 2499
    assert max(b - a for a, b in zip(steps, steps[1:])) <= 2 * 2500 // 400


def test_read_run_bounds_every_metric_of_a_long_run(monkeypatch):
    from tracking import mlflow_io

    monkeypatch.setattr(mlflow_io, "HISTORY_POINTS", 1000)
    data = mlflow_io.read_run(long_run(3000))
    loss = data["metrics"]["loss"]
    assert len(loss) <= 1000 and loss[0][0] == 0 and loss[-1][0] == 2999
    assert data["metrics"]["val_loss"] == [[1000, 1.5], [2000, 1.2], [2999, 1.1]]
