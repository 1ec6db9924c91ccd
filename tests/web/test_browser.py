"""Browser tests: Playwright driving Debian's Chromium against the live server."""
import pytest

from tests.web.conftest import make_run, sign_in
from tracking.models import MetricSeries, Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_user_signs_in_sets_up_runs_and_watches_one(page, team_users, redis_server):
    project = team_users["project"]
    sign_in(page, "bob", "pw-bob-123")
    page.click(f"a[href='/projects/{project.pk}/']")
    page.click("text=Set up a run")

    page.fill("#id_name", "too-hot")
    page.fill("#id_lr", "-0.5")
    page.click("text=Queue the run")
    message = page.locator("#field-lr .error")
    assert message.inner_text().startswith("lr:")  # the message names the field
    assert not Run.objects.exists()

    page.fill("#id_lr", "0.05")
    page.select_option("#id_optimizer", "adam")
    page.fill("#id_epochs", "3")
    page.click("text=Queue the run")
    page.wait_for_url("**/runs/*/")
    run = Run.objects.get(name="too-hot")
    assert run.config["optimizer"] == "adam" and run.status == "queued"
    assert page.locator("#run-status").inner_text() == "queued"

    page.goto(f"/projects/{project.pk}/")
    row = page.locator("#run-history tbody tr", has_text="too-hot")
    assert "adam" in row.inner_text() and "0.05" in row.inner_text()
    row.locator("a", has_text="too-hot").click()
    page.wait_for_url(f"**/runs/{run.pk}/")

    # The worker's downsampled copy grows: the open page shows the new points within 2 s.
    assert page.locator("#charts").get_attribute("data-points") == "0"
    MetricSeries.objects.create(run=run, key="train_loss", points=[[s, 2.3 / (1 + s)] for s in range(50)],
                                count=50, last_step=49)
    MetricSeries.objects.create(run=run, key="val_loss", points=[[1, 1.2], [2, 0.9]], count=2, last_step=2)
    Run.objects.filter(pk=run.pk).update(status="running", epoch=2, step=50, total_steps=75, eta_seconds=12)
    page.wait_for_function("() => document.getElementById('charts').dataset.points === '52'", timeout=2500)
    assert page.locator("#run-status").inner_text() == "running"
    assert "step 50/75" in page.locator("#progress-text").inner_text()
    assert page.locator("#chart-train_loss canvas").count() == 1
    assert page.locator("#chart-loss_epoch .u-legend").inner_text().count("val_loss") == 1


def test_the_charts_draw_a_finished_runs_curves_and_diagnosis_marks(page, team_users):
    run = make_run(team_users["project"], team_users["admin"], name="finished", epochs=6, steps_per_epoch=20)
    Run.objects.filter(pk=run.pk).update(analysis={"diagnoses": [
        {"id": "overfitting", "severity": 0.8, "evidence": "val_loss rose", "epochs": [3, 6]}]})
    sign_in(page, "alice", "pw-alice-123")
    page.goto(f"/runs/{run.pk}/")
    page.wait_for_selector("#chart-train_loss canvas")
    assert page.locator(".chart canvas").count() == 4
    assert page.locator("#charts").get_attribute("data-points") == str(120 + 120 + 6 * 4)
    # Something was drawn: the canvas is not blank.
    drawn = page.evaluate("""() => {
        const c = document.querySelector('#chart-loss_epoch canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
    assert drawn > 500


def test_compare_two_runs_from_the_history_table(page, team_users):
    a = make_run(team_users["project"], team_users["admin"], name="a-run", lr=0.1)
    b = make_run(team_users["project"], team_users["admin"], name="b-run", lr=0.02)
    sign_in(page, "alice", "pw-alice-123")
    page.goto(f"/projects/{team_users['project'].pk}/")
    page.check(f"input[name=runs][value='{a.pk}']")
    page.check(f"input[name=runs][value='{b.pk}']")
    page.click("button:has-text('Compare')")
    page.wait_for_url("**/compare/**")
    assert page.locator("#config-compare tr.differs th", has_text="lr").count() == 1
    assert page.locator("#chart-val_loss canvas").count() == 1


def test_the_run_form_shows_the_fields_of_the_chosen_schedule_and_data_set(page, team_users):
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/projects/{team_users['project'].pk}/runs/new/")
    assert page.locator("#field-step_size").is_hidden() and page.locator("#field-csv_label").is_hidden()
    page.select_option("#id_scheduler", "step")
    assert page.locator("#field-step_size").is_visible() and page.locator("#field-pct_start").is_hidden()
    page.select_option("#id_dataset", "csv")
    assert page.locator("#field-csv_file").is_visible() and page.locator("#field-csv_label").is_visible()
    page.select_option("#id_optimizer", "adam")
    assert page.locator("#field-nesterov").is_hidden()
