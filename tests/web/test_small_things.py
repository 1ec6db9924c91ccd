"""Smaller first-hour things, in a browser: the favicon, Redoc without the internet, the MLflow link
to the model-training view, "Use this LR" says what it did, a number field with letters says what
the field needs in the validator's words."""
import pytest

from tests.web.conftest import make_run, sign_in
from tracking.models import MetricSeries, Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_favicon_is_served(page, team_users, live_server):
    sign_in(page, "bob", "pw-bob-123")
    response = page.goto("/favicon.ico")
    assert response.status == 200 and response.headers["content-type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    page.goto("/")
    assert page.locator("link[rel=icon]").count() == 1


def test_redoc_loads_nothing_from_the_internet(page, team_users, live_server):
    sign_in(page, "bob", "pw-bob-123")
    fetched = []  # responses from anywhere but this server (a request the page's policy blocks has none)
    page.on("response", lambda r: None if r.url.startswith((live_server.url, "blob:", "data:")) else fetched.append(r.url))
    page.goto("/api/redoc/")
    page.wait_for_selector("text=Runwise API", timeout=20_000)
    page.wait_for_load_state("networkidle")
    assert fetched == []
    assert "fonts.googleapis.com" not in page.content()


def test_open_in_mlflow_opens_the_run_in_the_model_training_view(page, team_users, settings):
    from workers.mlflow_logging import make_client, project_experiment_id

    client = make_client(settings.MLFLOW_TRACKING_URI)
    project = team_users["project"]
    exp = project_experiment_id(client, project, settings.MLFLOW_ARTIFACT_ROOT)
    ml_run = client.create_run(exp)
    run = make_run(project, team_users["admin"], name="tracked", with_series=False)
    Run.objects.filter(pk=run.pk).update(mlflow_run_id=ml_run.info.run_id)
    settings.MLFLOW_UI_URL = "http://mlflow.invalid:5000"
    team_users["member"].is_staff = True  # the link is for staff, who hold MLflow logins
    team_users["member"].save()
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/runs/{run.pk}/")
    href = page.locator("a", has_text="open in MLflow").get_attribute("href")
    response = page.request.get(href, max_redirects=0)  # the signed-in browser's cookies
    assert response.status == 302
    assert response.headers["location"] == (f"http://mlflow.invalid:5000/#/experiments/{exp}/runs/"
                                            f"{ml_run.info.run_id}?workflowType=machine_learning")


def test_use_this_lr_lands_with_a_message(page, team_users):
    source = make_run(team_users["project"], team_users["admin"], name="base", with_series=False)
    run = Run.objects.create(project=source.project, owner=source.owner, name="LR range test", kind="lr_find",
                             config=source.config, status="succeeded", parent=source)
    MetricSeries.objects.create(run=run, key="lr", points=[[0, 1e-3]], count=1, last_step=0)
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/lr-find/{run.pk}/")
    page.fill("#lr-own", "abc")
    page.click("text=Use this LR")
    assert "lr: Input should be a valid number" in page.locator(".messages").inner_text()
    page.fill("#lr-own", "0.003")
    page.click("text=Use this LR")
    page.wait_for_url("**/runs/*/")
    assert "is queued with 0.003 as a constant LR" in page.locator(".messages").inner_text()


def test_a_number_field_with_letters_says_what_the_field_needs(page, team_users, redis_server):
    project = team_users["project"]
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/projects/{project.pk}/runs/new/")
    page.fill("#id_lr", "0.o1")
    page.fill("#id_epochs", "ten")
    page.click("text=Queue the run")
    assert page.locator("#field-lr .error").inner_text() == "lr: Input should be a valid number, unable to parse string as a number"
    assert page.locator("#field-epochs .error").inner_text() == (
        "epochs: Input should be a valid integer, unable to parse string as an integer")
    assert not Run.objects.exists()


def test_tune_this_run_with_letters_in_rounds_says_what_the_field_needs(page, team_users):
    run = make_run(team_users["project"], team_users["admin"], name="base", with_series=False)
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/runs/{run.pk}/")
    page.fill("input[name=max_rounds]", "four")
    page.click("text=Tune this run")
    page.wait_for_selector(".messages")
    assert page.locator(".messages").inner_text().strip() == (
        "max_rounds: Input should be a valid integer, unable to parse string as an integer")
    assert not run.autopilots.exists()
