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
        history = client.get_metric_history(run_id, key)
        points = sorted((m.step, m.timestamp, m.value) for m in history)
        metrics[key] = [[int(step), _value(value)] for step, _, value in points]
    spe = run.data.tags.get("steps_per_epoch", run.data.params.get("steps_per_epoch"))
    spe = coerce(spe) if spe is not None else None
    spe = int(spe) if isinstance(spe, (int, float)) and not isinstance(spe, bool) and spe >= 1 else None
    config.pop("steps_per_epoch", None)
    return {"config": config, "metrics": metrics, "steps_per_epoch": spe,
            "status": STATUS.get(run.info.status, "finished")}
