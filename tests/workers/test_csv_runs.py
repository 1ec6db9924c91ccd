"""An uploaded CSV trains on a real worker through the same reader as the upload form; a file that
went bad after its upload fails its run naming the file as uploaded and the row, never a path on
the server. Real redis-server, real Celery worker process, the real MLflow store."""
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.waiting import wait_for
from tests.web.test_run_setup import form_data
from tracking.config import validate_config
from tracking.datasets import uploads
from tracking.models import Run
from workers.dispatch import enqueue_run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def rows(n):
    return "".join(f"{i % 5 + 0.5 * (i % 2)},{['red', 'blue', 'green'][i % 3]},{'yes' if i % 2 else 'no'}\n"
                   for i in range(n))


def upload(team_users, content, name):
    client = Client()
    client.force_login(team_users["member"])
    response = client.post(f"/projects/{team_users['project'].pk}/runs/new/", form_data(
        dataset="csv", csv_label="the label", epochs=3,
        csv_file=SimpleUploadedFile(name, content, "text/csv")))
    assert response.status_code == 302, response.context and response.context["form"].errors
    return Run.objects.latest("pk")


def test_an_upload_with_a_bom_spaces_and_a_text_column_trains_and_a_spoiled_one_fails_naming_the_row(
        celery_worker_process, team_users):
    good = upload(team_users, ("\ufeff size , colour , the label \n" + rows(120)).encode(), "shop.csv")
    wait_for(lambda: Run.objects.get(pk=good.pk).status in Run.FINAL, 120, "the run's end",
             log=celery_worker_process.log)
    good.refresh_from_db()
    assert good.status == "succeeded", good.status_reason

    # stored as the form stores an upload, then spoiled on disk before its run trains
    file = SimpleUploadedFile("later.csv", ("size,colour,the label\n" + rows(60)).encode(), "text/csv")
    path = uploads.csv_store(uploaded=file, team_id=team_users["team"].pk,
                             summary=uploads.csv_check(uploaded=file, label="the label"))
    with open(path, "a") as f:
        f.write("1,red\n")  # a ragged row 62
    spoiled = Run.objects.create(project=team_users["project"], owner=team_users["member"], name="spoiled",
                                 config=validate_config({"dataset": "csv", "csv_path": path,
                                                         "csv_label": "the label", "epochs": 3}))
    assert enqueue_run(spoiled.pk)
    wait_for(lambda: Run.objects.get(pk=spoiled.pk).status in Run.FINAL, 120, "the run's end",
             log=celery_worker_process.log)
    spoiled.refresh_from_db()
    assert spoiled.status == "failed"
    assert "later.csv: row 62 has 2 fields, the header has 3" in spoiled.status_reason
    assert str(Path(path).parent) not in spoiled.status_reason and "media" not in spoiled.status_reason
