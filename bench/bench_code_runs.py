"""Registered code through Runwise against `mlflow run` of the same MLflow project.

Starts redis-server and a warm `celery worker` (free port, temp dirs), registers
examples/pytorch-plain, and interleaves:

- a ~60 s run (30 epochs padded to 2 s each by the script's --epoch_seconds) started the way the
  "Start" button does (services.code_run_create: the row, enqueued on commit) until the run is
  final in the database, against `mlflow run examples/pytorch-plain --env-manager local` of the
  same parameters until the command exits: the overhead is the difference of the wall times;
- short runs (1 epoch): the time from "Start" (resp. launching `mlflow run`) to the script's first
  logged metric (its timestamp in MLflow), p50 and p95.

    .venv/bin/python bench/bench_code_runs.py      # BENCH_REPEATS (2), BENCH_LATENCY_RUNS (6)

Prints the figures; the last line is the summary.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stores import ROOT, throwaway_env  # noqa: E402

TMP, REDIS_PORT = throwaway_env("runwise-bench-code-", CODE_ROOT=str(ROOT / "examples"))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

REPEATS = int(os.environ.get("BENCH_REPEATS", "2"))
LATENCY_RUNS = int(os.environ.get("BENCH_LATENCY_RUNS", "6"))
LONG = {"epochs": 30, "epoch_seconds": 2.0}
SHORT = {"epochs": 1}
PROJECT = ROOT / "examples" / "pytorch-plain"


def first_metric_ms(client, run_id):
    run = client.get_run(run_id)
    stamps = [m.timestamp for key in run.data.metrics for m in client.get_metric_history(run_id, key)]
    return min(stamps) if stamps else None


def through_runwise(code, owner, params):
    from tracking.code.services import code_run_create
    from tracking.models import Run

    started_ms, started = time.time() * 1000, time.monotonic()
    run = code_run_create(code=code, owner=owner, parameters=params)
    while not Run.objects.get(pk=run.pk).is_final():
        time.sleep(0.02)
    wall = time.monotonic() - started
    run.refresh_from_db()
    assert run.status == "succeeded", run.status_reason
    return wall, run.mlflow_run_id, started_ms


def through_mlflow_run(params, experiment):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    args = [str(Path(sys.executable).parent / "mlflow"), "run", str(PROJECT), "-e", "main", "--env-manager", "local",
            "--experiment-name", experiment]
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    before = {r.info.run_id for r in _runs(client, experiment)}
    started_ms, started = time.time() * 1000, time.monotonic()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - started
    [run_id] = [r.info.run_id for r in _runs(client, experiment) if r.info.run_id not in before]
    return wall, run_id, started_ms


def _runs(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    from django.contrib.auth import get_user_model
    from mlflow.tracking import MlflowClient

    from tracking.code.services import code_register
    from tracking.models import Membership, Project, Team

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench")
    team = Team.objects.create(name="bench")
    Membership.objects.create(team=team, user=user, role=Membership.ADMIN)
    project = Project.objects.create(team=team, name="bench")
    code = code_register(project=project, user=user, name="plain", path="pytorch-plain")
    client = MlflowClient()
    client.search_experiments()

    redis = subprocess.Popen([shutil.which("redis-server"), "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    log = open(TMP / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-P", "solo", "-Q", "cpu,gpu,default",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(8)  # the worker warms up (torch, MLflow) before the first run
        through_runwise(code, user, SHORT)  # a first run warms the store and the worker's imports
        rw_wall, ml_wall, rw_first, ml_first = [], [], [], []
        for i in range(REPEATS):
            wall, run_id, t0 = through_runwise(code, user, LONG)
            rw_wall.append(wall)
            rw_first.append((first_metric_ms(client, run_id) - t0) / 1000)
            wall, run_id, t0 = through_mlflow_run(LONG, "bench-mlflow-run")
            ml_wall.append(wall)
            ml_first.append((first_metric_ms(client, run_id) - t0) / 1000)
            print(f"60 s run {i + 1}: Runwise {rw_wall[-1]:.1f} s, mlflow run {ml_wall[-1]:.1f} s", flush=True)
        for i in range(LATENCY_RUNS):
            _, run_id, t0 = through_runwise(code, user, SHORT)
            rw_first.append((first_metric_ms(client, run_id) - t0) / 1000)
            _, run_id, t0 = through_mlflow_run(SHORT, "bench-mlflow-run")
            ml_first.append((first_metric_ms(client, run_id) - t0) / 1000)
        overheads = [(r - m) / m * 100 for r, m in zip(rw_wall, ml_wall)]
        print(f"wall time of the ~60 s run: Runwise median {statistics.median(rw_wall):.1f} s, "
              f"mlflow run median {statistics.median(ml_wall):.1f} s")
        print("overhead per pair: " + ", ".join(f"{o:+.1f}%" for o in overheads))
        print(f"Start -> first logged metric over {len(rw_first)} runs: Runwise p50 {pct(rw_first, .5):.2f} s, "
              f"p95 {pct(rw_first, .95):.2f} s; mlflow run p50 {pct(ml_first, .5):.2f} s, p95 {pct(ml_first, .95):.2f} s")
        print(f"summary: Runwise vs mlflow run on a 60 s run {statistics.median(overheads):+.1f}% (target <= 5%); "
              f"first metric p95 {pct(rw_first, .95):.2f} s vs {pct(ml_first, .95):.2f} s")
    finally:
        worker.terminate()
        worker.wait(30)
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
