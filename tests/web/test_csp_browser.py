"""The Content-Security-Policy breaks no page: in Chromium, the pages with charts, the API docs
(Swagger UI and Redoc) and the admin load with no CSP violation of their own and draw what they
draw (the LR range test and sweep pages' inline scripts, with their nonce, in tests/tuning/test_browser.py)."""
import pytest

from tests.web.conftest import make_run, sign_in

pytestmark = pytest.mark.slow


def test_pages_load_under_the_policy_with_no_violation(page, team_users, django_user_model):
    team_users["admin"].is_staff = team_users["admin"].is_superuser = True
    team_users["admin"].save()
    project = team_users["project"]
    a = make_run(project, team_users["admin"], name="a")
    b = make_run(project, team_users["admin"], name="b", lr=0.1)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, "alice", "pw-alice-123")
    checks = [
        (f"/runs/{a.pk}/", "#charts canvas, .uplot canvas"),
        (f"/projects/{project.pk}/compare/?runs={a.pk}&runs={b.pk}", ".uplot canvas"),
        (f"/projects/{project.pk}/", "table"),
        (f"/projects/{project.pk}/runs/new/", "form"),
        ("/api/docs/", "#swagger-ui .info"),
        ("/api/redoc/", "text=Runwise API"),
        ("/admin/", "#content"),
    ]
    for url, selector in checks:
        response = page.goto(url)
        assert response.status == 200, url
        assert "script-src 'self'" in response.headers["content-security-policy"], url
        page.wait_for_selector(selector, timeout=30_000)
    # Redoc asks for Google Fonts and Redocly's logo from the internet: refusing third-party loads
    # is the policy's job (and the deployment is offline). Anything else refused breaks a page.
    third_party = ("'https://fonts.googleapis.com/", "'https://cdn.redoc.ly/")
    assert [v for v in violations if not any(t in v for t in third_party)] == [], violations
