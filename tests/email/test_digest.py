"""The daily digest: one email per user, the day's finished runs grouped by project, their
outcomes and recommendations, and the applied recommendations that helped."""
import datetime as dt

import pytest
from django.utils import timezone

from tests.email.conftest import HEALTHY, parts
from tracking.email_tasks import send_daily_digests
from tracking.models import Membership, NotificationSetting, Project
from tracking.notifications import digests_create

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 22)


def at(hour, day=DAY):
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.timezone.utc)


@pytest.fixture
def digest_world(team_users, make_run):
    t = team_users
    nlp = Project.objects.create(team=t["team"], name="nlp")
    for user, project in [(t["admin"], t["project"]), (t["admin"], nlp), (t["member"], t["project"]),
                          (t["outsider"], t["other_project"])]:
        NotificationSetting.objects.create(user=user, project=project, mode="digest")
    runs = dict(
        v1=make_run(t["project"], t["member"], name="vision a", finished_at=at(9)),
        v2=make_run(t["project"], t["admin"], name="vision b", finished_at=at(15), status="diverged"),
        n1=make_run(nlp, t["admin"], name="nlp a", finished_at=at(23), analysis=HEALTHY),
        old=make_run(t["project"], t["member"], name="vision old", finished_at=at(12, DAY - dt.timedelta(days=1))),
        s1=make_run(t["other_project"], t["outsider"], name="secret a", finished_at=at(10)),
    )
    return dict(t, nlp=nlp, runs=runs)


def send_digests(capture, day=DAY):
    with capture(execute=True):
        return digests_create(day)


def sections(text):
    """{"Team / project": [run names]} from the digest's text part."""
    out, current = {}, None
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:].rsplit(" (", 1)[0]
            out[current] = []
        elif current and line.startswith("- ") and " by " in line:
            out[current].append(line[2:].split(" by ")[0])
    return out


def test_the_digest_groups_the_days_runs_by_user_and_project(
        digest_world, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    rows = send_digests(django_capture_on_commit_callbacks)

    assert sorted(r.recipient.username for r in rows) == ["alice", "bob", "eve"]
    smtp_server.inbox.wait_for(3)
    by_user = {m["to"][0]: m["msg"] for m in smtp_server.inbox.messages}
    assert sorted(by_user) == ["alice@example.com", "bob@example.com", "eve@example.com"]
    texts = {who: parts(msg)["text/plain"].get_content() for who, msg in by_user.items()}
    assert sections(texts["alice@example.com"]) == {"Vision / nlp": ["nlp a"],
                                                    "Vision / vision": ["vision a", "vision b"]}
    assert sections(texts["bob@example.com"]) == {"Vision / vision": ["vision a", "vision b"]}
    assert sections(texts["eve@example.com"]) == {"Other / secret": ["secret a"]}
    assert by_user["alice@example.com"]["Subject"] == "Runwise daily digest 2026-11-22: 3 finished runs"
    alice_html = parts(by_user["alice@example.com"])["text/html"].get_content()
    assert "vision old" not in texts["alice@example.com"] and "vision old" not in alice_html
    # Outcomes and recommendations
    assert "vision b by alice: diverged; overfitting, raise weight_decay to 5e-4" in texts["alice@example.com"]
    assert "nlp a by alice: succeeded; healthy, no change recommended" in texts["alice@example.com"]
    assert "1. raise weight_decay to 5e-4 (confidence 70%)" in texts["bob@example.com"]
    assert alice_html.count(">raise weight_decay to 5e-4</a>") == 2


def test_the_digest_shows_the_applied_recommendations_that_helped(
        team_users, make_run, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    t = team_users
    NotificationSetting.objects.create(user=t["member"], project=t["project"], mode="digest")
    parent = make_run(t["project"], t["member"], name="run 41", finished_at=at(8, DAY - dt.timedelta(days=1)))
    rec = parent.recommendations.get(rank=0)
    rec.helped = True
    rec.state = "applied"
    rec.save()
    make_run(t["project"], t["member"], name="run 42", finished_at=at(10), parent=parent, applied=rec,
             analysis=HEALTHY)
    unhelpful = parent.recommendations.get(rank=1)
    unhelpful.helped = False
    unhelpful.save()
    make_run(t["project"], t["member"], name="run 43", finished_at=at(11), parent=parent, applied=unhelpful,
             analysis=HEALTHY)

    send_digests(django_capture_on_commit_callbacks)

    text = parts(smtp_server.inbox.wait_for(1)[0]["msg"])["text/plain"].get_content()
    helped = text.split("Applied recommendations that helped:")[1]
    assert "raise weight_decay to 5e-4 (from run 41" in helped
    assert "run 42 improved val_loss" in helped
    assert "dropout" not in helped


def test_a_second_digest_run_for_the_same_day_sends_nothing_new(
        digest_world, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    assert len(send_digests(django_capture_on_commit_callbacks)) == 3
    smtp_server.inbox.wait_for(3)
    assert send_digests(django_capture_on_commit_callbacks) == []
    assert len(smtp_server.inbox.wait_for(4, timeout=1)) == 3


def test_no_digest_for_a_day_without_runs_nor_for_a_team_the_user_left(
        digest_world, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    assert send_digests(django_capture_on_commit_callbacks, DAY + dt.timedelta(days=3)) == []
    Membership.objects.filter(team=digest_world["team"], user=digest_world["member"]).delete()
    rows = send_digests(django_capture_on_commit_callbacks)
    assert sorted(r.recipient.username for r in rows) == ["alice", "eve"]


def test_the_beat_task_sends_yesterdays_digest_by_default(
        team_users, make_run, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    t = team_users
    NotificationSetting.objects.create(user=t["member"], project=t["project"], mode="digest")
    yesterday = (timezone.now() - dt.timedelta(days=1)).date()
    make_run(t["project"], t["member"], name="late run", finished_at=at(12, yesterday))
    make_run(t["project"], t["member"], name="today run", finished_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        assert send_daily_digests.apply().get() == 1

    text = parts(smtp_server.inbox.wait_for(1)[0]["msg"])["text/plain"].get_content()
    assert "late run" in text and "today run" not in text
