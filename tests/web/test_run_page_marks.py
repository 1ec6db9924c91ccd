"""The run page marks on its charts only the diagnoses that are findings (severity >= 0.5)."""
import pytest

from tests.web.conftest import make_run, sign_in
from tracking.models import Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_run_page_marks_only_findings_not_weak_notes(page, team_users):
    run = make_run(team_users["project"], team_users["admin"], name="marked", epochs=6, steps_per_epoch=20)
    Run.objects.filter(pk=run.pk).update(analysis={"diagnoses": [
        {"id": "overfitting", "severity": 0.8, "evidence": "val_loss rose", "epochs": [3, 6]},
        {"id": "unstable", "severity": 0.5, "evidence": "swings", "epochs": [2, 6]},
        {"id": "plateau", "severity": 0.3, "evidence": "flat", "epochs": [4, 6]},
        {"id": "not_converged", "severity": 0.49, "evidence": "still falling", "epochs": [5, 6]}]})
    sign_in(page, "alice", "pw-alice-123")
    page.goto(f"/runs/{run.pk}/")
    page.wait_for_selector("#chart-loss_epoch canvas")
    assert page.locator("#charts").get_attribute("data-marks") == "overfitting unstable"
