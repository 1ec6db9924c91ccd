"""The rules engine on registered code, end to end, as for built-in runs: real Celery workers laid
out as in the Procfile (training on `cpu,gpu`, short tasks on `default`), the pytorch-plain example
in a real subprocess, the real MLflow store and a real SMTP server on loopback. A code run is
analysed while it trains, its end is analysed and emailed, and stop_on_diagnosis stops it."""
import re

import pytest

from tests.code.conftest import ended, wait_end
from tests.conftest import WorkerProcess
from tests.email.conftest import SmtpServer, free_port
from tests.waiting import wait_for
from tracking.code.services import code_run_create
from tracking.emails import change_in_words
from tracking.models import CodeRun, OutboxEmail, Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workers_and_mail(redis_server, transactional_db, tmp_path, monkeypatch):
    """A training worker and a short-task worker (separate processes, so an interim analysis runs
    while a run trains), sending mail to a real SMTP server. The first interim analysis is sent at
    the 5th epoch instead of 15 s after the start (ANALYSIS_MIN_SECONDS, in the workers' environment)."""
    port = free_port()
    server = SmtpServer(port).start()
    for name, value in {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
                        "EMAIL_PORT": str(port), "SITE_URL": "http://runwise.test",
                        "ANALYSIS_MIN_SECONDS": "0"}.items():
        monkeypatch.setenv(name, value)
    started = []
    try:
        for queues, name in (("cpu,gpu", "train"), ("default", "short")):
            started.append(WorkerProcess(queues, tmp_path / f"{name}.log").start())
        yield server, lambda: "\n".join(f"== {w.queues}\n{w.log()[-3000:]}" for w in started)
    finally:
        for worker in started:
            worker.stop()
        server.stop()


def test_a_code_run_is_analysed_while_it_trains_and_its_end_is_analysed_and_emailed(
        workers_and_mail, register, team_users):
    server, logs = workers_and_mail
    code = register("pytorch-plain")
    # Plain SGD at a low LR: still converging at its end, so the engine has a change to recommend.
    run = code_run_create(code=code, owner=team_users["admin"], name="slow sgd",
                          parameters={"epochs": 25, "lr": 0.005, "epoch_seconds": 0.4})

    def analysed_or_ended():
        now = Run.objects.get(pk=run.pk)
        return now if (now.status == "running" and now.analysed_at) or now.is_final() else None
    live = wait_for(analysed_or_ended, 90, "an interim analysis or the run's end", log=logs)
    assert live.status == "running" and live.analysed_at is not None, f"no analysis while it trained ({live.status})"
    assert live.analysis["diagnoses"] and 5 <= live.epoch < 25

    run = wait_for(lambda: ended(run.pk), 120, f"end of run {run.pk}", log=logs)
    assert run.status == "succeeded", run.status_reason
    [mail] = [m for m in server.inbox.wait_for(1, timeout=60) if "alice@example.com" in m["to"]]
    run.refresh_from_db()
    assert run.analysed_at > run.finished_at and run.final_analysed_at is not None  # the end-of-run analysis
    top = run.recommendations.order_by("rank").first()
    main = max(run.analysis["diagnoses"], key=lambda d: d["severity"])
    # "[project] run name: diagnosis, change"
    assert mail["msg"]["Subject"] == (f"[vision] slow sgd: {main['id'].replace('_', ' ')}, "
                                      f"{change_in_words(top.change, run.config)}")
    assert re.fullmatch(r"\[vision\] slow sgd: [a-z ]+, (raise|lower|set) \w+ to \S+.*", mail["msg"]["Subject"])
    # the SMTP server has the message before the worker marks its outbox row sent
    wait_for(lambda: OutboxEmail.objects.get(run=run).state == "sent", 30, "the outbox row marked sent", log=logs)
    assert len(server.inbox.messages) == 1  # the owner only (the default settings), once


def test_stop_on_diagnosis_stops_a_diverging_code_run_before_its_last_epoch(
        celery_worker_process, register, team_users, mlflow_client):
    code = register("pytorch-plain")
    run = code_run_create(code=code, owner=team_users["admin"], stop_on_diagnosis=True,
                          parameters={"epochs": 20, "lr": 50.0, "epoch_seconds": 0.3})
    run = wait_end(run, celery_worker_process)
    assert run.status == "stopped", run.status_reason
    assert run.status_reason.startswith("stopped on diagnosis: diverging: ")
    assert 5 <= run.epoch < 20
    assert len(mlflow_client.get_metric_history(run.mlflow_run_id, "val_loss")) < 20
    assert mlflow_client.get_run(run.mlflow_run_id).info.status == "KILLED"
    assert "epoch 20/20" not in CodeRun.objects.get(run=run).output
    final = wait_for(lambda: Run.objects.filter(pk=run.pk, final_analysed_at__isnull=False).first(), 30,
                     "the end-of-run analysis", log=celery_worker_process.log)
    assert final.analysis["diagnoses"][0]["id"] == "diverging"
    assert final.recommendations.order_by("rank").first().change["lr"] < 50.0
