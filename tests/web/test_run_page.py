"""The run page: status, progress, config, MLflow link, chart data from MetricSeries, stop, note and tags."""
from tests.web.conftest import make_run
from tracking.models import MetricSeries, Run


def test_the_run_page_shows_status_progress_config_device_and_the_mlflow_link_to_staff_only(member_client, team_users, settings):
    settings.MLFLOW_UI_URL = "http://mlflow.example:5000"
    run = make_run(team_users["project"], team_users["admin"], name="r1", status=Run.Status.RUNNING,
                   optimizer="adamw", epochs=10)
    Run.objects.filter(pk=run.pk).update(epoch=3, step=30, total_steps=100, eta_seconds=65, device="cuda:0",
                                         worker="gpu-box-1", mlflow_run_id="abc123")
    body = member_client.get(f"/runs/{run.pk}/").content.decode()
    assert "epoch 3/10 · step 30/100 · ETA 1m 05s" in body
    assert 'value="0.3"' in body  # the progress bar
    assert "cuda:0" in body and "gpu-box-1" in body and "adamw" in body
    assert 'id="stop-form"' in body
    assert "uPlot.iife.min.js" in body
    # The MLflow UI holds every team's runs: only staff (who hold MLflow logins) get the link.
    assert "mlflow.example" not in body and "open in MLflow" not in body
    assert member_client.get(f"/runs/{run.pk}/mlflow/").status_code == 404
    team_users["member"].is_staff = True
    team_users["member"].save()
    body = member_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/mlflow/"' in body  # redirects to the run in MLflow's model-training view
    assert "open in MLflow" in body
    settings.MLFLOW_UI_URL = ""  # the deployment's default: no link at all
    assert "open in MLflow" not in member_client.get(f"/runs/{run.pk}/").content.decode()


def test_a_failed_run_shows_its_reason_and_no_stop_button(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.DIVERGED, with_series=False)
    Run.objects.filter(pk=run.pk).update(status_reason="train_loss became NaN at step 41")
    body = member_client.get(f"/runs/{run.pk}/").content.decode()
    assert "train_loss became NaN at step 41" in body and 'id="stop-form"' not in body


def test_the_chart_data_comes_from_metric_series_with_diagnoses(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], epochs=4, steps_per_epoch=5)
    Run.objects.filter(pk=run.pk).update(analysis={"diagnoses": [
        {"id": "overfitting", "severity": 0.8, "evidence": "val_loss rose", "epochs": [2, 4]}]})
    data = member_client.get(f"/runs/{run.pk}/data.json").json()
    assert set(data["series"]) == {"train_loss", "lr", "train_loss_epoch", "val_loss", "train_accuracy",
                                   "val_accuracy"}
    assert len(data["series"]["train_loss"]["points"]) == 20
    assert data["series"]["val_loss"]["points"][0][0] == 1
    assert data["diagnoses"][0]["epochs"] == [2, 4]
    assert data["final"] is True and data["steps_per_epoch"] == 5


def test_the_chart_data_follows_new_points(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.RUNNING, epochs=2)
    series = MetricSeries.objects.get(run=run, key="val_loss")
    series.points = series.points + [[3, 0.42]]
    series.save()
    data = member_client.get(f"/runs/{run.pk}/data.json").json()
    assert data["series"]["val_loss"]["points"][-1] == [3, 0.42] and data["final"] is False


def test_stop_asks_a_running_run_to_stop(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.RUNNING, with_series=False)
    response = member_client.post(f"/runs/{run.pk}/stop/")
    run.refresh_from_db()
    assert response.status_code == 302 and run.stop_requested and run.status == Run.Status.RUNNING


def test_stop_ends_a_queued_run_at_once(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.QUEUED, with_series=False)
    member_client.post(f"/runs/{run.pk}/stop/")
    run.refresh_from_db()
    assert run.status == Run.Status.STOPPED and run.finished_at is not None


def test_stop_by_get_changes_nothing(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.RUNNING, with_series=False)
    assert member_client.get(f"/runs/{run.pk}/stop/").status_code == 405
    run.refresh_from_db()
    assert not run.stop_requested


def test_note_and_tags_are_edited_on_the_run_page(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], with_series=False)
    member_client.post(f"/runs/{run.pk}/annotate/", {"note": "wider is better", "tags": "wide, keep, wide"})
    run.refresh_from_db()
    assert run.note == "wider is better" and sorted(t.name for t in run.tags.all()) == ["keep", "wide"]
    member_client.post(f"/runs/{run.pk}/annotate/", {"note": "", "tags": "keep"})
    assert [t.name for t in run.tags.all()] == ["keep"]


def test_compare_overlays_curves_and_highlights_config_differences(member_client, team_users):
    p = team_users["project"]
    a = make_run(p, team_users["admin"], name="a", lr=0.1, optimizer="sgd")
    b = make_run(p, team_users["admin"], name="b", lr=0.01, optimizer="sgd")
    c = make_run(p, team_users["admin"], name="c", lr=0.01, optimizer="adam", with_series=False)
    response = member_client.get(f"/projects/{p.pk}/compare/", {"runs": [a.pk, b.pk, c.pk]})
    rows = {r["key"]: r for r in response.context["rows"]}
    assert rows["lr"]["differs"] and rows["optimizer"]["differs"] and not rows["epochs"]["differs"]
    assert rows["lr"]["values"] == [0.1, 0.01, 0.01]
    chart = response.context["chart"]
    assert set(chart["series"]["val_loss"]) == {a.pk, b.pk}
    assert 'class="differs"><th>lr</th>' in response.content.decode()


def test_compare_needs_two_runs_of_the_project(member_client, team_users):
    p = team_users["project"]
    a = make_run(p, team_users["admin"], with_series=False)
    foreign = make_run(team_users["other_project"], team_users["outsider"], with_series=False)
    assert member_client.get(f"/projects/{p.pk}/compare/", {"runs": [a.pk]}).status_code == 302
    assert member_client.get(f"/projects/{p.pk}/compare/", {"runs": [a.pk, foreign.pk]}).status_code == 404


def test_the_config_is_shown_in_groups_with_changes_from_defaults_marked(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], with_series=False, optimizer="adam", lr=0.003)
    body = member_client.get(f"/runs/{run.pk}/").content.decode()
    assert body.index('<th colspan="2">Model</th>') < body.index('<th colspan="2">Optimizer</th>')
    assert '<tr class="changed"><th>optimizer</th><td>adam</td>' in body
    assert '<tr class="default"><th>momentum</th>' in body
    assert '<tr class="default"><th>csv_path</th>' in body


def test_the_embedded_chart_data_never_closes_its_script_element(member_client, team_users):
    """Series are spliced into the page as stored JSON text: a metric logged by other code under a
    hostile name is still escaped (as Django's json_script does)."""
    import json

    run = make_run(team_users["project"], team_users["admin"])
    MetricSeries.objects.create(run=run, key="</script><script>alert(1)</script>", points=[[0, 1.0]], count=1,
                                last_step=0)
    page = member_client.get(f"/runs/{run.pk}/").content.decode()
    assert "<script>alert(1)" not in page
    embedded = page.split('<script id="run-data" type="application/json">')[1].split("</script>")[0]
    assert "</script><script>alert(1)</script>" in json.loads(embedded)["series"]
