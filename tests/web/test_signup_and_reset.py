"""Accounts in a browser: a person without an account signs up through an invite link and joins the
team in one step (Django's password validators); password reset by email (Django's views, a real
SMTP server on loopback); removing the last admin is refused and stays on the team page."""
import re

import pytest
from django.contrib.auth import get_user_model

from tests.email.conftest import SmtpServer, free_port
from tests.web.conftest import sign_in
from tracking import services
from tracking.models import Membership

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def smtp(settings):
    server = SmtpServer(free_port()).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 5
    yield server
    server.stop()


def test_an_invited_person_without_an_account_signs_up_and_joins_in_one_step(page, team_users):
    invite = services.invite_create(team=team_users["team"], created_by=team_users["admin"])
    page.goto(f"/invites/{invite.token}/")
    assert "Create your account" in page.inner_text("main")
    page.fill("#id_username", "carol")
    page.fill("#id_email", "carol@example.com")
    page.fill("#id_password1", "12345678")
    page.fill("#id_password2", "12345678")
    page.click("text=Create the account and join")
    errors = page.locator("#field-password2 .error").all_inner_texts()
    assert any("too common" in e for e in errors) and any("entirely numeric" in e for e in errors), errors
    assert not get_user_model().objects.filter(username="carol").exists()

    page.fill("#id_password1", "violet-kestrel-42")
    page.fill("#id_password2", "violet-kestrel-42")
    page.click("text=Create the account and join")
    page.wait_for_url(f"**/teams/{team_users['team'].pk}/")
    assert "you joined Vision" in page.locator(".messages").inner_text()
    carol = get_user_model().objects.get(username="carol")
    assert carol.email == "carol@example.com" and carol.check_password("violet-kestrel-42")
    assert Membership.objects.filter(team=team_users["team"], user=carol, role=Membership.MEMBER).exists()
    invite.refresh_from_db()
    assert invite.used_by == carol
    # The link is used: nobody else signs up with it.
    page.context.clear_cookies()
    page.goto(f"/invites/{invite.token}/")
    assert "has been used or has expired" in page.inner_text("main")


def test_a_user_resets_the_password_by_email(page, team_users, smtp):
    page.goto("/accounts/login/")
    page.click("text=Forgot your password?")
    page.fill("#id_email", "bob@example.com")
    page.click("text=Send the link")
    page.wait_for_selector("text=Check your email")
    messages = smtp.inbox.wait_for(1)
    assert len(messages) == 1 and messages[0]["to"] == ["bob@example.com"]
    body = messages[0]["msg"].get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https?://\S+/accounts/reset/\S+/", body).group(0)
    page.goto(link)
    page.fill("#id_new_password1", "short")
    page.fill("#id_new_password2", "short")
    page.click("text=Set the password")
    assert "too short" in page.locator("#field-new_password2").inner_text()
    page.fill("#id_new_password1", "amber-falcon-77")
    page.fill("#id_new_password2", "amber-falcon-77")
    page.click("text=Set the password")
    page.wait_for_selector("text=Your new password is set")
    sign_in(page, "bob", "amber-falcon-77")


def test_removing_the_last_admin_is_refused_and_stays_on_the_team_page(page, team_users):
    team, alice = team_users["team"], team_users["admin"]
    own = Membership.objects.get(team=team, user=alice)
    sign_in(page, "alice", "pw-alice-123")
    page.goto(f"/teams/{team.pk}/")
    page.locator(f"form[action='/teams/{team.pk}/members/{own.pk}/remove/'] button").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/teams/{team.pk}/")
    assert "at least one admin" in page.locator(".messages").inner_text()
    assert Membership.objects.filter(pk=own.pk).exists()
