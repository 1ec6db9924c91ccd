"""The tuning pages in Chromium (Playwright): the log-x LR plot with its suggestions and "Use this
LR", the sweep's scatters, border flag and Stop button, the autopilot's lineage tree; no JavaScript error."""
import math

import pytest
from django.utils import timezone

from tracking import autopilot, lr_finder, sweeps
from tracking.config import validate_config
from tracking.models import Autopilot, MetricSeries, Recommendation, Run, Trial

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser, live_server, team_users, redis_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/")
    page.fill("#id_username", "bob")
    page.fill("#id_password", "pw-bob-123")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Your projects")
    yield page
    context.close()
    assert errors == [], errors


def a_run(team_users, **kw):
    return Run.objects.create(project=team_users["project"], owner=team_users["admin"], name=kw.pop("name", "base"),
                              config=validate_config({"dataset": "digits", "epochs": 5}), status="succeeded",
                              analysed_at=timezone.now(), **kw)


def test_the_lr_plot_marks_three_suggestions_and_use_this_lr_makes_a_run(page, team_users):
    source = a_run(team_users, best_val_loss=1.0)
    run = Run.objects.create(project=source.project, owner=source.owner, name="LR range test", kind="lr_find",
                             config=source.config, status="succeeded", parent=source)
    lrs = lr_finder.lr_schedule()[:90]
    tracker = lr_finder.SmoothedLoss()
    raw = [2.3 - 2.0 / (1 + math.exp(-3 * (math.log10(lr) + 3))) + (30 * lr if lr > 0.3 else 0) for lr in lrs]
    smooth = [tracker.update(v) for v in raw]
    for key, values in (("lr", lrs), ("train_loss", raw), ("smooth_loss", smooth)):
        MetricSeries.objects.create(run=run, key=key, points=[[i, v] for i, v in enumerate(values)],
                                    count=len(values), last_step=len(values) - 1)
    page.goto(f"/lr-find/{run.pk}/")
    page.wait_for_selector("#lr-chart canvas")
    assert page.locator("#suggestions tbody tr").count() == 3
    # The x axis is logarithmic: uPlot's scale distribution 3.
    assert page.evaluate("document.querySelector('#lr-chart .uplot') !== null")
    valley = page.locator("tr[data-suggestion=valley] td.num").inner_text()
    page.locator("tr[data-suggestion=valley] button", has_text="one-cycle max_lr").click()
    page.wait_for_url("**/runs/*/")
    new = Run.objects.exclude(pk__in=[source.pk, run.pk]).get()
    assert new.config["scheduler"] == "onecycle" and new.config["lr"] == pytest.approx(float(valley), rel=1e-3)


def test_the_sweep_page_draws_scatters_flags_a_border_value_and_stops_the_sweep(page, team_users):
    source = a_run(team_users)
    sweep = sweeps.sweep_create(project=source.project, owner=source.owner, base_config=source.config,
                                space={"lr": {"low": 1e-3, "high": 1, "log": True},
                                       "dropout": {"low": 0.0, "high": 0.5, "log": False}}, stage1_trials=3)
    trials = list(sweep.trials.all())
    Trial.objects.filter(pk=trials[0].pk).update(params={"lr": 0.001, "dropout": 0.2})
    for i, t in enumerate(trials):
        Run.objects.filter(pk=t.run_id).update(status="succeeded", best_val_loss=0.5 + i)
        sweeps.on_run_ended(t.run_id)
    page.goto(f"/sweeps/{sweep.pk}/")
    page.wait_for_selector("#scatter-lr canvas")
    page.wait_for_selector("#scatter-dropout canvas")
    assert "low border" in page.locator(".border-flag[data-param=lr]").inner_text()
    assert page.locator("#trials tbody tr").count() == 3 + 3
    # "Stop sweep": the three queued stage-2 runs end, the page shows the stopped state and reason.
    page.locator("#sweep-stop-form button", has_text="Stop sweep").click()
    page.wait_for_selector("text=stopped by bob")
    assert page.locator(".status-stopped").count() >= 1 + 3 and page.locator("#sweep-stop-form").count() == 0
    assert Run.objects.filter(trial__sweep=sweep, trial__stage=2, status="stopped").count() == 3


def test_the_lineage_is_drawn_as_a_tree(page, team_users):
    start = a_run(team_users, name="start", best_val_loss=2.0)
    Recommendation.objects.create(run=start, rule="a.rule", diagnosis="x", change={"lr": 0.1}, rationale="r",
                                  confidence=0.9)
    Recommendation.objects.create(run=start, rule="b.rule", diagnosis="x", change={"lr": 0.3}, rationale="r",
                                  confidence=0.8, rank=1)
    pilot = autopilot.autopilot_start(run=start, owner=start.owner)
    first = Run.objects.get(pk=pilot.current_run_id)
    Run.objects.filter(pk=first.pk).update(status="succeeded", best_val_loss=2.5, analysed_at=timezone.now())
    autopilot.on_run_analysed(first.pk)
    page.goto(f"/autopilots/{pilot.pk}/")
    tree = page.locator("#lineage")
    assert tree.locator(f"li[data-run='{start.pk}'] > ul > li").count() == 2  # two rounds from the start
    assert "lr=0.1" in tree.inner_text() and "no improvement" in tree.inner_text()


def test_tune_this_run_after_an_apply_by_hand_reuses_that_run(page, team_users):
    """Issue 14: the autopilot's first round retrained a change already applied by hand."""
    start = a_run(team_users, name="start", best_val_loss=2.0)
    Recommendation.objects.create(run=start, rule="not_converged.raise_lr", diagnosis="not_converged",
                                  change={"lr": 0.1}, rationale="r", confidence=0.9)
    page.goto(f"/runs/{start.pk}/")
    page.click("#recommendations a:has-text('Apply')")
    page.click("text=Create the follow-up run")
    page.wait_for_selector("text=Clone and edit")
    by_hand = Run.objects.get(parent=start)
    assert page.url.endswith(f"/runs/{by_hand.pk}/") and by_hand.config["lr"] == 0.1
    now = timezone.now()  # the worker trained and analysed it
    Run.objects.filter(pk=by_hand.pk).update(status="succeeded", best_val_loss=1.2, analysed_at=now, finished_at=now)
    runs = Run.objects.count()

    page.goto(f"/runs/{start.pk}/")
    page.fill("input[name=max_rounds]", "1")
    page.click("text=Tune this run")
    page.wait_for_url("**/autopilots/*/")
    assert Run.objects.count() == runs  # nothing trained again
    pilot = Autopilot.objects.get()
    assert [r.run_id for r in pilot.rounds.all()] == [by_hand.pk]
    assert by_hand.name in page.locator("#lineage").inner_text()
    assert "1 of at most 1 rounds" in page.inner_text("main") and f"Best run: {by_hand.name}" in page.inner_text("main")
