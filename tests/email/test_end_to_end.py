"""From the rules helper's final analysis task to the inbox: a run logged to the real MLflow
store, analysed by the real engine, emailed over real SMTP."""
import pytest
from django.urls import reverse

from tests.email.conftest import parts
from tests.rules import curves
from tests.rules.mlflow_helpers import log_run
from tracking.emails import change_in_words
from tracking.models import MetricSeries, OutboxEmail, Run

pytestmark = pytest.mark.django_db


def test_the_final_analysis_emails_the_engines_diagnosis_and_first_change_once(
        team_users, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    from tracking.tasks import analyse_run

    train, val = curves.overfitting()
    run_input = curves.run(train, val)
    mlflow_id = log_run(run_input["config"], run_input["metrics"], {"steps_per_epoch": curves.SPE})
    run = Run.objects.create(project=team_users["project"], owner=team_users["member"], name="run e2e",
                             status="succeeded", config=run_input["config"], mlflow_run_id=mlflow_id,
                             steps_per_epoch=curves.SPE)
    for key in ("train_loss_epoch", "val_loss"):
        MetricSeries.objects.create(run=run, key=key, points=run_input["metrics"][key])

    with django_capture_on_commit_callbacks(execute=True):
        analyse_run.apply(args=[run.pk], kwargs={"final": True}).get()

    run.refresh_from_db()
    top = run.recommendations.first()
    assert run.analysis["diagnoses"] and top is not None
    [mail] = smtp_server.inbox.wait_for(1)
    assert mail["to"] == ["bob@example.com"]
    msg = mail["msg"]
    assert msg["Subject"].startswith("[vision] run e2e: overfitting, ")
    assert msg["Subject"].endswith(change_in_words(top.change, run.config))
    found = parts(msg)
    assert "image/png" in found
    assert f'href="http://runwise.test{reverse("recommendation_apply", args=[top.pk])}"' in (
        found["text/html"].get_content())

    with django_capture_on_commit_callbacks(execute=True):  # a re-delivered final analysis
        analyse_run.apply(args=[run.pk], kwargs={"final": True}).get()
    assert len(smtp_server.inbox.wait_for(2, timeout=1)) == 1
    assert OutboxEmail.objects.filter(run=run).count() == 1
