"""A sweep's stage trains "in parallel" for real under `make run`: the Makefile starts one training
worker per core (`honcho -c train=$(nproc)`), and with two of the Procfile's training workers (what
`make run` starts on this 2-core machine) the two runs of a stage train at the same time, each on
its own worker, side by side. The sweep page says how many of a team's runs train at once, and the whole sweep
sends the team one email (its best run and recommendation), none per trial, over real SMTP."""
import os
import re
import subprocess

import pytest
from django.core.management import call_command

from tests.conftest import ROOT
from tests.tuning.test_autopilot_worker import smtp_for_worker  # noqa: F401 (a fixture)
from tests.waiting import wait_for
from tests.web.conftest import make_run, page, sign_in  # noqa: F401 (page: the browser fixture)
from tests.web.test_live_analysis import ProcfileProcess, assert_no_store_race, procfile_workers, running
from tracking import sweeps
from tracking.models import Run, Sweep
from tracking.services import run_create, run_request_stop

pytestmark = pytest.mark.django_db(transaction=True)


def test_make_run_starts_one_training_worker_per_core():
    nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    env = {k: v for k, v in os.environ.items() if k not in ("TRAIN_WORKERS", "MAKEFLAGS")}
    dry = subprocess.run(["make", "-n", "-B", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    [honcho] = [line for line in dry.stdout.splitlines() if "honcho start" in line]
    assert re.search(rf"-c train={nproc}(\s|$)", honcho), honcho
    assert "train" in procfile_workers() and "-P solo" in procfile_workers()["train"]  # one run at a time each


@pytest.fixture
def make_run_workers(smtp_for_worker, redis_server, transactional_db, tmp_path):  # noqa: F811
    """The Procfile's workers as `honcho start -c train=2` runs them (PORT base + 100 a type + 1 a copy)."""
    call_command("mlflow_store")  # as `make run` does before honcho starts them (else both migrate a new store)
    started = []
    for i, (name, command) in enumerate(procfile_workers().items()):
        for copy in range(2 if name == "train" else 1):
            started.append(ProcfileProcess(f"{name}.{copy + 1}", command, tmp_path / f"{name}.{copy + 1}.log",
                                           5100 + 100 * i + copy))
    yield from running(started)


@pytest.mark.slow
def test_two_queued_runs_train_at_the_same_time_on_two_training_workers(team_users, make_run_workers):
    bob = team_users["member"]
    config = {"dataset": "digits", "epochs": 3000, "optimizer": "sgd", "lr": 0.05}
    runs = [run_create(project=team_users["project"], owner=bob, name=f"long {i}", config=config) for i in range(2)]
    ids = [r.pk for r in runs]

    def logs():
        return "\n".join(f"== {p.name}\n{p.log()[-1500:]}" for p in make_run_workers)

    def steps():  # both training (not one waiting for the other): their steps, else None
        rows = list(Run.objects.filter(pk__in=ids, status=Run.Status.RUNNING, step__gt=0)
                    .order_by("pk").values_list("step", flat=True))
        return rows if len(rows) == 2 else None

    try:
        before = wait_for(steps, 180, "both runs training at once", log=logs)

        def both_advanced():  # both still running, each past its step above (on a loaded machine one
            now = steps()     # may pause for a few seconds: a checkpoint, a slice of CPU)
            return now if now and all(a > b for a, b in zip(now, before)) else None

        after = wait_for(both_advanced, 60, f"both runs advancing at once from steps {before}", log=logs)
        print(f"both runs training at once: steps {before} -> {after}")
        assert len(set(Run.objects.filter(pk__in=ids).values_list("worker", flat=True))) == 2
    finally:
        for run in runs:
            run_request_stop(run=run)
    wait_for(lambda: all(r.is_final() for r in Run.objects.filter(pk__in=ids)), 60, "the stops", log=logs)
    assert_no_store_race(make_run_workers)


@pytest.mark.slow
def test_a_stage_s_runs_go_to_both_workers_and_the_sweep_sends_one_email(page, team_users, make_run_workers,
                                                                             smtp_for_worker):  # noqa: F811
    project, bob = team_users["project"], team_users["member"]
    source = make_run(project, bob, name="wide", dataset="digits", width=512, depth=3, epochs=3, with_series=False)
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/runs/{source.pk}/sweep/new/")
    assert "at most 2 of a team's runs at a time" in page.locator("#team-concurrency").inner_text()
    page.fill("input[name=stage1_trials]", "2")
    page.fill("input[name=stage2_trials]", "1")
    page.click("text=Start the sweep")
    page.wait_for_url("**/sweeps/*/")
    sweep = Sweep.objects.get()

    def logs():
        return "\n".join(f"== {p.name}\n{p.log()[-1500:]}" for p in make_run_workers)

    def stage_one_ended():
        runs = list(Run.objects.filter(trial__sweep=sweep, trial__stage=1))
        return len(runs) == 2 and all(r.finished_at for r in runs) and runs

    first, second = wait_for(stage_one_ended, 150, "stage 1's two runs", log=logs)
    assert first.status == second.status == Run.Status.SUCCEEDED, logs()
    # each on a training worker of its own (both were sent at once; a stage-1 run trains in ~1 s once its
    # child is up, so the overlap in time is measured on long runs, below)
    assert first.worker != second.worker and {first.worker[:6], second.worker[:6]} == {"train."}, (first.worker,
                                                                                                  second.worker)

    # Stage 2 trains, the sweep ends (the short worker's analysis hook advances it) and the team hears
    # of it once: the best run, its diagnosis and recommendation; no trial sends an email of its own.
    wait_for(lambda: Sweep.objects.get(pk=sweep.pk).state == Sweep.State.DONE, 120, "the sweep's end", log=logs)
    sweep.refresh_from_db()
    wait_for(lambda: len(smtp_for_worker.messages) >= 2, 30, "the sweep's email", log=logs)
    page.wait_for_timeout(3000)  # a trial's own email would have come by now
    mails = smtp_for_worker.messages
    assert sorted(m["To"] for m in mails) == ["alice@example.com", "bob@example.com"], [m["Subject"] for m in mails]
    best = sweep.best_run
    assert all(m["Subject"].strip().startswith(f"[vision] {best.name}: ") for m in mails), mails[0]["Subject"]
    body = mails[0].get_body(preferencelist=("plain",)).get_content()
    assert f"Sweep {sweep.name} ended" in body and f"Best run: {best.name}" in body and "Recommendation: " in body
    assert_no_store_race(make_run_workers)
