"""A run that ends while Redis is down is analysed and emailed once Redis is back: the worker's
final analysis cannot be enqueued, and Celery beat's catch-up task sends it when the broker is up
again. Real redis-server, Celery worker and beat processes, MLflow store and SMTP server."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, WorkerProcess
from tests.email.conftest import SmtpServer
from tests.waiting import wait_for
from tracking.config import validate_config
from tracking.models import Run
from workers.dispatch import enqueue_run


def restart_redis(redis_server):
    """A new redis-server on the same port (the fixture stops whichever runs at the end)."""
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(redis_server["port"]), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis_server["proc"] = proc

    def up():
        try:
            return redis_server["client"].ping()
        except Exception:
            return False

    wait_for(up, 10, "redis-server back")


@pytest.fixture
def worker_env(monkeypatch, smtp_settings, smtp_port):
    for name, value in dict(EMAIL_PORT=str(smtp_port), EMAIL_HOST="127.0.0.1",
                            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_TIMEOUT="5",
                            SITE_URL="http://runwise.test", ANALYSIS_CATCH_UP_SECONDS="1",
                            ANALYSIS_CATCH_UP_AFTER="1").items():
        monkeypatch.setenv(name, value)


@pytest.mark.slow
def test_a_run_that_ends_while_redis_is_down_is_analysed_and_emailed_once_redis_is_back(
        worker_env, redis_server, transactional_db, team_users, smtp_port, tmp_path):
    smtp = SmtpServer(smtp_port).start()
    worker = WorkerProcess("cpu,gpu,default", tmp_path / "worker.log").start()
    beat = None
    try:
        config = validate_config({"dataset": "digits", "epochs": 150, "width": 32})
        run = Run.objects.create(project=team_users["project"], owner=team_users["member"], name="outage run",
                                 config=config, queue=config["queue"])
        enqueue_run(run.pk)
        wait_for(lambda: Run.objects.get(pk=run.pk).epoch >= 1, 90, "training under way", log=worker.log)
        redis_server["proc"].terminate()  # Redis goes down while the run trains
        redis_server["proc"].wait(10)
        wait_for(lambda: Run.objects.get(pk=run.pk).is_final(), 120, "the run's end", log=worker.log)
        time.sleep(2)  # the worker's attempt to enqueue the final analysis has failed by now
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED
        assert run.final_analysed_at is None and smtp.inbox.messages == []
        assert "analysis not enqueued" in worker.log()

        restart_redis(redis_server)
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "beat", "-l", "INFO", "-s", str(tmp_path / "beat")],
            cwd=ROOT, env=dict(os.environ, DATABASE_URL=f"sqlite:///{os.environ['VAR_DIR']}/test-db.sqlite3"),
            stdout=open(tmp_path / "beat.log", "wb"), stderr=subprocess.STDOUT)
        log = lambda: worker.log() + (tmp_path / "beat.log").read_text(errors="replace")  # noqa: E731
        wait_for(lambda: Run.objects.get(pk=run.pk).final_analysed_at is not None, 120, "the caught-up analysis", log=log)
        wait_for(lambda: smtp.inbox.to("bob@example.com"), 30, "the run's email", log=log)
        time.sleep(3)  # further beat ticks: the run is not analysed or emailed again
        run.refresh_from_db()
        assert run.analysis["diagnoses"] and run.analysed_at >= run.finished_at
        [mail] = smtp.inbox.to("bob@example.com")
        assert mail["msg"]["Subject"].startswith("[vision] outage run: ")
        assert len(smtp.inbox.messages) == 1
    finally:
        if beat is not None:
            beat.send_signal(signal.SIGTERM)
            beat.wait(30)
        worker.stop()
        smtp.stop()
        if redis_server["proc"].poll() is not None:
            restart_redis(redis_server)  # the session's other tests need it
