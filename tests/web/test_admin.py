"""Django admin for staff: every tracking model is registered and its list and add pages open."""
from django.apps import apps
from django.contrib import admin

from tests.web.conftest import make_run


def test_every_tracking_model_is_in_the_admin_for_staff(client, team_users, django_user_model):
    staff = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(staff)
    make_run(team_users["project"], team_users["admin"])
    registered = set(admin.site._registry)
    for model in apps.get_app_config("tracking").get_models():
        if model not in registered:
            continue
        url = f"/admin/tracking/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
    for name in ("team", "membership", "project", "run", "metricseries", "recommendation", "outboxemail"):
        assert any(m._meta.model_name == name for m in registered), name


def test_the_admin_is_closed_to_non_staff(member_client):
    response = member_client.get("/admin/tracking/run/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
