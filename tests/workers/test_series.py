"""The downsampled chart copy: at most ~2,000 points a metric, shape and non-finite points kept,
appends never double a step, and a rebuild from MLflow's full history."""
import math
import time

import pytest

from tracking.series import MAX_POINTS, downsample, series_append, series_rebuild


def test_a_short_series_is_kept_whole():
    points = [(i, float(i)) for i in range(100)]
    assert downsample(points) == points


def test_a_long_series_keeps_its_extremes_ends_and_non_finite_points():
    points = [(i, math.sin(i / 500)) for i in range(100_000)]
    points[70_000] = (70_000, 50.0)
    points[99_998] = (99_998, math.nan)
    out = downsample(points)
    assert len(out) <= MAX_POINTS
    assert out[0][0] == 0 and out[-1][0] == 99_999
    assert (70_000, 50.0) in out
    assert any(s == 99_998 and math.isnan(v) for s, v in out)
    assert [s for s, _ in out] == sorted(s for s, _ in out)


@pytest.mark.django_db
def test_appending_ignores_steps_already_in_the_series(run_factory):
    run = run_factory()
    series_append(run.pk, {"train_loss": [(0, 1.0), (1, 0.5)]})
    series_append(run.pk, {"train_loss": [(1, 0.5), (2, math.inf), (3, math.nan)]})
    s = run.series.get(key="train_loss")
    assert s.points == [[0, 1.0], [1, 0.5], [2, "inf"], [3, "nan"]]
    assert (s.count, s.last_step) == (4, 3)


@pytest.mark.django_db
def test_a_growing_series_stays_small(run_factory):
    run = run_factory()
    for start in range(0, 10_000, 500):
        series_append(run.pk, {"lr": [(i, 1.0 / (i + 1)) for i in range(start, start + 500)]})
    s = run.series.get(key="lr")
    assert len(s.points) <= MAX_POINTS and s.count == 10_000 and s.last_step == 9_999


@pytest.mark.django_db
def test_a_series_is_rebuilt_from_mlflows_full_history(run_factory, mlflow_client):
    from mlflow.entities import Metric

    run = run_factory()
    exp = mlflow_client.create_experiment(f"series-{run.pk}-{time.time()}")
    mlflow_run = mlflow_client.create_run(exp)
    ts = int(time.time() * 1000)
    mlflow_client.log_batch(mlflow_run.info.run_id, metrics=[Metric("train_loss", 1.0 / (i + 1), ts, i) for i in range(900)]
                            + [Metric("val_loss", 0.5, ts, 1)])
    run.mlflow_run_id = mlflow_run.info.run_id
    run.save()
    series_append(run.pk, {"stale": [(0, 1.0)]})
    assert series_rebuild(run, client=mlflow_client) == {"train_loss": 900, "val_loss": 1}
    assert sorted(run.series.values_list("key", flat=True)) == ["train_loss", "val_loss"]
    assert run.series.get(key="train_loss").points[:2] == [[0, 1.0], [1, 0.5]]
