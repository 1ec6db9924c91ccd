"""Under the processes `make run` starts (the Procfile's worker commands), the interim analysis of a
run reaches its open page while the run still trains: analysis has a worker of its own."""
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.conftest import ROOT
from tests.waiting import wait_for
from tests.web.conftest import sign_in
from tracking import services
from tracking.models import Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def procfile_workers():
    """{name: command} of the Procfile's Celery workers, as honcho would run them."""
    workers = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if "celery" in command and " worker " in command:
            workers[name.strip()] = command.strip()
    return workers


class ProcfileProcess:
    def __init__(self, name, command, log_path, port):
        self.name, self.log_path = name, log_path
        # The virtualenv's celery is this interpreter's; the rest of the line is the Procfile's own.
        command = command.replace(".venv/bin/celery", f"{shlex.quote(sys.executable)} -m celery")
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{os.environ['VAR_DIR']}/test-db.sqlite3",
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PORT=str(port))
        self.proc = subprocess.Popen(["bash", "-c", "exec " + command], cwd=ROOT, env=env,
                                     stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)

    def log(self):
        return Path(self.log_path).read_text(errors="replace")

    def wait_ready(self):
        wait_for(lambda: "ready" in self.log() or self.proc.poll() is not None, 90, f"{self.name} worker")
        assert self.proc.poll() is None, self.log()[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def assert_no_store_race(processes):
    """Issue 14: the first `make run` printed "database is locked" as two processes created the MLflow
    tables at once; with the store made once before they start, no process sees it."""
    for p in processes:
        for sign in ("database is locked", "_alembic_tmp"):
            assert sign not in p.log(), f"{p.name}: {sign}\n{p.log()[-3000:]}"


def test_the_procfile_gives_short_tasks_a_worker_of_their_own():
    workers = procfile_workers()
    queues = {name: cmd.split("-Q ")[1].split()[0].split(",") for name, cmd in workers.items()}
    training = [n for n, q in queues.items() if "cpu" in q]
    short = [n for n, q in queues.items() if "default" in q]
    assert training and short and not set(training) & set(short), queues


def running(started: list):
    """For a fixture: yields the processes once each is ready, and stops them all afterwards."""
    try:
        for p in started:
            p.wait_ready()
        yield started
    finally:
        for p in started:
            p.stop()


@pytest.fixture
def procfile_workers_running(redis_server, transactional_db, tmp_path):
    call_command("mlflow_store")  # as `make run` does before honcho starts them (else both migrate a new store)
    yield from running([ProcfileProcess(name, command, tmp_path / f"{name}.log", 5100 + 100 * i)
                        for i, (name, command) in enumerate(procfile_workers().items())])


def test_an_interim_diagnosis_shows_on_the_page_while_the_run_trains(page, team_users, procfile_workers_running):
    project, user = team_users["project"], team_users["member"]
    # Long enough that the first interim analysis (sent after 15 s, every 5 epochs) comes well before the end.
    run = services.run_create(project=project, owner=user, name="long one", config={
        "dataset": "digits", "epochs": 3000, "batch_size": 64, "lr": 0.05, "optimizer": "sgd"})
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/runs/{run.pk}/")

    def logs():
        return "\n".join(f"== {p.name}\n{p.log()[-2000:]}" for p in procfile_workers_running)

    try:
        page.wait_for_selector("#recommendations .diagnosis", timeout=120_000)
    except Exception:
        raise AssertionError("no diagnosis on the page in 120 s\n" + logs())
    assert page.locator("#run-status").inner_text() == "running"  # the page updated itself, mid-training
    assert "live, while training" in page.locator("#recommendations h2").inner_text()
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.analysed_at is not None

    services.run_request_stop(run=run)
    wait_for(lambda: Run.objects.get(pk=run.pk).is_final(), 60, "the run to stop", log=logs)
    # ...and the page goes on until the final analysis of the stopped run is shown, without a reload.
    final = wait_for(lambda: (lambda r: r.analysed_at if r.analysed_at and r.analysed_at >= r.finished_at else None)(
        Run.objects.get(pk=run.pk)), 60, "the final analysis", log=logs)
    page.wait_for_function(f"() => document.getElementById('recommendations').dataset.analysedAt === '{final.isoformat()}'",
                           timeout=10_000)
    # The final diagnosis cites the best val_loss the page shows above it (issue 14: "stopped improving
    # at epoch 1 (0.595)" beside "best val_loss 0.5715").
    page.reload()
    run.refresh_from_db()
    assert f"best val_loss {run.best_val_loss:.4g}" in page.locator("#best-text").inner_text()
    evidence = page.locator("#recommendations").inner_text()
    cited = re.findall(r"val_loss[^;]*?(?:minimum|best)[ (]+(\d+(?:\.\d+)?(?:e-?\d+)?) at epoch", evidence)
    assert cited and all(value == f"{run.best_val_loss:.3g}" for value in cited), (cited, run.best_val_loss, evidence)
    assert_no_store_race(procfile_workers_running)
