"""Races are settled by the database (row locks, conditional updates, unique constraints), not by
a check before a write: requests sent at once, from threads with their own connections to the
(file) SQLite test database, as two browsers would."""
import threading
import time

import pytest
from django.db import connection
from django.test import Client

from tracking import services
from tracking.config import ConfigError, validate_config
from tracking.models import Autopilot, Membership, Project, Recommendation, Run, Team

pytestmark = pytest.mark.django_db(transaction=True)


def slow_database(execute, sql, params, many, context):
    """Every query 20 ms slower, as on a busy database server: a check-then-write that leaves a
    window between the two loses the race every time, one settled by the database never does."""
    time.sleep(0.02)
    return execute(sql, params, many, context)


def at_once(*calls):
    """Run the calls in threads released together; their results (an exception fails the test)."""
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def body(i):
        try:
            barrier.wait(10)
            with connection.execute_wrapper(slow_database):
                results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def signed_in(user):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def post(client, url, data=None):
    return lambda: client.post(url, data or {}).status_code


def test_two_admins_removing_each_other_at_once_leave_one_admin(django_user_model):
    teams = []
    for i in range(4):
        team = Team.objects.create(name=f"team {i}")
        a = django_user_model.objects.create_user(f"a{i}", password="pw-a-123456")
        b = django_user_model.objects.create_user(f"b{i}", password="pw-b-123456")
        ma = Membership.objects.create(team=team, user=a, role=Membership.ADMIN)
        mb = Membership.objects.create(team=team, user=b, role=Membership.ADMIN)
        teams.append((team, signed_in(a), signed_in(b), ma, mb))
    for team, a, b, ma, mb in teams:
        statuses = at_once(post(a, f"/teams/{team.pk}/members/{mb.pk}/remove/"),
                           post(b, f"/teams/{team.pk}/members/{ma.pk}/remove/"))
        assert all(s in (302, 404) for s in statuses), statuses
    left = [Membership.objects.filter(team=team, role=Membership.ADMIN).count() for team, *_ in teams]
    assert left == [1] * 4, left


@pytest.fixture
def analysed_run(team_users):
    config = validate_config({"dataset": "wine", "epochs": 3})
    run = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="base", config=config,
                             status=Run.Status.SUCCEEDED, best_val_loss=0.3)
    rec = Recommendation.objects.create(run=run, rule="overfitting.raise_weight_decay", diagnosis="overfitting",
                                        change={"weight_decay": 0.001}, rationale="r", confidence=0.7)
    return run, rec


def test_apply_clicked_four_times_at_once_makes_one_follow_up(team_users, analysed_run):
    run, rec = analysed_run
    clients = [signed_in(team_users["member"]) for _ in range(4)]
    statuses = at_once(*(post(c, f"/recommendations/{rec.pk}/apply/") for c in clients))
    assert statuses == [302] * 4
    assert Run.objects.filter(parent=run, applied_recommendation=rec).count() == 1
    assert Recommendation.objects.get(pk=rec.pk).state == "applied"


def test_a_dismissed_recommendation_cannot_be_applied(team_users, analysed_run):
    run, rec = analysed_run
    member = signed_in(team_users["member"])
    assert member.post(f"/recommendations/{rec.pk}/dismiss/").status_code == 302
    response = member.post(f"/recommendations/{rec.pk}/apply/", follow=True)
    assert "This recommendation was already dismissed." in response.content.decode()
    assert not Run.objects.filter(parent=run).exists()
    assert Recommendation.objects.get(pk=rec.pk).state == "dismissed"
    with pytest.raises(services.ServiceError):
        services.recommendation_apply(rec=rec, user=team_users["member"])


def test_apply_and_dismiss_at_once_end_consistent(team_users, analysed_run):
    run, rec = analysed_run
    a, b = signed_in(team_users["member"]), signed_in(team_users["admin"])
    at_once(post(a, f"/recommendations/{rec.pk}/apply/"), post(b, f"/recommendations/{rec.pk}/dismiss/"))
    state = Recommendation.objects.get(pk=rec.pk).state
    followups = Run.objects.filter(parent=run).count()
    assert (state, followups) in (("applied", 1), ("dismissed", 0))


def test_tune_this_run_clicked_four_times_at_once_starts_one_autopilot(team_users, analysed_run):
    run, _ = analysed_run
    clients = [signed_in(team_users["member"]) for _ in range(4)]
    statuses = at_once(*(post(c, f"/runs/{run.pk}/autopilot/", {"max_rounds": "2"}) for c in clients))
    assert statuses == [302] * 4
    assert Autopilot.objects.filter(start_run=run, state="running").count() == 1


def test_a_project_name_submitted_twice_at_once_is_one_project_and_a_form_error(team_users):
    team = team_users["team"]
    clients = [signed_in(team_users["member"]) for _ in range(3)]
    statuses = at_once(*(post(c, f"/teams/{team.pk}/projects/new/", {"name": "audio"}) for c in clients))
    assert statuses == [302] * 3  # no 500
    assert Project.objects.filter(team=team, name="audio").count() == 1
    with pytest.raises(ConfigError) as exc:  # past the form's check: the unique constraint decides
        services.project_create(team=team, name="audio")
    assert exc.value.field == "name"
