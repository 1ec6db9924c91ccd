"""End to end: a run set up in the browser trains on a real Celery worker, and its open page
follows it live to the end (status, progress and curves from the worker's MetricSeries)."""
import pytest

from tests.web.conftest import sign_in
from tracking.models import Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_run_set_up_in_the_browser_trains_and_its_page_follows_it(page, team_users, celery_worker_process):
    project = team_users["project"]
    sign_in(page, "alice", "pw-alice-123")
    page.goto(f"/projects/{project.pk}/runs/new/")
    page.fill("#id_name", "e2e")
    page.fill("#id_epochs", "3")
    page.fill("#id_train_subset", "300")
    page.fill("#id_width", "32")
    page.click("text=Queue the run")
    page.wait_for_url("**/runs/*/")
    run = Run.objects.get(name="e2e")

    # The page polls while the run is not final and reloads once it is.
    page.wait_for_function("() => document.getElementById('run-status').textContent === 'succeeded'", timeout=120_000)
    page.wait_for_selector("#chart-val_loss, #chart-loss_epoch canvas")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.status, run.status_reason, celery_worker_process.log()[-2000:])
    assert run.epoch == 3 and run.best_val_loss is not None
    assert "epoch 3/3" in page.locator("#progress-text").inner_text()
    points = int(page.locator("#charts").get_attribute("data-points"))
    assert points >= 3 * 4 + run.total_steps  # epoch curves and the per-step train_loss at least
