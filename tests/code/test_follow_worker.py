"""Following an experiment, end to end: the Lightning example run outside Runwise (plain
`python train.py`, its MLFlowLogger creating the run) is imported by the real Celery beat and
worker within one beat period, analysed when it ends, and its owner's team is emailed over real
SMTP; nothing is written back to its MLflow run."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.code.conftest import EXAMPLES, ROOT
from tests.conftest import WorkerProcess
from tests.email.conftest import SmtpServer, free_port
from tests.waiting import wait_for
from tracking.code.services import experiment_follow
from tracking.models import OutboxEmail, Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PERIOD = 2  # FOLLOW_INTERVAL of the beat in this test (seconds)


@pytest.fixture
def mail_and_worker(redis_server, tmp_path, monkeypatch):
    port = free_port()
    server = SmtpServer(port).start()
    for name, value in {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(port), "SITE_URL": "http://runwise.test",
                        "FOLLOW_INTERVAL": str(PERIOD)}.items():
        monkeypatch.setenv(name, value)
    worker = WorkerProcess("cpu,gpu,default", tmp_path / "worker.log").start()
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{os.environ['VAR_DIR']}/test-db.sqlite3")
    beat_log = open(tmp_path / "beat.log", "ab")
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp", "beat", "-l", "INFO",
                             "-s", str(tmp_path / "schedule"), "--max-interval", "1"],
                            cwd=ROOT, env=env, stdout=beat_log, stderr=subprocess.STDOUT)
    yield server, worker
    beat.send_signal(signal.SIGTERM)
    beat.wait(20)
    worker.stop()
    server.stop()


def snapshot(client, run_id):
    run = client.get_run(run_id)
    return (run.info.status, run.info.end_time, dict(run.data.params), dict(run.data.tags), dict(run.data.metrics))


def test_a_lightning_run_logged_outside_runwise_is_imported_analysed_and_emailed(
        mail_and_worker, team_users, register, mlflow_client):
    server, worker = mail_and_worker
    code = register("lightning")
    experiment_follow(project=team_users["project"], user=team_users["admin"], reference="team-lightning")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_RUN")}
    env.update(MLFLOW_EXPERIMENT_NAME="team-lightning", PYTHONUNBUFFERED="1")
    script = subprocess.Popen([sys.executable, str(EXAMPLES / "lightning" / "train.py"), "--max_epochs", "4",
                               "--epoch_seconds", "1.5"], cwd=str(EXAMPLES / "lightning"), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def logged():
            exp = mlflow_client.get_experiment_by_name("team-lightning")
            runs = mlflow_client.search_runs([exp.experiment_id]) if exp else []
            return runs[0].info.run_id if runs else None
        mlflow_id = wait_for(logged, 120, "the script's MLflow run")
        seen = time.monotonic()
        run = wait_for(lambda: Run.objects.filter(mlflow_run_id=mlflow_id).first(), PERIOD + 5,
                       "the run in the history within one beat period", log=worker.log)
        assert time.monotonic() - seen <= PERIOD + 5
        assert run.kind == "external" and run.owner == team_users["admin"]
        assert run.external_run.code == code  # logged by registered code: "Apply…" makes a Runwise run
        wait_for(lambda: Run.objects.get(pk=run.pk).series.filter(key="train_loss").exists(), 60,
                 "live curves while it trains", log=worker.log)
        assert script.wait(180) == 0, script.stdout.read().decode()[-3000:]
    finally:
        if script.poll() is None:
            script.kill()
    ended = snapshot(mlflow_client, mlflow_id)
    run = wait_for(lambda: Run.objects.filter(pk=run.pk, status="succeeded", analysed_at__isnull=False).first(),
                   60, "the run ended and analysed", log=worker.log)
    assert run.analysis["diagnoses"] and run.config["epochs"] == 4 and run.epoch == 4
    [mail] = [m for m in server.inbox.wait_for(1, timeout=60) if "alice@example.com" in m["to"]]
    assert mail["msg"]["Subject"].startswith(f"[vision] {run.name}: ")
    # the SMTP server has the message before the worker marks its outbox row sent
    wait_for(lambda: OutboxEmail.objects.get(run=run).state == "sent", 30, "the outbox row marked sent", log=worker.log)
    time.sleep(PERIOD + 1)  # one more import of the ended run
    assert snapshot(mlflow_client, mlflow_id) == ended  # nothing written back to MLflow
