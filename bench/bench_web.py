"""Benchmark of the web pages on a big project, measured server side (Django test Client, in-process).

Seeds a temporary project with 10,000 runs (bulk_create) and one run with 200,000 train_loss
points in a temporary SQLite MLflow store (log_batch in chunks of 1,000), then measures:
  - the run history page p95 (target <= 150 ms) and its SQL query count at two page sizes (constant),
  - the run page and its chart data p95 (target <= 100 ms), served from the MetricSeries table,
  - beside them, MlflowClient.get_metric_history of the same 200,000-point metric.
Prints each figure; the last line is a one-line summary.
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR = tempfile.mkdtemp(prefix="runwise-bench-web-")
os.environ.update(VAR_DIR=VAR, DATABASE_URL=f"sqlite:///{VAR}/db.sqlite3", MLFLOW_TRACKING_URI=f"sqlite:///{VAR}/mlflow.db",
                  MLFLOW_ARTIFACT_ROOT=f"{VAR}/mlartifacts", DEBUG="True", DJANGO_SETTINGS_MODULE="webapp.settings",
                  LOG_LEVEL="WARNING", OMP_NUM_THREADS="1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

N_RUNS, N_POINTS, CHUNK, REPEAT = 10_000, 200_000, 1_000, 60


def p95(samples):
    return statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)


def timed(fn, repeat=REPEAT):
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def seed():
    from django.contrib.auth import get_user_model
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from tracking.config import DEFAULTS, OPTIMIZERS, SCHEDULERS
    from tracking.models import Membership, Project, Run, Tag, Team

    call_command("migrate", verbosity=0)
    users = [get_user_model().objects.create_user(f"user{i}", password="bench-pass-123") for i in range(5)]
    team = Team.objects.create(name="Bench")
    for u in users:
        Membership.objects.create(team=team, user=u, role=Membership.ADMIN)
    project = Project.objects.create(team=team, name="big")
    tags = [Tag.objects.create(project=project, name=f"tag{i}") for i in range(8)]
    statuses = [s for s, _ in Run.Status.choices]
    t0 = time.perf_counter()
    runs = []
    for i in range(N_RUNS):
        config = {**DEFAULTS, "optimizer": OPTIMIZERS[i % 5], "lr": 10 ** -(1 + i % 4), "batch_size": 2 ** (4 + i % 5),
                  "epochs": 5 + i % 30, "scheduler": SCHEDULERS[i % 5]}
        runs.append(Run(project=project, owner=users[i % 5], name=f"run-{i:05d}", config=config,
                        status=statuses[i % len(statuses)], best_val_loss=0.1 + (i % 97) / 100,
                        best_val_accuracy=0.5 + (i % 50) / 100, epoch=config["epochs"], step=100, total_steps=100))
    Run.objects.bulk_create(runs, batch_size=1000)
    ids = list(Run.objects.filter(project=project).values_list("pk", flat=True))
    Run.tags.through.objects.bulk_create(
        [Run.tags.through(run_id=pk, tag_id=tags[j % 8].pk) for j, pk in enumerate(ids) if j % 3 == 0], batch_size=2000)
    seed_runs_s = time.perf_counter() - t0

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.create_experiment("bench", artifact_location=f"{VAR}/mlartifacts/bench")
    ml_run = client.create_run(exp)
    rid = ml_run.info.run_id
    t0 = time.perf_counter()
    now = int(time.time() * 1000)
    for start in range(0, N_POINTS, CHUNK):
        client.log_batch(rid, metrics=[Metric("train_loss", 2.3 / (1 + s / 5000) + 0.05 * ((s * 7919) % 13) / 13,
                                              now + s, s) for s in range(start, start + CHUNK)])
    spe = 1000
    epochs = N_POINTS // spe
    client.log_batch(rid, metrics=[Metric("val_loss", 2.0 / (1 + e / 20) + 0.002 * e, now, e) for e in range(1, epochs + 1)]
                     + [Metric("val_accuracy", 1 - 0.5 / (1 + e / 10), now, e) for e in range(1, epochs + 1)])
    client.set_terminated(rid)
    log_s = time.perf_counter() - t0
    big = Run.objects.get(pk=ids[-1])
    Run.objects.filter(pk=big.pk).update(mlflow_run_id=rid, status="succeeded", steps_per_epoch=spe,
                                         total_steps=N_POINTS, step=N_POINTS, epoch=epochs)
    big.refresh_from_db()
    from tracking.series import series_rebuild
    t0 = time.perf_counter()
    series_rebuild(big, client=client)
    rebuild_s = time.perf_counter() - t0
    return project, big, users[0], client, rid, seed_runs_s, log_s, rebuild_s


def main():
    project, big, user, mlflow_client, rid, seed_runs_s, log_s, rebuild_s = seed()
    print(f"seeded {N_RUNS} runs in {seed_runs_s:.1f} s; logged {N_POINTS} train_loss points to MLflow in {log_s:.1f} s "
          f"(log_batch x{CHUNK}); series_rebuild from MLflow {rebuild_s:.1f} s")
    web = Client()
    web.force_login(user)
    history_url = f"/projects/{project.pk}/"

    counts = {}
    for size in (25, 200):
        with CaptureQueriesContext(connection) as ctx:
            assert web.get(history_url, {"size": size}).status_code == 200
        counts[size] = len(ctx.captured_queries)
    print(f"history SQL queries: {counts[25]} at 25 runs/page, {counts[200]} at 200 runs/page")

    history = timed(lambda: web.get(history_url))
    print(f"history page (25 rows, newest first, 10,000 runs): p50 {statistics.median(history):.1f} ms, "
          f"p95 {p95(history):.1f} ms")
    filtered = timed(lambda: web.get(history_url, {"optimizer": "adam", "sort": "-best_val_loss", "page": 3}))
    print(f"history page (filter optimizer, sort best_val_loss, page 3): p50 {statistics.median(filtered):.1f} ms, "
          f"p95 {p95(filtered):.1f} ms")
    history200 = timed(lambda: web.get(history_url, {"size": 200}), repeat=30)
    print(f"history page (200 rows): p95 {p95(history200):.1f} ms")

    run_page = timed(lambda: web.get(f"/runs/{big.pk}/"))
    print(f"run page of the 200,000-point run: p50 {statistics.median(run_page):.1f} ms, p95 {p95(run_page):.1f} ms")
    data = web.get(f"/runs/{big.pk}/data.json").json()
    n_chart = len(data["series"]["train_loss"]["points"])
    chart = timed(lambda: web.get(f"/runs/{big.pk}/data.json"))
    print(f"chart data ({n_chart} of {data['series']['train_loss']['count']} train_loss points): "
          f"p50 {statistics.median(chart):.1f} ms, p95 {p95(chart):.1f} ms")

    mlflow_ms = timed(lambda: mlflow_client.get_metric_history(rid, "train_loss"), repeat=3)
    print(f"MLflow get_metric_history of the same metric ({N_POINTS} points, SQLite store): "
          f"median {statistics.median(mlflow_ms):.0f} ms")
    ok = p95(history) <= 150 and p95(run_page) <= 100 and p95(chart) <= 100 and counts[25] == counts[200]
    print(f"SUMMARY bench_web: history p95 {p95(history):.0f} ms (target 150), run page p95 {p95(run_page):.0f} ms, "
          f"chart data p95 {p95(chart):.0f} ms (target 100), SQL {counts[25]}=={counts[200]} queries at 25/200 rows, "
          f"MLflow full history {statistics.median(mlflow_ms):.0f} ms -> {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
