"""Setting up a run: the form shows every config key, validates with the one validator, and a run
is written first and put on its Redis queue only when the transaction commits."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tracking.config import DEFAULTS, FIELDS
from tracking.models import Run
from tracking.services import run_create


def form_data(**overrides):
    data = {k: v for k, v in DEFAULTS.items() if v is not None and k != "csv_path"}
    data = {k: v for k, v in data.items() if not isinstance(v, bool) or v}  # unchecked boxes are absent
    data.update(name="first", tags="baseline, sgd", note="hello")
    data.update(overrides)
    return data


def queued_messages(redis_server, queue):
    return [json.loads(m) for m in redis_server["client"].lrange(queue, 0, -1)]


def test_the_form_shows_every_config_key_grouped_with_help_and_defaults(member_client, team_users):
    body = member_client.get(f"/projects/{team_users['project'].pk}/runs/new/").content.decode()
    for title in ("Data", "Model", "Optimizer", "Schedule", "Regularisation", "Execution"):
        assert f"<legend>{title}</legend>" in body
    for key in FIELDS:
        assert f'name="{key}"' in body, key
    assert FIELDS["warmup_epochs"].description in body
    assert 'name="lr" value="0.01"' in body


def test_a_bad_value_is_reported_on_its_field_and_nothing_is_written(member_client, team_users, redis_server):
    url = f"/projects/{team_users['project'].pk}/runs/new/"
    response = member_client.post(url, form_data(lr="-1"))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["lr"] and errors["lr"][0].startswith("lr:")
    assert not Run.objects.exists()
    assert queued_messages(redis_server, "cpu") == []


def test_a_cross_field_error_names_its_field(member_client, team_users):
    url = f"/projects/{team_users['project'].pk}/runs/new/"
    response = member_client.post(url, form_data(optimizer="adam", nesterov="on", momentum="0.9"))
    assert "nesterov" in response.context["form"].errors
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_good_run_is_written_then_queued_on_commit(client, team_users, redis_server):
    client.force_login(team_users["member"])
    response = client.post(f"/projects/{team_users['project'].pk}/runs/new/",
                           form_data(lr="0.05", optimizer="adam", queue="gpu"))
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (run.status, run.queue, run.config["lr"], run.config["optimizer"]) == ("queued", "gpu", 0.05, "adam")
    assert sorted(t.name for t in run.tags.all()) == ["baseline", "sgd"] and run.note == "hello"
    messages = queued_messages(redis_server, "gpu")
    assert len(messages) == 1 and messages[0]["headers"]["argsrepr"] == f"[{run.pk}]"
    assert run.owner == team_users["member"]
    run.refresh_from_db()
    assert run.enqueued_at is not None


def test_run_create_enqueues_nothing_until_commit(team_users, redis_server, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = run_create(project=team_users["project"], owner=team_users["admin"], config={"epochs": 2})
    assert Run.objects.filter(pk=run.pk).exists() and len(callbacks) == 1
    assert queued_messages(redis_server, "cpu") == []
    callbacks[0]()
    assert len(queued_messages(redis_server, "cpu")) == 1


def test_a_csv_upload_is_stored_and_its_label_column_checked(member_client, team_users, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    url = f"/projects/{team_users['project'].pk}/runs/new/"
    csv = b"a,b,label\n1,2,0\n3,4,1\n"
    bad = member_client.post(url, form_data(dataset="csv", csv_label="target",
                                            csv_file=SimpleUploadedFile("d.csv", csv, "text/csv")))
    assert "csv_label" in bad.context["form"].errors and not Run.objects.exists()
    member_client.post(url, form_data(dataset="csv", csv_label="label",
                                      csv_file=SimpleUploadedFile("d.csv", csv, "text/csv")))
    run = Run.objects.get()
    assert run.config["csv_label"] == "label"
    assert run.config["csv_path"].startswith(str(tmp_path / "csv"))
    assert open(run.config["csv_path"], "rb").read() == csv


def test_a_csv_path_outside_the_uploads_is_refused(member_client, team_users):
    response = member_client.post(f"/projects/{team_users['project'].pk}/runs/new/",
                                  form_data(dataset="csv", csv_label="x", csv_path="/etc/passwd"))
    assert "csv_path" in str(response.context["form"].errors)
    assert not Run.objects.exists()


def test_clone_and_edit_prefills_the_form_and_records_the_parent(member_client, team_users):
    from tests.web.conftest import make_run
    parent = make_run(team_users["project"], team_users["admin"], name="base", lr=0.2, optimizer="sgd")
    page = member_client.get(f"/runs/{parent.pk}/clone/").content.decode()
    assert 'name="lr" value="0.2"' in page and "base (clone)" in page
    member_client.post(f"/runs/{parent.pk}/clone/", form_data(name="child", lr="0.1"))
    child = Run.objects.get(name="child")
    assert child.parent == parent and child.config["lr"] == 0.1
    assert f'href="/runs/{parent.pk}/"' in member_client.get(f"/runs/{child.pk}/").content.decode()
    assert "child" in member_client.get(f"/runs/{parent.pk}/").content.decode()
