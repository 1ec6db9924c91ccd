"""Uploaded CSVs: read at upload by the worker's own reader (tracking.datasets), with every
problem named by file and row or column; owned by the uploading team; removed when the
submission is rejected."""
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.web.test_run_setup import form_data
from tracking.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_files(media):
    return sorted(p.name for p in Path(media).rglob("*") if p.is_file())


def upload(client, project, content, *, name="data.csv", label="label", **config):
    return client.post(f"/projects/{project.pk}/runs/new/",
                       form_data(dataset="csv", csv_label=label, csv_file=SimpleUploadedFile(name, content, "text/csv"),
                                 **config))


def csv_error(response):
    form = response.context["form"]
    return " ".join(str(e) for field in ("csv_file", "csv_label") for e in form.errors.get(field, []))


def test_a_1_mb_csv_with_100000_distinct_ids_is_refused_at_upload_naming_the_column(member_client, team_users, media):
    rows = "".join(f"u{i:06d},{i % 7},{i % 2}\n" for i in range(100_000))
    content = ("id,x,label\n" + rows).encode()
    assert 1_000_000 < len(content) < 1_500_000
    response = upload(member_client, team_users["project"], content, name="users.csv")
    assert response.status_code == 400
    message = csv_error(response)
    assert "users.csv" in message and "column 'id'" in message and "CSV_MAX_CATEGORIES" in message
    assert not Run.objects.exists() and stored_files(media) == []


@pytest.mark.parametrize("content, expected", [
    ("a,b,label\n1,2,0\n3,é,1\n".encode("latin-1"), "row 3 is not UTF-8"),
    (b"a,b,label\n1,2,0\n3,4\n5,6,1\n", "row 3 has 2 fields, the header has 3"),
    (b"a,b,label\n", "a header but no data rows"),
    (b"a,b,label\n1,2,0\n3,4,0\n", "the label column 'label' has a single class ('0')"),
    (b"\n \n", "the file is empty"),
    (b"a,a,label\n1,2,0\n3,4,1\n", "column 'a' appears twice"),
    (b"label\n0\n1\n", "no feature column besides the label"),
])
def test_a_bad_csv_is_refused_at_upload_naming_the_file_and_the_row_or_column(
        member_client, team_users, media, content, expected):
    response = upload(member_client, team_users["project"], content, name="bad.csv")
    assert response.status_code == 400
    message = csv_error(response)
    assert "bad.csv" in message and expected in message, message
    assert not Run.objects.exists() and stored_files(media) == []


def test_a_bom_spaces_in_names_and_a_small_text_column_are_accepted(member_client, team_users, media):
    content = "\ufeff size , colour , the label \n1.5,red,yes\n2.5,blue,no\n3.5,red,yes\n".encode()
    response = upload(member_client, team_users["project"], content, label="the label")
    assert response.status_code == 302, response.context and response.context["form"].errors
    run = Run.objects.get()
    assert Path(run.config["csv_path"]).read_bytes() == content
    assert Path(run.config["csv_path"]).parent.name == f"team-{team_users['team'].pk}"


def test_a_run_of_another_team_cannot_use_the_upload_through_the_form_or_the_api(
        member_client, outsider_client, team_users, media):
    upload(member_client, team_users["project"], b"a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    path = Run.objects.get().config["csv_path"]
    other = team_users["other_project"]
    form = outsider_client.post(f"/projects/{other.pk}/runs/new/",
                                form_data(dataset="csv", csv_label="label", csv_path=path))
    assert form.status_code == 400 and "csv_path" in str(form.context["form"].errors)
    api = outsider_client.post("/api/runs/", {"project": other.pk, "config": {
        "dataset": "csv", "csv_path": path, "csv_label": "label"}}, content_type="application/json")
    assert api.status_code == 400 and api.json()["field"] == "csv_path"
    assert Run.objects.filter(project=other).count() == 0
    # the owning team may use it again
    mine = member_client.post("/api/runs/", {"project": team_users["project"].pk, "config": {
        "dataset": "csv", "csv_path": path, "csv_label": "label"}}, content_type="application/json")
    assert mine.status_code == 201, mine.json()


def test_the_upload_of_a_rejected_submission_is_removed(member_client, team_users, media):
    content = b"a,b,label\n1,2,0\n3,4,1\n5,6,0\n"
    response = upload(member_client, team_users["project"], content, width=4096, depth=16)
    assert response.status_code == 400 and "width/depth" in str(response.context["form"].errors)
    assert not Run.objects.exists() and stored_files(media) == []
    other_run = Run.objects.create(project=team_users["other_project"], owner=team_users["outsider"], name="x",
                                   config={})
    response = upload(member_client, team_users["project"], content, init_from_run=other_run.pk)
    assert response.status_code == 400 and "init_from_run" in str(response.context["form"].errors)
    assert Run.objects.filter(project=team_users["project"]).count() == 0 and stored_files(media) == []


def test_a_label_other_than_the_uploaded_one_is_checked_when_the_run_is_created(member_client, team_users, media):
    upload(member_client, team_users["project"], b"a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    path = Run.objects.get().config["csv_path"]
    api = member_client.post("/api/runs/", {"project": team_users["project"].pk, "config": {
        "dataset": "csv", "csv_path": path, "csv_label": "nope"}}, content_type="application/json")
    assert api.status_code == 400 and api.json()["field"] == "csv_label" and "no column 'nope'" in api.json()["detail"]
