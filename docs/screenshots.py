"""Retake the README's screenshots (docs/*.png) from real trainings.

    .venv/bin/python docs/screenshots.py

Seeds a throw-away database (its own VAR_DIR) with runs trained by the real engine
(`workers.engine.fit`, digits, CPU), analysed by the real rules engine, an LR range test
(`workers.lr_range.range_test`) and a sweep; serves it with `manage.py runserver` and photographs
the pages in Debian's Chromium with Playwright (1280 px wide). About a minute on 2 cores.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = tempfile.mkdtemp(prefix="runwise-screenshots-")
os.environ.update(VAR_DIR=VAR, DEBUG="True", OMP_NUM_THREADS="1", DJANGO_SETTINGS_MODULE="webapp.settings",
                  MLFLOW_TRACKING_URI=f"sqlite:///{VAR}/mlflow.db", DATABASE_URL=f"sqlite:///{VAR}/db.sqlite3")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from tracking.analysis import _store  # noqa: E402
from tracking.config import validate_config  # noqa: E402
from tracking.models import Membership, MetricSeries, Project, Run, Team  # noqa: E402
from tracking.rules import advise  # noqa: E402
from tracking.series import downsample, encode  # noqa: E402

USER, PASSWORD = "demo", "demo-pass-123"


def save_series(run, history):
    for key, points in history.items():
        points = [[s, encode(v)] for s, v in downsample([(s, float(v)) for s, v in points])]
        MetricSeries.objects.create(run=run, key=key, points=points, count=len(points),
                                    last_step=points[-1][0] if points else -1)


def trained(project, owner, name, config, minutes_ago, **fields):
    """A run trained now by the real engine, stored as a worker would have left it, and analysed."""
    from workers.engine import fit

    config = validate_config(config)
    result = fit(config, device="cpu")
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    run = Run.objects.create(
        project=project, owner=owner, name=name, config=config, queue="cpu", status=result.status,
        status_reason=result.reason, epoch=result.epochs_run, step=result.steps_run, total_steps=result.steps_run,
        steps_per_epoch=result.steps_per_epoch, best_val_loss=result.best_val_loss,
        best_val_accuracy=result.best_val_accuracy, device="cpu", worker="train.5200@box-1", attempts=1,
        diverged_step=result.diverged_step, started_at=finished - timedelta(seconds=max(1.0, result.seconds) * 20),
        finished_at=finished, **fields)
    save_series(run, result.history)
    run_input = {"config": config, "metrics": {k: [[s, v] for s, v in p] for k, p in result.history.items()},
                 "steps_per_epoch": result.steps_per_epoch,
                 "status": "failed" if result.status == "diverged" else "finished"}
    _store(run, advise(run_input))
    return run


def seed():
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(USER, "demo@localhost", PASSWORD, is_staff=True)
    colleague = get_user_model().objects.create_user("maria", "maria@localhost", "x-unused-password-1")
    team = Team.objects.create(name="Vision lab")
    Membership.objects.create(team=team, user=user, role=Membership.ADMIN)
    Membership.objects.create(team=team, user=colleague)
    project = Project.objects.create(team=team, name="digits", description="8x8 handwritten digits, MLPs and CNNs.")
    base = {"dataset": "digits", "epochs": 40, "width": 256, "depth": 2, "optimizer": "adam", "lr": 0.003,
            "train_subset": 300}
    baseline = trained(project, user, "mlp-wide-adam (300 examples)", base, 50)
    trained(project, colleague, "mlp-wide-adam · weight decay 5e-4", {**base, "weight_decay": 5e-4}, 40,
            parent=baseline)
    trained(project, user, "sgd-momentum-cosine-long-schedule-baseline",
            {"dataset": "digits", "epochs": 15, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
             "scheduler": "cosine"}, 30)
    trained(project, colleague, "sgd lr 3 (too hot)", {"dataset": "digits", "epochs": 5, "optimizer": "sgd", "lr": 3.0},
            25)
    trained(project, user, "cnn onecycle", {"dataset": "digits", "epochs": 8, "model": "cnn", "width": 16,
                                            "scheduler": "onecycle", "lr": 0.05, "optimizer": "sgd",
                                            "momentum": 0.9}, 10)
    lr_test = lr_range_test(project, user, baseline)
    Run.objects.create(project=project, owner=user, name="mlp-wide-adam · dropout 0.3", queue="cpu",
                       config=validate_config({**base, "dropout": 0.3}), parent=baseline)
    return baseline, lr_test


def lr_range_test(project, owner, source):
    from workers.lr_range import range_test, store_series

    config = validate_config({**source.config, "train_subset": None})
    result = range_test(config, device="cpu")
    run = Run.objects.create(project=project, owner=owner, name=f"LR range test of {source.name}",
                             kind=Run.Kind.LR_FIND, config=config, queue="cpu", status=Run.Status.SUCCEEDED,
                             parent=source, step=len(result.lrs), total_steps=result.steps_planned,
                             started_at=timezone.now() - timedelta(minutes=5),
                             finished_at=timezone.now() - timedelta(minutes=5), status_reason=result.stop_reason)
    store_series(run, result)
    return run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    baseline, lr_test = seed()
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                              cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        shoot(f"http://127.0.0.1:{port}", baseline, lr_test)
    finally:
        server.terminate()
        server.wait(10)


def shoot(url, baseline, lr_test):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900}).new_page()
        page.goto("/accounts/login/")
        page.fill("#id_username", USER)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Your projects")

        page.goto(f"/runs/{baseline.pk}/")
        page.wait_for_selector("#chart-lr canvas")
        page.wait_for_timeout(500)
        charts = page.locator("#charts").bounding_box()  # the page down to its charts (the config below)
        page.screenshot(path=str(ROOT / "docs/run-page.png"), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": charts["y"] + charts["height"] + 16})
        page.locator("#charts").screenshot(path=str(ROOT / "docs/run-charts.png"))

        page.goto(f"/projects/{baseline.project_id}/?sort=best_val_loss")
        page.wait_for_selector("#run-history")
        page.screenshot(path=str(ROOT / "docs/run-history.png"), full_page=True)

        page.goto(f"/lr-find/{lr_test.pk}/")
        page.wait_for_selector("#lr-chart canvas")
        page.wait_for_timeout(500)
        page.screenshot(path=str(ROOT / "docs/lr-range-test.png"), full_page=True)
        browser.close()
    print("docs/run-page.png, docs/run-charts.png, docs/run-history.png, docs/lr-range-test.png written")


if __name__ == "__main__":
    main()
