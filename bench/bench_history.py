"""Reading a long MLflow metric history: the public MlflowClient.get_metric_history against
tracking.mlflow_io.metric_history (what `advise --mlflow-run`, the run page's series rebuild, the
worker following a team's script and its resume read), which goes to the store's own sampled read
(MLflow internals, hence this benchmark).

The workload: a script that logs its training loss every step to the shared SQL store, as Lightning
(log_every_n_steps=1) or the Trainer (logging_steps=1) do on a long run: N points of one metric
(default 400,000; log them once, ~40 s). Each read runs in a fresh process, three times; printed:
the wall time and the process's peak memory growth (ru_maxrss) of each, then a one-line summary.
The whole read grows with the history (a run of millions of steps logs that much a metric, several
metrics a run); the bounded read keeps at most HISTORY_POINTS (100,000) points a metric.

    .venv/bin/python bench/bench_history.py [--points 400000]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

READ = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
from mlflow.tracking import MlflowClient
from tracking.mlflow_io import metric_history
uri, run_id, how = sys.argv[1:4]
client = MlflowClient(tracking_uri=uri)
client.get_run(run_id)  # the connection and the imports before the measure
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if how == "whole":
    points = [(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, "loss")]
else:
    points = metric_history(client, run_id, "loss")
seconds = time.perf_counter() - t
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"points": len(points), "seconds": seconds, "mb": grown}))
"""


def log_history(uri: str, n: int) -> str:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("long-history")).info.run_id
    now = int(time.time() * 1000)
    for start in range(0, n, 1000):
        client.log_batch(run_id, metrics=[Metric("loss", 2.0 / (1.0 + s / 1e4), now + s, s)
                                          for s in range(start, min(n, start + 1000))])
    client.set_terminated(run_id)
    return run_id


def read(uri: str, run_id: str, how: str) -> dict:
    out = subprocess.run([sys.executable, "-c", READ, uri, run_id, how, str(ROOT)], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=400_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        t = time.perf_counter()
        run_id = log_history(uri, a.points)
        print(f"logged {a.points:,} points of one metric to {uri} in {time.perf_counter() - t:.0f} s")
        figures = {}
        for how in ("whole", "bounded"):
            runs = [read(uri, run_id, how) for _ in range(a.repeats)]
            secs = statistics.median(r["seconds"] for r in runs)
            mb = statistics.median(r["mb"] for r in runs)
            figures[how] = (runs[0]["points"], secs, mb)
            label = "MlflowClient.get_metric_history" if how == "whole" else "tracking.mlflow_io.metric_history"
            each = ", ".join(f"{r['seconds']:.2f} s" for r in runs)
            print(f"  {label:34s} {runs[0]['points']:>9,} points  {secs:6.2f} s  peak memory +{mb:5.0f} MB"
                  f"  (median of {a.repeats}: {each})")
    (wn, ws, wm), (bn, bs, bm) = figures["whole"], figures["bounded"]
    print(f"SUMMARY history read of {a.points:,} points: whole {ws:.1f} s +{wm:.0f} MB; bounded ({bn:,} points) "
          f"{bs:.1f} s +{bm:.0f} MB: {ws / bs:.1f}x faster, {wm / max(bm, 1):.1f}x less memory")


if __name__ == "__main__":
    main()
