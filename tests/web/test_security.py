"""Security: every URL taking an object id is closed to other teams, login everywhere, CSRF on,
user text escaped, and GET never changes state. URL patterns are read from the URLconf."""
import re

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from tests.web.conftest import make_run
from tracking.models import Invite, Membership, OutboxEmail, Recommendation, Tag

PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def all_patterns(patterns=None, prefix=""):
    """(route, name) for every URL pattern, admin excluded (it is staff-only and has its own checks)."""
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(p, URLResolver):
            if getattr(p, "app_name", None) == "admin":
                continue
            yield from all_patterns(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.name


def with_ids(route, ids):
    """The route with each <param> replaced by the id of the team's object it names."""
    def value(match):
        name = match.group(2)
        for word, key in (("membership", "membership"), ("member", "membership"), ("team", "team"),
                          ("project", "project"), ("rec", "recommendation"), ("tag", "tag"), ("run", "run"),
                          ("token", "invite"), ("outbox", "outbox"), ("email", "outbox"), ("sweep", "sweep"),
                          ("pilot", "autopilot")):
            if word in name and key in ids:
                return str(ids[key])
        return str(ids["run"] if route.startswith("api/runs") else ids["fallback"])
    return "/" + PARAM.sub(value, route)


@pytest.fixture
def victim(team_users):
    """A team's objects, one of each kind an URL can name."""
    run = make_run(team_users["project"], team_users["admin"], name="victim", status="running")
    rec = Recommendation.objects.create(run=run, rule="overfitting.raise_weight_decay", diagnosis="overfitting",
                                        change={"weight_decay": 0.001}, rationale="r", confidence=0.7)
    tag = Tag.objects.create(project=team_users["project"], name="t")
    membership = Membership.objects.get(team=team_users["team"], user=team_users["member"])
    invite = Invite.objects.create(team=team_users["team"], created_by=team_users["admin"])
    outbox = OutboxEmail.objects.create(key=f"run:{run.pk}:test", kind="run_ended", recipient=team_users["admin"],
                                        team=team_users["team"], run=run)
    others = other_team_objects(team_users, run)
    return {**others, "outbox": outbox.pk, "run": run.pk, "project": team_users["project"].pk, "team": team_users["team"].pk,
            "membership": membership.pk, "recommendation": rec.pk, "tag": tag.pk, "invite": invite.token,
            "fallback": run.pk}


def other_team_objects(team_users, run):
    """Objects of the other helpers' models (sweeps, autopilots), when their fields are as expected."""
    made = {}
    factories = {
        "sweep": ("Sweep", dict(project=team_users["project"], owner=team_users["admin"], name="s",
                                base_config=run.config, space={"lr": {"low": 0.001, "high": 0.1, "log": True}})),
        "autopilot": ("Autopilot", dict(project=team_users["project"], owner=team_users["admin"], start_run=run)),
    }
    for key, (model_name, fields) in factories.items():
        try:
            with transaction.atomic():
                made[key] = apps.get_model("tracking", model_name).objects.create(**fields).pk
        except (LookupError, TypeError, IntegrityError) as exc:
            print(f"no victim {model_name} for the URL walk ({exc}); its URLs get an unrelated id")
    return made


def fingerprint():
    """Every row of the tracking app (and tokens), to compare before and after a request."""
    rows = {}
    for model in list(apps.get_app_config("tracking").get_models()) + [Token]:
        rows[model.__name__] = sorted(map(repr, model.objects.values()))
    return rows


def id_patterns():
    return [(route, name) for route, name in all_patterns() if PARAM.search(route) and "<token>" not in route
            and "<str:token>" not in route]


def test_the_walk_finds_the_object_urls():
    routes = [r for r, _ in id_patterns()]
    for expected in ("runs/<id:run_id>/", "projects/<id:project_id>/", "teams/<id:team_id>/",
                     "api/runs/<id:pk>/"):
        assert expected in routes


def test_every_url_with_an_object_id_is_404_or_403_for_another_team(team_users, victim):
    outsider = Client()
    outsider.force_login(team_users["outsider"])
    Token.objects.create(user=team_users["outsider"])
    before = fingerprint()
    checked = []
    for route, name in id_patterns():
        url = with_ids(route, victim)
        answers = {method: getattr(outsider, method)(url).status_code for method in ("get", "post")}
        assert set(answers.values()) <= {403, 404, 405}, (url, answers)
        assert set(answers.values()) != {405}, (url, answers)
        checked.append(url)
    assert fingerprint() == before
    assert len(checked) >= 12


def test_login_is_required_everywhere_but_the_login_page(team_users, victim):
    anonymous = Client()
    for route, name in all_patterns():
        url = with_ids(route, victim)
        response = anonymous.get(url)
        if route.startswith("api/"):
            assert response.status_code in (401, 403), url
        elif name == "login":
            assert response.status_code == 200
        elif route == "favicon.ico":  # public: the browser asks for it on the login page too
            assert response.status_code == 301 and response["Location"].startswith("/static/"), url
        elif route.startswith("accounts/password_reset") or route.startswith("accounts/reset/"):
            assert response.status_code in (200, 302), url  # password reset by email is for the signed out
        elif name in ("invite", "invite-signup", "invite-accept"):
            assert response.status_code in (200, 302, 405), url  # an invite lets a person without an account sign up
        else:
            assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_get_never_changes_state(team_users, victim):
    admin = Client()
    admin.force_login(team_users["admin"])
    before = fingerprint()
    for route, name in all_patterns():
        if name in ("logout",):
            continue
        admin.get(with_ids(route, victim))
    assert fingerprint() == before


def test_csrf_is_enforced_on_forms(team_users, victim):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(team_users["admin"])
    assert strict.post(f"/runs/{victim['run']}/stop/").status_code == 403
    assert strict.post(f"/teams/{victim['team']}/invites/new/").status_code == 403
    page = strict.get(f"/runs/{victim['run']}/")
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()


def test_run_names_notes_and_tags_are_escaped(member_client, team_users):
    evil = "<script>alert('x')</script>"
    p = team_users["project"]
    a = make_run(p, team_users["admin"], name=evil)
    b = make_run(p, team_users["admin"], name="plain")
    a.note = evil
    a.save()
    a.tags.add(Tag.objects.create(project=p, name="<script>t</script>"))
    pages = [f"/projects/{p.pk}/", f"/runs/{a.pk}/", f"/projects/{p.pk}/compare/?runs={a.pk}&runs={b.pk}",
             f"/runs/{a.pk}/clone/"]
    for url in pages:
        body = member_client.get(url).content.decode()
        assert "<script>alert" not in body and "<script>t</script>" not in body, url
        assert "&lt;script&gt;alert" in body or "\\u003Cscript\\u003Ealert" in body, url
