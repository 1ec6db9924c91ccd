"""Log runs to the session's real MLflow store (MLFLOW_TRACKING_URI from the root conftest)."""
import os
import time

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient


def client():
    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def experiment_id(c, name="foreign-code"):
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=os.path.join(os.environ["MLFLOW_ARTIFACT_ROOT"], name))


def log_run(params: dict, metrics: dict, tags: dict | None = None, status="FINISHED") -> str:
    """A run logged the way other code would: string params, any metric names, batched points."""
    c = client()
    run = c.create_run(experiment_id(c))
    rid = run.info.run_id
    now = int(time.time() * 1000)
    points = [Metric(name, float(v), now + i, int(step)) for name, pts in metrics.items()
              for i, (step, v) in enumerate(pts)]
    c.log_batch(rid, params=[Param(k, str(v)) for k, v in params.items()],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])
    for i in range(0, len(points), 900):
        c.log_batch(rid, metrics=points[i:i + 900])
    c.set_terminated(rid, status=status)
    return rid
