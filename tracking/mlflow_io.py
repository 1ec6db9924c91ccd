"""Read any MLflow run, logged by this project or by other code, into an advise run input.

    from tracking.mlflow_io import read_run
    run_input = read_run("3f2a...")            # {"config", "metrics", "steps_per_epoch", "status"}

Params become the config (strings coerced to bool/int/float/None where they look like
one); every metric the engine reads is fetched under the name it was logged with: DESIGN.md's
names, common aliases (`loss`, `val_acc`, `valid_loss`, ...), Lightning's `*_step`/`*_epoch`
copies and `lr-<Optimizer>[-pgN]`, Hugging Face's `eval_*` and `learning_rate`, and the `epoch`
metric both log (tracking.rules.loggers: the engine picks one series per DESIGN name and infers
the steps per epoch from `epoch` or the step numbers when no tag says it). The tag (or param)
`steps_per_epoch` gives the epoch length; MLflow's status maps to running / finished / failed.
No Django import.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Optional

from tracking.rules.loggers import canonical_name

STATUS = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished", "FAILED": "failed",
          "KILLED": "failed"}


class RunNotFound(LookupError):
    """No MLflow run with that id in the configured store."""


def coerce(value: str):
    """An MLflow param (always a string) back to the value it was logged from."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", ""):
        return None
    try:
        number = json.loads(text)
    except ValueError:
        return text
    if isinstance(number, (int, float)) and not isinstance(number, bool):
        return number
    return text


def client_for(tracking_uri: Optional[str] = None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))


def metric_sources(keys) -> dict[str, str]:
    """Logged key -> the DESIGN name (or "epoch") it stands for, for every key the engine reads."""
    return {key: target for key in sorted(keys) if (target := canonical_name(key)) is not None}


def _value(v: float):
    if math.isfinite(v) and abs(v) >= sys.float_info.max:  # SQL stores keep +-inf as +-DBL_MAX
        v = math.copysign(math.inf, v)
    return v if math.isfinite(v) else str(v)


# A metric's history is read whole up to this many points; a longer one (a script logging every step
# of a long run, or anyone writing to a shared store) comes back as an even sample of this many, first
# and last kept, so a read's memory and time stay bounded. The engine bins the points by epoch and keeps
# at most tracking.rules.features.MAX_POINTS of them anyway.
HISTORY_POINTS = 100_000
PAGE_POINTS = 10_000  # one request's page where the store samples no history itself (an MLflow server)


def metric_history(client, run_id: str, key: str, limit: Optional[int] = None) -> list[tuple]:
    """(step, timestamp, value) of a metric, sorted, at most `limit` points (an even sample, first
    and last kept, when the history is longer). MlflowClient.get_metric_history has no size limit, so
    this goes to the client's store (MLflow internals, measured in bench/bench_history.py): a SQL
    store samples in SQL (get_metric_history_bulk_interval, what MLflow's UI charts with), any other
    store (an MLflow server) is read in pages and thinned as it comes."""
    limit = HISTORY_POINTS if limit is None else limit
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - an MLflow without SQL stores
        SqlAlchemyStore = ()
    if isinstance(store, SqlAlchemyStore):
        rows = store.get_metric_history_bulk_interval([run_id], key, limit, None, None)
        return sorted((m.step, m.timestamp, m.value) for m in rows)
    if store is not None and hasattr(store, "get_metric_history"):
        return _thinned_pages(store, run_id, key, limit)
    return sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))


def _thinned_pages(store, run_id: str, key: str, limit: int) -> list[tuple]:
    """Page through a history keeping every `stride`-th point; when more than `limit` are kept, every
    other one goes and the stride doubles (memory: `limit` points and one page). The first and last
    points (by step, then time) are kept."""
    kept, stride, index, token = [], 1, 0, None
    first = last = None
    limit = max(2, limit)
    while True:
        page = store.get_metric_history(run_id, key, max_results=PAGE_POINTS, page_token=token)
        for m in page:
            point = (m.step, m.timestamp, m.value)
            first = point if first is None or point[:2] < first[:2] else first
            last = point if last is None or point[:2] > last[:2] else last
            if index % stride == 0:
                kept.append(point)
                if len(kept) > limit - 2:
                    kept, stride = kept[::2], stride * 2
            index += 1
        token = getattr(page, "token", None)
        if not token:
            break
    points = set(kept) | ({first, last} - {None})
    return sorted(points)


def read_run(run_id: str, tracking_uri: Optional[str] = None, client=None) -> dict:
    """The advise run input of one MLflow run; RunNotFound if the store has no such run."""
    from mlflow.exceptions import MlflowException

    client = client or client_for(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RunNotFound(f"no MLflow run {run_id!r} in {client.tracking_uri} ({exc.error_code})") from None
    config = {k: coerce(v) for k, v in run.data.params.items()}
    metrics = {}
    for key in metric_sources(run.data.metrics.keys()):
        metrics[key] = [[int(step), _value(value)] for step, _, value in metric_history(client, run_id, key)]
    spe = run.data.tags.get("steps_per_epoch", run.data.params.get("steps_per_epoch"))
    spe = coerce(spe) if spe is not None else None
    spe = int(spe) if isinstance(spe, (int, float)) and not isinstance(spe, bool) and spe >= 1 else None
    config.pop("steps_per_epoch", None)
    return {"config": config, "metrics": metrics, "steps_per_epoch": spe,
            "status": STATUS.get(run.info.status, "finished")}
