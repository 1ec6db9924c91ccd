"""The analysis reads the downsampled chart series, not the full MLflow history: the same
diagnoses on the labelled suite downsampled hard, divergence still seen at the end of a long run,
and MLflow untouched where series exist."""
import json
import math

import pytest

from tracking.rules import advise
from tracking.series import merge

from .test_suite import HELDOUT, SUITE


def as_series(metrics, max_points, chunk=37):
    """Each metric through tracking.series.merge a chunk at a time, as the worker appends it."""
    out = {}
    for key, points in metrics.items():
        stored = []
        points = [(int(s), float(v)) for s, v in points]  # float("nan") reads the strings back
        for start in range(0, len(points), chunk):
            stored = merge(stored, points[start:start + chunk], max_points)
        out[key] = stored
    return out


def top(answer):
    return ([d["id"] for d in answer["diagnoses"]][:1], [r["rule"] for r in answer["recommendations"]][:1])


@pytest.mark.parametrize("path", SUITE + HELDOUT, ids=[p.stem for p in SUITE + HELDOUT])
def test_the_suite_gets_the_same_first_diagnosis_and_change_from_a_hard_downsampled_series(path):
    run = json.loads(path.read_text())
    run = {k: run[k] for k in ("config", "metrics", "steps_per_epoch", "status")}
    # 200 points a metric (the product keeps 2,000): the suite's runs of up to 2,500 steps are cut 12x
    downsampled = {**run, "metrics": as_series(run["metrics"], max_points=200)}
    assert max(len(p) for p in downsampled["metrics"].values()) <= 200
    assert top(advise(downsampled)) == top(advise(run))


def test_a_long_run_that_blows_up_at_its_end_is_still_diverging_from_its_series():
    steps, spe = 200_000, 2000
    loss = [2.3 * math.exp(-s / 30_000) + 0.1 + 0.05 * ((s * 7919) % 13) / 13 for s in range(steps)]
    for s in range(150_000, steps):
        loss[s] *= math.exp((s - 150_000) / 8000)
    loss[170_000] = math.nan
    loss = loss[:170_001]
    epochs = len(loss) // spe
    metrics = {
        "train_loss": [[s, v] for s, v in enumerate(loss)],
        "lr": [[s, 0.01] for s in range(len(loss))],
        "train_loss_epoch": [[e, sum(loss[(e - 1) * spe:e * spe]) / spe] for e in range(1, epochs + 1)],
        "val_loss": [[e, 1.1 * sum(loss[(e - 1) * spe:e * spe]) / spe] for e in range(1, epochs + 1)],
    }
    run = {"config": {"optimizer": "sgd", "lr": 0.01, "epochs": 100}, "metrics": metrics, "steps_per_epoch": spe,
           "status": "failed"}
    series = as_series(metrics, max_points=2000, chunk=1000)
    assert len(series["train_loss"]) <= 2000
    assert [170_000, "nan"] in series["train_loss"]  # the non-finite point is kept
    full, stored = advise(run), advise({**run, "metrics": series})
    assert stored["diagnoses"][0]["id"] == full["diagnoses"][0]["id"] == "diverging"
    assert top(stored) == top(full)


@pytest.mark.django_db
def test_run_analyse_reads_the_stored_series_and_never_mlflow(team_users):
    """The MLflow run behind the row holds a healthy curve; the stored series an overfitting one:
    the analysis follows the series."""
    from tracking.analysis import run_analyse
    from tracking.config import validate_config
    from tracking.models import Run
    from tracking.series import series_append

    from . import curves as c
    from .mlflow_helpers import log_run

    config = {"dataset": "digits", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 40}
    train, val = c.overfitting(40)
    healthy = log_run(params=config, tags={"steps_per_epoch": c.SPE},
                      metrics={"train_loss_epoch": c.epochs(train), "val_loss": c.epochs([t * 1.05 for t in train])})
    run = Run.objects.create(project=team_users["project"], owner=team_users["member"], name="r",
                             config=validate_config(config), status=Run.Status.RUNNING, mlflow_run_id=healthy,
                             steps_per_epoch=c.SPE)
    series_append(run.pk, {"train_loss": c.steps_from_epochs(train), "train_loss_epoch": c.epochs(train),
                           "val_loss": c.epochs(val)})
    answer = run_analyse(run.pk)
    assert answer["diagnoses"][0]["id"] == "overfitting"


@pytest.mark.django_db
def test_a_running_run_without_series_is_not_analysed_yet_and_mlflow_is_not_read(team_users):
    from tracking.analysis import run_analyse
    from tracking.models import Run

    run = Run.objects.create(project=team_users["project"], owner=team_users["member"], name="r", config={},
                             status=Run.Status.RUNNING, mlflow_run_id="f" * 32)  # no such MLflow run
    assert run_analyse(run.pk) is None


@pytest.mark.django_db
def test_an_ended_run_without_series_gets_them_rebuilt_from_mlflow_once(team_users):
    from tracking.analysis import run_analyse
    from tracking.config import validate_config
    from tracking.models import MetricSeries, Run

    from . import curves as c
    from .mlflow_helpers import log_run

    config = {"dataset": "digits", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 40}
    train, val = c.overfitting(40)
    mlflow_id = log_run(params=config, tags={"steps_per_epoch": c.SPE},
                        metrics={"train_loss_epoch": c.epochs(train), "val_loss": c.epochs(val)})
    run = Run.objects.create(project=team_users["project"], owner=team_users["member"], name="r",
                             config=validate_config(config), status=Run.Status.SUCCEEDED, mlflow_run_id=mlflow_id,
                             steps_per_epoch=c.SPE)
    assert run_analyse(run.pk, final=True)["diagnoses"][0]["id"] == "overfitting"
    assert set(MetricSeries.objects.filter(run=run).values_list("key", flat=True)) == {"train_loss_epoch", "val_loss"}
