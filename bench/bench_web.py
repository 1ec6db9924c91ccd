"""Benchmark of the web pages and of the analysis on a big project, as a real run looks.

Seeds a temporary project with 10,000 runs (bulk_create) and one run with three per-step metrics
(train_loss, lr, grad_norm) of 200,000 steps each plus its epoch metrics, written to a temporary
SQLite MLflow store (SqlStoreWriter, the worker's own writer) and to the chart series as the
worker appends them (a batch of 1,000 steps at a time). Then measures, side by side:
  - in-process (Django test Client): the run history page p95 at 25 and 200 rows, filtered and
    sorted, and its SQL query count at both page sizes (constant); the run page and data.json;
  - under gunicorn (webapp/gunicorn.conf.py, 2 workers, over loopback HTTP): the same pages,
    and the run page and data.json again with gunicorn's defaults (no gc.freeze) for comparison;
  - the end-to-end analysis of the 200,000-step run (tracking.tasks.analyse_run: task start to
    diagnosis stored), and beside it the old way (the whole MLflow history read, then advised);
  - MLflow's own `get-history-bulk-interval` (what its UI's charts call) on the same run and
    metric, from an `mlflow server`, against our data.json under gunicorn.
Targets (issue 15): history p95 <= 100 ms filtered + sorted, <= 150 ms at 200 rows; run page and
data.json p95 <= 50 ms under gunicorn; analysis <= 1 s; chart data >= 50x faster than MLflow's.
Prints each figure; the last line is a one-line summary.
"""
import http.client
import os
import shutil
import socket
import statistics
import subprocess
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

N_RUNS, N_STEPS, CHUNK, REPEAT = 10_000, 200_000, 1_000, 60
HTTP_REPEAT = int(os.environ.get("BENCH_HTTP_REPEAT", "300"))
STEP_KEYS = ("train_loss", "lr", "grad_norm")


def p95(samples):
    return statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)


CPU = {}  # figure -> median CPU ms of this process per call (what the code costs, whatever the load)


def timed(fn, repeat=REPEAT, name=None):
    fn()  # warm-up
    samples, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    if name:
        CPU[name] = statistics.median(cpu)
    return samples


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path, timeout=60, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port} within {timeout} s")


# ---------------------------------------------------------------- seeding

def curve(key, s):
    if key == "train_loss":
        return 2.3 / (1 + s / 5000) + 0.05 * ((s * 7919) % 13) / 13
    if key == "lr":
        return 0.1 * (0.5 ** (s // 50_000))
    return 1.0 + 0.2 * ((s * 104729) % 17) / 17


def seed():
    from django.contrib.auth import get_user_model

    from tracking.config import DEFAULTS, OPTIMIZERS, SCHEDULERS
    from tracking.models import Membership, Project, Run, Tag, Team
    from tracking.series import series_append
    from workers.mlflow_logging import SqlStoreWriter, make_client

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

    client = make_client(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.create_experiment("bench", artifact_location=f"{VAR}/mlartifacts/bench")
    config = {**DEFAULTS, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "epochs": 200}
    rid = client.create_run(exp).info.run_id
    for k, v in config.items():
        client.log_param(rid, k, "" if v is None else str(v))
    spe = 1000
    client.set_tag(rid, "steps_per_epoch", str(spe))
    big = Run.objects.get(pk=ids[-1])
    Run.objects.filter(pk=big.pk).update(mlflow_run_id=rid, status="succeeded", steps_per_epoch=spe, config=config,
                                         total_steps=N_STEPS, step=N_STEPS, epoch=N_STEPS // spe)
    writer = SqlStoreWriter.for_client(client)
    t0 = time.perf_counter()
    now = int(time.time() * 1000)
    for start in range(0, N_STEPS, CHUNK):  # as the worker: MLflow, then the chart series
        steps = range(start, start + CHUNK)
        points = {key: [(s, curve(key, s)) for s in steps] for key in STEP_KEYS}
        end = start + CHUNK
        if end % spe == 0:
            e = end // spe
            points.update(train_loss_epoch=[(e, 2.3 / (1 + end / 5000))], val_loss=[(e, 2.0 / (1 + e / 20) + 0.002 * e)],
                          train_accuracy=[(e, 1 - 0.4 / (1 + e / 10))], val_accuracy=[(e, 1 - 0.5 / (1 + e / 10))])
        writer.write(rid, [(key, v, now + s, s) for key, pts in points.items() for s, v in pts])
        series_append(big.pk, points)
    client.set_terminated(rid)
    log_s = time.perf_counter() - t0
    big.refresh_from_db()
    return project, big, users[0], client, rid, seed_runs_s, log_s


# ---------------------------------------------------------------- gunicorn

class Gunicorn:
    """gunicorn serving the bench's database on a free port: with webapp/gunicorn.conf.py, or
    with gunicorn's defaults (`config=None`)."""

    def __init__(self, config="webapp/gunicorn.conf.py", workers=2):
        self.port = free_port()
        cmd = [sys.executable, "-m", "gunicorn", "webapp.wsgi"]
        if config:
            cmd += ["-c", config]
        cmd += ["--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--access-logfile", "/dev/null"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, GUNICORN_ACCESS_LOG=""),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.port, "/accounts/login/", proc=self.proc)

    def cpu_seconds(self):
        """CPU seconds used so far by the master and its workers (from /proc)."""
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            children = []
        total = 0
        for pid in pids + [int(c) for c in children]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def timed(self, path, cookie, repeat=HTTP_REPEAT):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": cookie}

        def get():
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, (path, resp.status)

        for _ in range(10):  # each worker's first requests (imports, template compilation)
            get()
        samples = []
        cpu0 = self.cpu_seconds()
        for _ in range(repeat):
            t0 = time.perf_counter()
            get()
            samples.append((time.perf_counter() - t0) * 1000)
        self.cpu_ms = (self.cpu_seconds() - cpu0) * 1000 / repeat
        conn.close()
        return samples

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def session_cookie(web):
    from django.conf import settings

    return f"{settings.SESSION_COOKIE_NAME}={web.cookies[settings.SESSION_COOKIE_NAME].value}"


# ---------------------------------------------------------------- MLflow's own chart endpoint

def mlflow_bulk_interval(rid, key, repeat=10):
    """p50 ms of MLflow's get-history-bulk-interval (the call its UI's charts make) on one run's
    metric, from an `mlflow server` on the bench's store, asking for as many points as our series
    keeps (2,000)."""
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen([str(mlflow_bin), "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", os.environ["MLFLOW_TRACKING_URI"],
                             "--artifacts-destination", f"{VAR}/mlartifacts"],
                            cwd=VAR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(port, "/health", timeout=120, proc=proc)
        path = (f"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={rid}&metric_key={key}"
                f"&max_results=2000")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        samples, n_points = [], 0
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body[:300]
            if i:  # the first call warms the server
                samples.append((time.perf_counter() - t0) * 1000)
            n_points = body.count(b'"step"')
        return statistics.median(samples), n_points
    finally:
        proc.terminate()
        proc.wait(30)


# ---------------------------------------------------------------- analysis

def analysis_end_to_end(big, repeat=7):
    """ms from the analyse_run task's start to the diagnosis stored (the task body, in-process)."""
    from tracking.models import Run
    from tracking.tasks import analyse_run

    samples = []
    for _ in range(repeat):
        Run.objects.filter(pk=big.pk).update(analysed_at=None)
        t0 = time.perf_counter()
        analyse_run.apply(args=[big.pk], kwargs={"final": False})
        samples.append((time.perf_counter() - t0) * 1000)
        assert Run.objects.get(pk=big.pk).analysed_at is not None
    return samples


def analysis_from_mlflow(rid):
    """The old way, once: the whole MLflow history read (tracking.mlflow_io.read_run), then advised."""
    from tracking.mlflow_io import read_run
    from tracking.rules import advise

    t0 = time.perf_counter()
    answer = advise(read_run(rid, tracking_uri=os.environ["MLFLOW_TRACKING_URI"]))
    return (time.perf_counter() - t0) * 1000, answer


def main():
    project, big, user, mlflow_client, rid, seed_runs_s, log_s = seed()
    print(f"seeded {N_RUNS} runs in {seed_runs_s:.1f} s; one run of {N_STEPS} steps with {len(STEP_KEYS)} per-step "
          f"metrics ({len(STEP_KEYS) * N_STEPS} points) stored in MLflow and its chart series in {log_s:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    web = Client()
    web.force_login(user)
    history_url = f"/projects/{project.pk}/"
    filtered_q = "?optimizer=adam&sort=-best_val_loss&page=3"
    run_url, data_url = f"/runs/{big.pk}/", f"/runs/{big.pk}/data.json"

    counts = {}
    for size in (25, 200):
        with CaptureQueriesContext(connection) as ctx:
            assert web.get(history_url, {"size": size}).status_code == 200
        counts[size] = len(ctx.captured_queries)
    print(f"history SQL queries: {counts[25]} at 25 runs/page, {counts[200]} at 200 runs/page")

    print("in-process (Django test client):")
    history = timed(lambda: web.get(history_url), name="history")
    print(f"  history page (25 rows, newest first, 10,000 runs): p50 {statistics.median(history):.1f} ms, "
          f"p95 {p95(history):.1f} ms")
    filtered = timed(lambda: web.get(history_url + filtered_q), name="filtered")
    print(f"  history page (filter optimizer, sort best_val_loss, page 3): p50 {statistics.median(filtered):.1f} ms, "
          f"p95 {p95(filtered):.1f} ms")
    history200 = timed(lambda: web.get(history_url, {"size": 200}), repeat=30, name="history200")
    print(f"  history page (200 rows): p50 {statistics.median(history200):.1f} ms, p95 {p95(history200):.1f} ms")
    run_page = timed(lambda: web.get(run_url), name="run page")
    print(f"  run page of the 200,000-step run: p50 {statistics.median(run_page):.1f} ms, p95 {p95(run_page):.1f} ms")
    data = web.get(data_url).json()
    n_chart = {k: len(data["series"][k]["points"]) for k in STEP_KEYS}
    chart = timed(lambda: web.get(data_url), name="data.json")
    print(f"  data.json ({'/'.join(str(n) for n in n_chart.values())} of {N_STEPS} points of "
          f"{'/'.join(STEP_KEYS)}, and the epoch metrics): p50 {statistics.median(chart):.1f} ms, "
          f"p95 {p95(chart):.1f} ms")

    print("  CPU time of this process per request (median; what the code costs whatever the load): "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in CPU.items()))

    cookie = session_cookie(web)
    print(f"under gunicorn (2 workers, loopback HTTP, {HTTP_REPEAT} requests each, one client):")
    g = Gunicorn()
    server_cpu = {}
    try:
        g_run = g.timed(run_url, cookie)
        server_cpu["run page"] = g.cpu_ms
        g_data = g.timed(data_url, cookie)
        server_cpu["data.json"] = g.cpu_ms
        g_filtered = g.timed(history_url + filtered_q, cookie, repeat=100)
        server_cpu["history filtered + sorted, page 3"] = g.cpu_ms
        g_200 = g.timed(history_url + "?size=200", cookie, repeat=60)
        server_cpu["history, 200 rows"] = g.cpu_ms
    finally:
        g.stop()
    for name, s in (("run page", g_run), ("data.json", g_data), ("history filtered + sorted, page 3", g_filtered),
                    ("history, 200 rows", g_200)):
        print(f"  {name}: p50 {statistics.median(s):.1f} ms, p95 {p95(s):.1f} ms, max {max(s):.0f} ms; "
              f"gunicorn's CPU {server_cpu[name]:.1f} ms a request (mean)")
    g = Gunicorn(config=None)
    try:
        d_run, d_data = g.timed(run_url, cookie), g.timed(data_url, cookie)
    finally:
        g.stop()
    print(f"  gunicorn's defaults (no gc.freeze), same pages: run page p50 {statistics.median(d_run):.1f} / "
          f"p95 {p95(d_run):.1f} / max {max(d_run):.0f} ms, data.json p50 {statistics.median(d_data):.1f} / "
          f"p95 {p95(d_data):.1f} / max {max(d_data):.0f} ms")

    e2e = analysis_end_to_end(big)
    from tracking.models import Run

    stored = Run.objects.get(pk=big.pk).analysis["diagnoses"][0]["id"]
    old_ms, old_answer = analysis_from_mlflow(rid)
    print(f"analysis of the 200,000-step run (analyse_run: task start to diagnosis stored, from the stored series): "
          f"median {statistics.median(e2e):.0f} ms, max {max(e2e):.0f} ms; first diagnosis {stored!r}")
    print(f"  the old way (whole MLflow history read, {len(STEP_KEYS) * N_STEPS} points, then advise): "
          f"{old_ms:.0f} ms; first diagnosis {old_answer['diagnoses'][0]['id']!r}")

    mlflow_ms, mlflow_points = mlflow_bulk_interval(rid, "train_loss")
    ratio = mlflow_ms / p95(g_data)
    print(f"MLflow get-history-bulk-interval (its UI's chart call), train_loss of the same run, {mlflow_points} points: "
          f"p50 {mlflow_ms:.0f} ms = {ratio:.0f}x our data.json p95 under gunicorn (all seven series)")

    targets = {
        "history filtered+sorted p95 <= 100": p95(g_filtered) <= 100,
        "history 200 rows p95 <= 150": p95(g_200) <= 150,
        "run page p95 <= 50": p95(g_run) <= 50,
        "data.json p95 <= 50": p95(g_data) <= 50,
        "analysis <= 1000": max(e2e) <= 1000,
        "chart data >= 50x": ratio >= 50,
        "constant SQL": counts[25] == counts[200],
    }
    missed = [k for k, ok in targets.items() if not ok]
    print(f"SUMMARY bench_web (under gunicorn): history filtered+sorted p95 {p95(g_filtered):.0f} ms (target 100), "
          f"200 rows p95 {p95(g_200):.0f} ms (150), run page p95 {p95(g_run):.0f} ms, data.json p95 {p95(g_data):.0f} ms "
          f"(50; gunicorn defaults {p95(d_run):.0f}/{p95(d_data):.0f}), analysis 200k steps max {max(e2e):.0f} ms (1000; "
          f"from MLflow {old_ms:.0f}), MLflow bulk-interval {ratio:.0f}x (50), SQL {counts[25]}=={counts[200]} -> "
          f"{'PASS' if not missed else 'MISS: ' + ', '.join(missed)}")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(VAR, ignore_errors=True)
