"""Fixtures for the web tests: signed-in clients and runs with curves, written with the ORM."""
import math

import pytest
from django.test import Client

from tracking.config import validate_config
from tracking.models import MetricSeries, Run


@pytest.fixture
def admin_client_(team_users):
    client = Client()
    client.force_login(team_users["admin"])
    return client


@pytest.fixture
def member_client(team_users):
    client = Client()
    client.force_login(team_users["member"])
    return client


@pytest.fixture
def outsider_client(team_users):
    client = Client()
    client.force_login(team_users["outsider"])
    return client


def make_run(project, owner, *, name="run", status=Run.Status.SUCCEEDED, epochs=5, steps_per_epoch=10,
             with_series=True, **config):
    """A run as a worker would have left it: config, progress, summary and MetricSeries rows."""
    config = validate_config({"epochs": epochs, **config})
    run = Run.objects.create(project=project, owner=owner, name=name, config=config, queue=config["queue"],
                             status=status, epoch=epochs, steps_per_epoch=steps_per_epoch,
                             step=epochs * steps_per_epoch, total_steps=epochs * steps_per_epoch)
    if with_series:
        steps = epochs * steps_per_epoch
        val = [(e, 1.0 / e + 0.05 * e) for e in range(1, epochs + 1)]
        series = {
            "train_loss": [[s, 2.3 * math.exp(-s / steps)] for s in range(steps)],
            "lr": [[s, config["lr"]] for s in range(steps)],
            "train_loss_epoch": [[e, 2.0 / e] for e in range(1, epochs + 1)],
            "val_loss": [[e, v] for e, v in val],
            "train_accuracy": [[e, 1 - 0.5 / e] for e in range(1, epochs + 1)],
            "val_accuracy": [[e, 1 - 0.6 / e] for e in range(1, epochs + 1)],
        }
        MetricSeries.objects.bulk_create([
            MetricSeries(run=run, key=k, points=p, count=len(p), last_step=p[-1][0]) for k, p in series.items()])
        run.best_val_loss = min(v for _, v in val)
        run.best_val_accuracy = 1 - 0.6 / epochs
        run.save(update_fields=["best_val_loss", "best_val_accuracy"])
    return run


# ---- browser (Playwright driving Debian's Chromium; never `playwright install`) ----

@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors  # no JavaScript error on any page


def sign_in(page, username, password):
    page.goto("/")
    assert "/accounts/login/" in page.url  # login required
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Your projects")
