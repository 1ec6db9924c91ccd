"""Importing the runs of followed MLflow experiments (read only: nothing is written to MLflow).

`import_followed(followed_id=None)` (beat task tracking.code.tasks.import_followed, every
FOLLOW_INTERVAL seconds) resolves each followed experiment by id or name, lists its runs and
keeps one Run of kind "external" per MLflow run (runs logged by Runwise itself are skipped):
params as config through the parameter mapping, the MLflow status as ours, curves into the
chart series, progress while it runs. A run seen ending is analysed and emailed like ours (the
final analysis task). A deleted MLflow run, a renamed or deleted experiment, and a tracking
server out of reach leave a message on the pages, and nothing crashes.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tracking.models import Run

from . import mapping
from .models import Code, ExternalRun, FollowedExperiment
from .progress import as_history, best, last_value, progress_fields

log = logging.getLogger(__name__)

STATUS = {"RUNNING": Run.Status.RUNNING, "SCHEDULED": Run.Status.RUNNING, "FINISHED": Run.Status.SUCCEEDED,
          "FAILED": Run.Status.FAILED, "KILLED": Run.Status.STOPPED}
MAX_RUNS = 500  # newest runs of an experiment looked at per import


class Unreachable(Exception):
    pass


def _client():
    from tracking.mlflow_io import client_for

    return client_for(settings.MLFLOW_TRACKING_URI)


def _probe(uri: str) -> None:
    """Fail fast on an HTTP tracking server that does not answer (MLflow's client retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=3)
    except requests.RequestException as exc:
        raise Unreachable(f"the MLflow tracking server {uri} is unreachable ({type(exc).__name__})") from None


def import_followed(followed_id: int | None = None) -> int:
    """Import every followed experiment (or one); returns how many runs were created or updated."""
    followed = FollowedExperiment.objects.select_related("project", "created_by")
    if followed_id is not None:
        followed = followed.filter(pk=followed_id)
    followed = list(followed)
    if not followed:
        return 0
    try:
        _probe(settings.MLFLOW_TRACKING_URI)
    except Unreachable as exc:
        FollowedExperiment.objects.filter(pk__in=[f.pk for f in followed]).update(state=str(exc), checked_at=timezone.now())
        return 0
    client = _client()
    changed = 0
    for f in followed:
        try:
            changed += import_experiment(f, client)
        except Exception as exc:  # one experiment's trouble never stops the others; shown on the page
            log.exception("followed experiment %s not imported", f.pk)
            FollowedExperiment.objects.filter(pk=f.pk).update(
                state=f"not imported: {type(exc).__name__}: {str(exc)[:200]}", checked_at=timezone.now())
    return changed


def _resolve(f: FollowedExperiment, client):
    from mlflow.exceptions import MlflowException

    try:
        if f.by_id:
            return client.get_experiment(f.reference)
        return client.get_experiment_by_name(f.reference)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def import_experiment(f: FollowedExperiment, client) -> int:
    from mlflow.entities import ViewType

    experiment = _resolve(f, client)
    now = timezone.now()
    if experiment is None:
        how = "id" if f.by_id else "name"
        FollowedExperiment.objects.filter(pk=f.pk).update(
            state=f"no experiment with the {how} {f.reference!r} on the tracking server (renamed or deleted?)",
            checked_at=now)
        return 0
    state = "the experiment was deleted in MLflow" if experiment.lifecycle_stage == "deleted" else ""
    FollowedExperiment.objects.filter(pk=f.pk).update(experiment_id=experiment.experiment_id,
                                                      experiment_name=experiment.name, state=state, checked_at=now)
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=MAX_RUNS,
                              order_by=["attributes.start_time DESC"])
    # a run imported through another follow of the same experiment (by name and by id) is the same run
    ids = [r.info.run_id for r in runs]
    imported = {e.run.mlflow_run_id: e for e in ExternalRun.objects.filter(
        run__project=f.project, run__mlflow_run_id__in=ids).select_related("run")}
    known = {e.run.mlflow_run_id: e for e in ExternalRun.objects.filter(followed=f).select_related("run")}
    codes = list(Code.objects.filter(project=f.project))
    changed = 0
    for mlflow_run in runs:
        if "runwise.run_id" in mlflow_run.data.tags:
            continue  # logged by Runwise: already in the history
        ext = known.pop(mlflow_run.info.run_id, None) or imported.get(mlflow_run.info.run_id)
        if mlflow_run.info.lifecycle_stage == "deleted":
            if ext is not None:
                _mark_gone(ext, "deleted in MLflow: its curves and params may no longer be readable there")
            continue
        changed += sync_run(f, ext, mlflow_run, client, codes)
    if len(runs) < MAX_RUNS:
        for ext in known.values():  # gone from the server (deleted for good)
            _mark_gone(ext, "no longer on the tracking server (deleted in MLflow)")
    return changed


def _mark_gone(ext: ExternalRun, state: str):
    if ext.state == state:
        return
    ExternalRun.objects.filter(pk=ext.pk).update(state=state, checked_at=timezone.now())
    Run.objects.filter(pk=ext.run_id, status=Run.Status.RUNNING).update(
        status=Run.Status.FAILED, status_reason=f"the MLflow run was {state}", finished_at=timezone.now(),
        eta_seconds=None)


def _time(ms):
    return datetime.fromtimestamp(ms / 1000, tz=dt_timezone.utc) if ms else None


def matching_code(tags: dict, codes) -> tuple[Code | None, str]:
    """Registered code that logged this run, judged from MLflow's source tags, and its entry point."""
    source = tags.get("mlflow.source.name", "")
    repo = tags.get("mlflow.source.git.repoURL") or tags.get("mlflow.gitRepoURL") or ""
    for code in codes:
        if code.source == Code.Source.GIT:
            hit = code.git_url in (source, repo)
        else:
            path = Path(source.removeprefix("file://").split("#")[0]) if source else None
            hit = bool(path and path.is_absolute() and (path == Path(code.path) or Path(code.path) in path.parents))
        if not hit:
            continue
        entry = tags.get("mlflow.project.entryPoint")
        if entry not in code.entry_points:
            script = Path(source).name
            entry = next((n for n, ep in code.entry_points.items() if script and script in ep["command"]),
                         next(iter(code.entry_points), ""))
        return code, entry
    return None, ""


def sync_run(f: FollowedExperiment, ext: ExternalRun | None, mlflow_run, client, codes) -> int:
    """Create or update the external Run of one MLflow run; 1 if anything changed."""
    from tracking.mlflow_io import RunNotFound, coerce, read_run
    from tracking.series import series_append
    from workers.run_callbacks import send_analysis

    from .progress import design_metrics
    from .series import series_replace

    info = mlflow_run.info
    status = STATUS.get(info.status, Run.Status.RUNNING)
    params = dict(mlflow_run.data.params)
    if ext is not None and ext.mlflow_status == info.status and ext.run.is_final() and not ext.state:
        # ended and imported already: its curves do not move; a rename in MLflow is followed
        name = (info.run_name or info.run_id)[:200]
        return Run.objects.filter(pk=ext.run_id).exclude(name=name).update(name=name)
    keys = mapping.key_map(params)
    config = mapping.config_from({k: coerce(v) for k, v in params.items()}, keys)
    try:
        data = read_run(info.run_id, client=client)
    except RunNotFound:
        return 0
    metrics, spe = design_metrics(data)
    started, ended = _time(info.start_time), _time(info.end_time)
    elapsed = ((ended or timezone.now()) - started).total_seconds() if started else None
    fields = progress_fields(metrics, total_epochs=config.get("epochs"), steps_per_epoch=spe, elapsed=elapsed,
                             epoch_metric=last_value(data, "epoch"))
    fields.update(best(metrics), status=status, name=(info.run_name or info.run_id)[:200], config=config,
                  started_at=started, finished_at=ended if status != Run.Status.RUNNING else None,
                  heartbeat_at=timezone.now())
    if status != Run.Status.RUNNING:
        fields["eta_seconds"] = None
        if status == Run.Status.SUCCEEDED and fields.get("total_steps"):
            fields["step"] = fields["total_steps"]
    was_final = ext is not None and ext.run.is_final()
    with transaction.atomic():
        if ext is None:
            code, entry = matching_code(mlflow_run.data.tags, codes)
            run = Run.objects.create(project=f.project, owner=f.created_by, kind=Run.Kind.EXTERNAL, queue="",
                                     mlflow_run_id=info.run_id, **fields)
            ext = ExternalRun.objects.create(run=run, followed=f, params=params, mapping=keys, code=code,
                                             entry_point=entry, mlflow_status=info.status, checked_at=timezone.now())
        else:
            Run.objects.filter(pk=ext.run_id).update(**fields)
            ExternalRun.objects.filter(pk=ext.pk).update(params=params, mapping=keys, mlflow_status=info.status,
                                                         state="", checked_at=timezone.now())
        run_id = ext.run_id
    (series_append if status == Run.Status.RUNNING else series_replace)(run_id, as_history(metrics))
    if status != Run.Status.RUNNING and not was_final:
        # emailed like ours when it ended after the follow began; older runs analysed, not emailed
        recent = ended is None or ended >= f.created_at
        send_analysis(run_id, final=recent)
    elif status == Run.Status.RUNNING and metrics:
        send_analysis(run_id, final=False)
    return 1
