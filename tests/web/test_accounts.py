"""Accounts: login throttling (django-axes), Django's four password validators, API tokens revoked
on a password change, the proxy header trusted only behind a proxy, and a Content-Security-Policy."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]


def login(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def signed_in(client):
    return client.get("/").status_code == 200


def test_failed_logins_lock_the_username_from_that_address_out(team_users):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(attacker, "bob", f"guess-{i}").status_code == 200  # the form again, with its error
    assert login(attacker, "bob", "guess-last").status_code == 429  # the limit-th failure locks
    # forging another address does not help without a proxy in front
    locked = login(attacker, "bob", "pw-bob-123", HTTP_X_FORWARDED_FOR=f"198.51.100.{secrets.randbelow(200)}")
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
    assert not signed_in(attacker)
    # bob from his own address is not locked out by someone else's guesses
    bob = Client(REMOTE_ADDR="192.0.2.10")
    assert login(bob, "bob", "pw-bob-123").status_code == 302 and signed_in(bob)


def test_a_successful_login_resets_the_count(team_users):
    client = Client(REMOTE_ADDR="192.0.2.20")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "bob", "wrong")
    assert login(client, "bob", "pw-bob-123").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "bob", "wrong")
    assert login(client, "bob", "pw-bob-123").status_code == 302


@pytest.mark.parametrize("new, reason", [
    ("bob@example.com", "too similar to the email address"),
    ("short1!", "too short"),
    ("password123", "too common"),
    ("83751928374651", "entirely numeric"),
])
def test_a_weak_new_password_is_refused(member_client, team_users, new, reason):
    response = member_client.post("/accounts/password_change/", {
        "old_password": "pw-bob-123", "new_password1": new, "new_password2": new})
    assert response.status_code == 200 and reason in response.content.decode()
    team_users["member"].refresh_from_db()
    assert team_users["member"].check_password("pw-bob-123")


def test_a_password_change_revokes_the_users_api_tokens(member_client, team_users):
    member, admin = team_users["member"], team_users["admin"]
    token = Token.objects.create(user=member)
    others = Token.objects.create(user=admin)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get("/api/runs/").status_code == 200
    member.last_login = member.date_joined
    member.save(update_fields=["last_login"])  # other saves keep the token
    assert Token.objects.filter(pk=token.pk).exists()
    changed = member_client.post("/accounts/password_change/", {
        "old_password": "pw-bob-123", "new_password1": "Quartz-Lantern-42", "new_password2": "Quartz-Lantern-42"})
    assert changed.status_code == 302
    assert api.get("/api/runs/").status_code == 401
    assert not Token.objects.filter(user=member).exists() and Token.objects.filter(pk=others.pk).exists()
    admin.set_password("Another-Strong-Pass-9")  # the admin site, changepassword, a reset: the same
    admin.save()
    assert not Token.objects.filter(user=admin).exists()


def production_request(behind_proxy):
    """In a production settings process: is a plain-http request claiming X-Forwarded-Proto: https
    taken as secure? (If not, SECURE_SSL_REDIRECT sends it to https.)"""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE", "BEHIND_PROXY")}
    env.update(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="testserver")
    if behind_proxy is not None:
        env["BEHIND_PROXY"] = behind_proxy
    code = ("from django.test import Client; r = Client().get('/accounts/login/', HTTP_X_FORWARDED_PROTO='https'); "
            "print(r.status_code, r.get('Location', ''))")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_proxy_header_is_trusted_only_when_a_proxy_is_said_to_be_in_front():
    assert production_request(None) == "301 https://testserver/accounts/login/"  # forged: not trusted
    assert production_request("false") == "301 https://testserver/accounts/login/"
    assert production_request("true").startswith("200")


def test_every_page_has_a_content_security_policy_refusing_inline_scripts(member_client, team_users):
    directives = dict(d.strip().split(" ", 1) for d in member_client.get("/")["Content-Security-Policy"].split(";"))
    assert directives["script-src"] == "'self'"  # a page with an inline script adds its nonce (browser test)
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'" and directives["form-action"] == "'self'"
