"""The open run page follows the run: the elapsed time counts while it trains, and the page keeps
updating after the run ends until its final analysis is shown (no manual reload)."""
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.web.conftest import make_run, sign_in
from tracking.models import Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ANALYSIS = {"diagnoses": [{"id": "overfitting", "severity": 0.8, "epochs": [3, 5],
                           "evidence": "val_loss rose 20% from its minimum 0.41 at epoch 3"}],
            "recommendations": []}


def seconds(text):
    """'2m 05s' -> 125, '12s' -> 12."""
    m = re.fullmatch(r"(?:(\d+)m )?(\d+)s", text.strip())
    assert m, text
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def test_the_elapsed_time_counts_while_the_run_trains(page, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.RUNNING, epochs=5)
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=125))
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/runs/{run.pk}/")
    first = seconds(page.locator("#duration").inner_text())
    assert 124 <= first <= 135 and page.locator("#duration-label").inner_text() == "elapsed"
    page.wait_for_function(f"() => document.getElementById('duration').textContent !== '{page.locator('#duration').inner_text()}'",
                           timeout=3000)
    assert seconds(page.locator("#duration").inner_text()) > first


def test_the_page_shows_the_final_analysis_when_it_comes_after_the_end(page, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.RUNNING, epochs=5)
    started = timezone.now() - timedelta(seconds=40)
    Run.objects.filter(pk=run.pk).update(started_at=started)
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/runs/{run.pk}/")
    assert "appears after the first epochs" in page.locator("#recommendations").inner_text()

    # An interim analysis while it trains: swapped in live.
    Run.objects.filter(pk=run.pk).update(analysis=ANALYSIS, analysed_at=timezone.now())
    page.wait_for_selector("#recommendations .diagnosis-overfitting", timeout=5000)
    assert "live, while training" in page.locator("#recommendations h2").inner_text()

    # The run ends; its final analysis is stored 4 s later (the short worker's queue).
    finished = timezone.now()
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED, finished_at=finished)
    page.wait_for_function("() => document.getElementById('run-status').textContent === 'succeeded'", timeout=5000)
    page.wait_for_timeout(4000)
    final = dict(ANALYSIS, diagnoses=[dict(ANALYSIS["diagnoses"][0], id="not_converged", severity=0.6,
                                           evidence="val_loss still falling 3% an epoch")])
    Run.objects.filter(pk=run.pk).update(analysis=final, analysed_at=timezone.now())
    page.wait_for_selector("#recommendations .diagnosis-not_converged", timeout=6000)
    assert "live" not in page.locator("#recommendations h2").inner_text()
    assert page.locator("#duration-label").inner_text() == "duration"
    assert seconds(page.locator("#duration").inner_text()) == round((finished - started).total_seconds())


def test_the_open_page_says_worker_lost_retrying_when_the_run_is_requeued_and_clears_it_when_it_resumes(
        page, team_users, redis_server):
    from workers.recovery import recover_stalled_runs

    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.RUNNING, epochs=5)
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=60), worker="gpu-box-1",
                                         attempts=1, heartbeat_at=timezone.now() - timedelta(seconds=30))
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/runs/{run.pk}/")
    assert page.locator("#status-reason").is_hidden()
    # Celery beat's recovery finds the run's heartbeat stale: its worker died
    assert recover_stalled_runs(timeout=timedelta(seconds=20)) == ([run.pk], [])
    page.wait_for_function("() => document.getElementById('run-status').textContent === 'queued'", timeout=5000)
    reason = page.locator("#status-reason")
    assert reason.is_visible() and reason.inner_text().startswith("worker lost, retrying (attempt 1 of 3 ended: "
                                                                    "worker gpu-box-1 sent no heartbeat")
    # another worker takes it and resumes it
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, status_reason="", worker="cpu-box-2",
                                         heartbeat_at=timezone.now())
    page.wait_for_function("() => document.getElementById('run-status').textContent === 'running'", timeout=5000)
    assert reason.is_hidden()
