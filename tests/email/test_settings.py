"""Notification settings decide what is sent; the settings page and the admins' failed-email page."""
import pytest
from django.urls import reverse

from tests.email.conftest import HEALTHY
from tracking.models import NotificationSetting, OutboxEmail
from tracking.notifications import notify_run_ended

pytestmark = pytest.mark.django_db


def recipients_of(run, capture, inbox, expected_count):
    with capture(execute=True):
        notify_run_ended(run.pk)
    inbox.wait_for(expected_count, timeout=5 if expected_count else 0.5)
    return sorted(m["to"][0] for m in inbox.messages if f" {run.name}: " in m["msg"]["Subject"])


@pytest.fixture
def sent(smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    def to(run, expected_count):
        return recipients_of(run, django_capture_on_commit_callbacks, smtp_server.inbox, expected_count)
    return to


def test_changing_a_setting_changes_what_is_sent(team_users, make_run, sent):
    t = team_users
    # Defaults: the owner hears about their run, the other member does not.
    assert sent(make_run(t["project"], t["member"], name="r1"), 1) == ["bob@example.com"]

    NotificationSetting.objects.create(user=t["admin"], project=t["project"], mode="all")
    assert sent(make_run(t["project"], t["member"], name="r2"), 3) == ["alice@example.com", "bob@example.com"]

    NotificationSetting.objects.filter(user=t["admin"]).update(mode="recommended")
    assert sent(make_run(t["project"], t["member"], name="r3"), 5) == ["alice@example.com", "bob@example.com"]
    assert sent(make_run(t["project"], t["member"], name="r4", analysis=HEALTHY), 6) == ["bob@example.com"]

    NotificationSetting.objects.filter(user=t["admin"]).update(mode="digest")
    NotificationSetting.objects.create(user=t["member"], project=t["project"], mode="none")
    run = make_run(t["project"], t["member"], name="r5")
    assert sent(run, 0) == []
    assert not OutboxEmail.objects.filter(run=run).exists()


def test_a_stopped_run_is_sent_only_if_its_owner_asked(team_users, make_run, sent):
    t = team_users
    NotificationSetting.objects.create(user=t["admin"], project=t["project"], mode="all")
    assert sent(make_run(t["project"], t["member"], name="s1", status="stopped"), 0) == []

    NotificationSetting.objects.create(user=t["member"], project=t["project"], mode="all", include_stopped=True)
    assert sent(make_run(t["project"], t["member"], name="s2", status="stopped"), 2) == [
        "alice@example.com", "bob@example.com"]


# The settings page ---------------------------------------------------------------------------

def test_the_settings_page_lists_the_users_projects_only(client, team_users):
    client.force_login(team_users["member"])
    page = client.get(reverse("notification-settings")).content.decode()
    assert f'id="project-{team_users["project"].pk}"' in page
    assert "secret" not in page
    assert "Default: my own runs only" in page


def test_a_user_saves_a_mode_and_can_go_back_to_the_default(client, team_users):
    t = team_users
    client.force_login(t["member"])
    url = reverse("notification-settings")

    response = client.post(url, {"project": t["project"].pk, "mode": "recommended", "include_stopped": "on"})

    assert response.status_code == 302
    setting = NotificationSetting.objects.get(user=t["member"], project=t["project"])
    assert (setting.mode, setting.include_stopped) == ("recommended", True)
    client.post(url, {"project": t["project"].pk, "mode": ""})
    assert not NotificationSetting.objects.filter(user=t["member"]).exists()


@pytest.mark.parametrize("data, field", [
    ({"mode": "hourly"}, "mode"),
    ({"mode": ""}, "project"),
    ({"project": "abc", "mode": "all"}, "project"),
    ({"mode": "", "include_stopped": "on"}, "include_stopped"),
])
def test_bad_input_names_the_field_and_changes_nothing(client, team_users, data, field):
    t = team_users
    NotificationSetting.objects.create(user=t["member"], project=t["project"], mode="all")
    client.force_login(t["member"])
    data = {"project": t["project"].pk, **data} if field != "project" else data

    response = client.post(reverse("notification-settings"), data)

    assert response.status_code == 400
    assert f"<li>{field}: " in response.content.decode()
    assert NotificationSetting.objects.get(user=t["member"]).mode == "all"


def test_a_project_of_another_team_is_not_found(client, team_users):
    client.force_login(team_users["member"])
    response = client.post(reverse("notification-settings"),
                           {"project": team_users["other_project"].pk, "mode": "all"})
    assert response.status_code == 404
    assert not NotificationSetting.objects.exists()


# Failed emails, for team admins ------------------------------------------------------------------

@pytest.fixture
def failed_email(team_users, make_run):
    run = make_run(team_users["project"], team_users["member"])
    return OutboxEmail.objects.create(key=f"run:{run.pk}:user:{team_users['member'].pk}:run_ended",
                                      kind="run_ended", recipient=team_users["member"], team=team_users["team"],
                                      run=run, state="failed", attempts=7,
                                      error="after 7 attempts: ConnectionRefusedError: [Errno 111]")


def test_team_admins_see_failed_emails_with_their_error(client, team_users, failed_email):
    client.force_login(team_users["admin"])
    page = client.get(reverse("team-failed-emails", args=[team_users["team"].pk])).content.decode()
    assert "bob@example.com" in page and "ConnectionRefusedError: [Errno 111]" in page


@pytest.mark.parametrize("who", ["member", "outsider"])
def test_others_cannot_see_a_teams_failed_emails(client, team_users, failed_email, who):
    client.force_login(team_users[who])
    assert client.get(reverse("team-failed-emails", args=[team_users["team"].pk])).status_code == 404
    retry = client.post(reverse("outbox-email-retry", args=[team_users["team"].pk, failed_email.pk]))
    assert retry.status_code == 404
    failed_email.refresh_from_db()
    assert failed_email.state == "failed"


def test_an_admin_retries_a_failed_email_and_it_is_sent_once(
        client, team_users, failed_email, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    client.force_login(team_users["admin"])
    url = reverse("outbox-email-retry", args=[team_users["team"].pk, failed_email.pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url).status_code == 302
        client.post(url)  # a double click
    assert [m["to"] for m in smtp_server.inbox.wait_for(2, timeout=1)] == [["bob@example.com"]]
    failed_email.refresh_from_db()
    assert failed_email.state == "sent"
    assert client.get(url).status_code == 405  # GET changes nothing
