"""The LR range test on real data: it stops at 4x the minimum smoothed loss and suggests an LR that
trains well; as a Run of kind "lr_find" on a real Celery worker it logs lr and loss per step to
MLflow and MetricSeries, and "Use this LR" turns a suggestion into a new run."""
import time

import mlflow
import pytest
import torch

from tracking.config import validate_config
from workers.engine import fit
from workers.lr_range import range_test

torch.set_num_threads(1)
DIGITS = {"dataset": "digits", "optimizer": "adam", "epochs": 3, "width": 64}


def test_a_range_test_on_digits_stops_at_four_times_the_minimum_and_suggests_an_lr_that_trains():
    result = range_test(validate_config(DIGITS))
    assert "4x" in result.stop_reason and len(result.lrs) < 100
    finite = [v for v in result.smoothed[:-1]]
    assert result.smoothed[-1] > 4 * min(finite)
    assert result.lrs[0] == pytest.approx(1e-7)
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:]))
    valley = result.suggestions["valley"]["lr"]
    assert 1e-4 <= valley <= 1e-1  # Adam on standardised digits trains well around 1e-3
    good = fit(validate_config({**DIGITS, "lr": valley})).best_val_loss
    too_low = fit(validate_config({**DIGITS, "lr": result.lrs[5]})).best_val_loss
    too_high = fit(validate_config({**DIGITS, "lr": result.lrs[-1]})).best_val_loss
    assert good < too_low and good < (too_high if too_high is not None else float("inf"))


def test_the_sweep_bounds_and_length_are_configurable():
    result = range_test(validate_config({**DIGITS, "lr_min": 1e-5, "lr_max": 1e-2, "lr_find_steps": 20}))
    assert len(result.lrs) == 20 and result.stop_reason.startswith("reached lr_max")
    assert result.lrs[0] == pytest.approx(1e-5) and result.lrs[-1] == pytest.approx(1e-2)


@pytest.mark.slow
def test_an_lr_find_run_on_a_real_worker_logs_its_curve_and_use_this_lr_makes_a_run(
        celery_worker_process, team_users, client):
    from tracking.models import MetricSeries, Run
    from workers.lr_range import lr_find_create

    source = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="digits adam",
                                config=validate_config({**DIGITS, "epochs": 2}), status="succeeded")
    run = lr_find_create(source=source, owner=team_users["admin"])
    assert run.kind == Run.Kind.LR_FIND and run.status == Run.Status.QUEUED
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_final():
            break
        time.sleep(0.2)
    assert run.status == Run.Status.SUCCEEDED, (run.status, run.status_reason, celery_worker_process.log()[-2000:])
    assert "4x" in run.status_reason and "valley" in run.status_reason
    series = {s.key: s for s in MetricSeries.objects.filter(run=run)}
    assert set(series) == {"lr", "train_loss", "smooth_loss"}
    n = series["lr"].count
    history = mlflow.MlflowClient().get_metric_history(run.mlflow_run_id, "lr")
    assert len(history) == n and sorted(m.step for m in history) == list(range(n))
    assert len(mlflow.MlflowClient().get_metric_history(run.mlflow_run_id, "train_loss")) == n

    client.force_login(team_users["member"])
    page = client.get(f"/lr-find/{run.pk}/")
    assert page.status_code == 200 and b'data-suggestion="valley"' in page.content
    valley = page.context["suggestions"]["valley"]["lr"]
    response = client.post(f"/lr-find/{run.pk}/use/", {"lr": valley, "mode": "onecycle"})
    new = Run.objects.exclude(pk__in=[run.pk, source.pk]).get()
    assert response.status_code == 302 and response["Location"] == new.get_absolute_url()
    assert new.config["lr"] == pytest.approx(valley) and new.config["scheduler"] == "onecycle"
    assert new.parent == source and new.kind == Run.Kind.TRAIN
    client.post(f"/lr-find/{run.pk}/use/", {"lr": "0.003", "mode": "constant"})
    constant = Run.objects.exclude(pk__in=[run.pk, source.pk, new.pk]).get()
    assert constant.config["lr"] == 0.003 and constant.config["scheduler"] == "constant"
    bad = client.post(f"/lr-find/{run.pk}/use/", {"lr": "-1", "mode": "constant"}, follow=True)
    assert bad.status_code == 200 and b"lr:" in bad.content
    assert Run.objects.count() == 4
    client.force_login(team_users["outsider"])
    assert client.get(f"/lr-find/{run.pk}/").status_code == 404
    assert client.post(f"/lr-find/{run.pk}/use/", {"lr": "0.01"}).status_code == 404
