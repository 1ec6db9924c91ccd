"""Email benchmark: render + send one run's email (with its PNG), a digest of 200 runs, and the
queue's throughput for 500 emails through Redis and a real `celery worker -P solo` to a local
SMTP server (aiosmtpd on loopback). Everything runs in a throw-away VAR_DIR and Redis port.

    .venv/bin/python bench/bench_email.py [--emails 500] [--digest-runs 200]

Prints its figures; the last line is a one-line summary.
"""
import argparse
import datetime as dt
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


VAR = tempfile.mkdtemp(prefix="runwise-bench-email-")
REDIS_PORT, SMTP_PORT = free_port(), free_port()
ENV = dict(VAR_DIR=VAR, REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/0", EMAIL_HOST="127.0.0.1",
           EMAIL_PORT=str(SMTP_PORT), EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
           MLFLOW_TRACKING_URI=f"sqlite:///{VAR}/mlflow.db", OMP_NUM_THREADS="1", DEBUG="True",
           DJANGO_SETTINGS_MODULE="webapp.settings", SITE_URL="http://127.0.0.1:8000")
os.environ.update(ENV)
os.environ.pop("DATABASE_URL", None)
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()
logging.getLogger("mail.log").setLevel(logging.WARNING)

from aiosmtpd.controller import Controller  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from tracking.models import (MetricSeries, Membership, NotificationSetting, OutboxEmail, Project,  # noqa: E402
                             Recommendation, Run, Team)


class Counter:
    def __init__(self):
        self.count, self.lock = 0, threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
        return "250 OK"


ANALYSIS = {
    "diagnoses": [{"id": "overfitting", "severity": 0.8, "epochs": [9, 30],
                   "evidence": "val_loss rose 35% from its minimum at epoch 9 while train_loss fell 60%"}],
    "recommendations": [
        {"rule": "overfitting.raise_weight_decay", "diagnosis": "overfitting", "change": {"weight_decay": 5e-4},
         "rationale": "A stronger L2 penalty narrows the gap.", "confidence": 0.7},
        {"rule": "overfitting.add_dropout", "diagnosis": "overfitting", "change": {"dropout": 0.3},
         "rationale": "Dropout regularises.", "confidence": 0.6},
        {"rule": "overfitting.early_stopping", "diagnosis": "overfitting", "change": {"early_stopping_patience": 5},
         "rationale": "Stop near the minimum.", "confidence": 0.5}],
}


def make_run(project, owner, name, finished_at):
    run = Run.objects.create(project=project, owner=owner, name=name, status="succeeded",
                             config={"weight_decay": 0.0, "dropout": 0.0}, analysis=ANALYSIS,
                             analysed_at=finished_at, finished_at=finished_at, best_val_loss=1.0)
    epochs = range(1, 31)
    MetricSeries.objects.bulk_create([
        MetricSeries(run=run, key="train_loss_epoch", points=[[e, 2 * 0.9 ** e] for e in epochs], count=30),
        MetricSeries(run=run, key="val_loss", points=[[e, 1 + 0.002 * (e - 9) ** 2] for e in epochs], count=30)])
    Recommendation.objects.bulk_create([Recommendation(run=run, rank=i, **r)
                                        for i, r in enumerate(ANALYSIS["recommendations"])])
    return run


def world(n_users):
    from django.contrib.auth import get_user_model

    team = Team.objects.create(name="Bench")
    project = Project.objects.create(team=team, name="vision")
    users = [get_user_model().objects.create_user(f"u{i}", f"u{i}@example.com", "pw-bench-123")
             for i in range(n_users)]
    Membership.objects.bulk_create([Membership(team=team, user=u) for u in users])
    return team, project, users


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_one_run_email(project, owner):
    from tracking.email_tasks import outbox_send
    from tracking.emails import _PNG_CACHE, build_message, loss_curves_png

    run = make_run(project, owner, "run 42", timezone.now())
    png_s = timed(lambda: loss_curves_png(run), 5)
    keys = iter(range(10 ** 6))

    def render_and_send(cold=True):
        if cold:
            _PNG_CACHE.clear()  # the first recipient of a run: the PNG is drawn
        row = OutboxEmail.objects.create(key=f"bench:{next(keys)}", kind="run_ended", recipient=owner,
                                         team=project.team, run=run)
        assert outbox_send(row.pk) == "sent"

    message = build_message(OutboxEmail(kind="run_ended", recipient=owner, team=project.team, run=run))
    size = len(message.message().as_bytes())
    return dict(png_s=png_s, render_send_s=timed(render_and_send, 10), size_kb=size / 1024,
                warm_s=timed(lambda: render_and_send(cold=False), 10))


def bench_digest(project, users, n_runs):
    from tracking.email_tasks import outbox_send
    from tracking.notifications import digest_create

    day = (timezone.now() - dt.timedelta(days=1)).date()
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc)
    with transaction.atomic():
        for i in range(n_runs):
            make_run(project, users[i % len(users)], f"digest run {i}", noon + dt.timedelta(seconds=i))
    reader = users[0]
    NotificationSetting.objects.create(user=reader, project=project, mode="digest")
    t0 = time.perf_counter()
    row, _ = digest_create(user=reader, day=day)
    assert outbox_send(row.pk) == "sent"
    elapsed = time.perf_counter() - t0
    subject = OutboxEmail.objects.get(pk=row.pk).subject
    assert f": {n_runs} finished runs" in subject, subject
    return elapsed


def start_redis():
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=REDIS_PORT)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start_worker(log_path):
    env = dict(os.environ, **ENV, PYTHONUNBUFFERED="1")
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp", "worker", "-P", "solo", "-Q",
                             "default", "-l", "WARNING", "--without-gossip", "--without-mingle",
                             "--without-heartbeat", "-n", f"bench-{os.getpid()}@%h"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc


def wait_sent(rows, timeout):
    deadline = time.monotonic() + timeout
    while OutboxEmail.objects.filter(pk__in=[r.pk for r in rows], state="sent").count() < len(rows):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(rows)} emails not sent within {timeout} s")
        time.sleep(0.05)


def warm_worker(project, users):
    """Wait until the worker is up and has sent one email (its imports, matplotlib's first figure):
    the queue's throughput is a warm worker's. Until 1 Dec this wait was part of the measured
    time, which under load put 3-10 s of the worker's start-up into the 500 emails' figure."""
    from tracking.notifications import notify_run_ended

    NotificationSetting.objects.update_or_create(user=users[0], project=project, defaults={"mode": "all"})
    run = make_run(project, users[0], "warm-up run", timezone.now())
    t0 = time.perf_counter()
    wait_sent(notify_run_ended(run.pk), 120)
    elapsed = time.perf_counter() - t0
    NotificationSetting.objects.filter(user=users[0], project=project).delete()  # the digest sets its own
    return elapsed


def bench_queue(project, users, n_emails, counter):
    """n_emails outbox rows (runs x subscribed members) enqueued at commit; time until all are sent."""
    from tracking.notifications import notify_run_ended

    n_runs = max(1, n_emails // len(users))
    NotificationSetting.objects.filter(project=project).delete()
    NotificationSetting.objects.bulk_create([NotificationSetting(user=u, project=project, mode="all")
                                             for u in users])
    runs = [make_run(project, users[0], f"queued run {i}", timezone.now()) for i in range(n_runs)]
    already = counter.count
    t0 = time.perf_counter()
    rows = []
    for run in runs:
        rows += notify_run_ended(run.pk)  # autocommit: each enqueues on commit
    enqueued_s = time.perf_counter() - t0
    wait_sent(rows, 900)
    total_s = time.perf_counter() - t0
    return dict(emails=len(rows), enqueue_s=enqueued_s, total_s=total_s, received=counter.count - already)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=500)
    parser.add_argument("--digest-runs", type=int, default=200)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    counter = Counter()
    smtp = Controller(counter, hostname="127.0.0.1", port=SMTP_PORT)
    smtp.start()
    redis_proc = start_redis()
    worker = start_worker(Path(VAR) / "worker.log")
    try:
        team, project, users = world(50)
        warm_s = warm_worker(project, users)
        print(f"worker start-up and its first email through the queue (cold imports, first figure): {warm_s:.1f} s "
              f"(not counted in the queue's throughput)")
        one = bench_one_run_email(project, users[0])
        print(f"one run email: PNG render {one['png_s'] * 1000:.0f} ms; render + send over SMTP "
              f"{one['render_send_s'] * 1000:.0f} ms median of 10 (PNG drawn each time; {one['warm_s'] * 1000:.0f} ms for "
              f"the run's next recipients, PNG cached); message {one['size_kb']:.0f} KiB")
        digest_s = bench_digest(project, users, args.digest_runs)
        print(f"digest of {args.digest_runs} runs: build + render + send {digest_s * 1000:.0f} ms")
        q = bench_queue(project, users, args.emails, counter)
        rate = q["emails"] / q["total_s"]
        print(f"queue: {q['emails']} emails (with PNG) through Redis + 1 celery worker (-P solo) to local SMTP: "
              f"enqueued in {q['enqueue_s']:.1f} s, all sent in {q['total_s']:.1f} s = {rate:.1f} emails/s; "
              f"SMTP received {q['received']}")
        print(f"SUMMARY email: one run email {one['render_send_s'] * 1000:.0f} ms (PNG {one['png_s'] * 1000:.0f} ms), "
              f"digest of {args.digest_runs} runs {digest_s * 1000:.0f} ms, queue {rate:.1f} emails/s "
              f"({q['emails']} in {q['total_s']:.1f} s, 1 solo worker)")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        redis_proc.terminate()
        redis_proc.wait(10)
        smtp.stop()
        shutil.rmtree(VAR, ignore_errors=True)


if __name__ == "__main__":
    main()
