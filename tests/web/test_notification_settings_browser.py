"""The notifications page in a browser: a user asks for every run of sweeps and autopilots (by
default their runs are summarised in the sweep's or autopilot's one email); without a mode the
box is refused with a message naming it, and nothing changes."""
import pytest

from tests.web.conftest import sign_in
from tracking.models import NotificationSetting, Run, Trial
from tracking.notifications import run_recipients
from tracking import sweeps
from tracking.config import validate_config

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_user_asks_for_every_run_of_sweeps_and_autopilots(page, team_users):
    project, alice, bob = team_users["project"], team_users["admin"], team_users["member"]
    sweep = sweeps.sweep_create(project=project, owner=bob, base_config=validate_config({"dataset": "digits", "epochs": 3}),
                                space={"lr": {"low": 1e-3, "high": 1, "log": True}}, stage1_trials=2)
    trial_run = Trial.objects.filter(sweep=sweep).first().run
    Run.objects.filter(pk=trial_run.pk).update(status="succeeded")
    trial_run.refresh_from_db()
    assert run_recipients(trial_run) == []  # the default: the trial is in the sweep's email only

    sign_in(page, "bob", "pw-bob-123")
    page.goto("/notifications/")
    assert "every run of sweeps and autopilots" in page.inner_text("main")
    row = page.locator(f"#project-{project.pk}")
    row.locator("input[name=include_tuning_runs]").check()
    row.locator("button", has_text="Save").click()
    assert "include_tuning_runs: choose a mode" in page.locator("[role=alert]").inner_text()
    assert not NotificationSetting.objects.filter(user=bob).exists()

    row = page.locator(f"#project-{project.pk}")
    row.locator("select[name=mode]").select_option(NotificationSetting.EVERY_RUN)
    row.locator("input[name=include_tuning_runs]").check()
    row.locator("button", has_text="Save").click()
    page.wait_for_selector(".messages")
    assert f"Notifications for {project.name} saved." in page.locator(".messages").inner_text()
    assert page.locator(f"#project-{project.pk} input[name=include_tuning_runs]").is_checked()
    setting = NotificationSetting.objects.get(user=bob, project=project)
    assert setting.include_tuning_runs and setting.mode == NotificationSetting.EVERY_RUN
    assert run_recipients(trial_run) == [bob]  # alice kept the default
