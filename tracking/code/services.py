"""Write services of registered code: register, set up a run, apply a recommendation, follow
an experiment. Keyword-only functions named <entity>_<action>; errors are MLprojectError
naming the field (nothing written, nothing queued)."""
from __future__ import annotations

from django.db import transaction

from tracking.config import QUEUES
from tracking.models import Project, Recommendation, Run
from tracking.services import _tags_for

from . import mapping, sources
from .mlproject import MLprojectError, parameters_validate, read_mlproject
from .models import Code, CodeRun, FollowedExperiment


def code_register(*, project: Project, user, name: str, path: str = "", git_url: str = "", git_ref: str = "") -> Code:
    """Read the MLproject of a directory under CODE_ROOT or of a git URL at a ref, and store its
    entry points. Runs nothing. The caller checks that `user` is an admin of the project's team."""
    name = (name or "").strip()[:100]
    if not name:
        raise MLprojectError("name", "give the code a name")
    if Code.objects.filter(project=project, name=name).exists():
        raise MLprojectError("name", f"this project already has code named {name!r}")
    if bool((path or "").strip()) == bool((git_url or "").strip()):
        raise MLprojectError("path", "give either a directory under CODE_ROOT or a git URL")
    if (path or "").strip():
        directory = sources.directory_check(path)
        spec = read_mlproject(directory)
        fields = dict(source=Code.Source.DIRECTORY, path=str(directory), commit=sources.directory_commit(directory))
    else:
        commit = sources.git_resolve(git_url, git_ref)
        spec = read_mlproject(sources.checkout(git_url, commit))
        fields = dict(source=Code.Source.GIT, git_url=git_url.strip(), git_ref=(git_ref or "").strip() or "HEAD",
                      commit=commit)
    return Code.objects.create(project=project, name=name, entry_points=spec["entry_points"],
                               registered_by=user, **fields)


def _entry_point(code: Code, entry_point: str) -> dict:
    if entry_point not in code.entry_points:
        raise MLprojectError("entry_point", f"{entry_point!r} is not an entry point of {code.name} "
                                            f"({', '.join(code.entry_points)})")
    return code.entry_points[entry_point]


def default_name(code: Code, entry_point: str, values: dict, mapped: dict) -> str:
    shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in mapped.items()
                      if k in ("lr", "batch_size", "epochs", "optimizer"))
    return f"{code.name}:{entry_point}" + (f" {shown}" if shown else "")


def code_run_create(*, code: Code, owner, entry_point: str = "main", parameters: dict | None = None,
                    name: str = "", queue: str = "cpu", stop_on_diagnosis: bool = False, tags=(), note: str = "",
                    parent: Run | None = None, applied_recommendation: Recommendation | None = None,
                    commit: str | None = None) -> Run:
    """Validate the parameters against the entry point (MLprojectError naming the parameter),
    write the Run (kind "code", config = the DESIGN keys its parameters map to) and its CodeRun,
    and enqueue it once the transaction commits."""
    from workers.dispatch import enqueue_run

    spec = _entry_point(code, entry_point)
    values = parameters_validate(spec, parameters or {})
    if queue not in QUEUES:
        raise MLprojectError("queue", f"must be one of {', '.join(QUEUES)}")
    keys = mapping.key_map(spec["parameters"])
    config = {**mapping.config_from(values, keys), "stop_on_diagnosis": bool(stop_on_diagnosis)}
    with transaction.atomic():
        run = Run.objects.create(
            project=code.project, owner=owner, kind=Run.Kind.CODE, config=config, queue=queue,
            name=(name or "").strip()[:200] or default_name(code, entry_point, values, config), note=note or "",
            parent=parent, applied_recommendation=applied_recommendation)
        CodeRun.objects.create(run=run, code=code, commit=code.commit if commit is None else commit,
                               entry_point=entry_point, parameters=values, mapping=keys)
        if tags:
            run.tags.set(_tags_for(code.project, [t if isinstance(t, str) else t.name for t in tags]))
        transaction.on_commit(lambda: enqueue_run(run.pk))
    return run


class NotApplicable(MLprojectError):
    """A recommendation changes a key that the run's entry point has no parameter for."""


def applicability(run: Run, change: dict) -> str:
    """"" when the change can be applied to this run, else why not (shown beside the recommendation)."""
    if run.kind == Run.Kind.CODE:
        code_run = run.code_run
        _, missing = mapping.change_to_parameters(change, code_run.mapping)
        where = f"entry point {code_run.entry_point!r}"
    elif run.kind == Run.Kind.EXTERNAL:
        ext = run.external_run
        if ext.code_id is None:
            return ""  # shown as command-line arguments to copy
        keys = mapping.key_map(ext.code.entry_points.get(ext.entry_point, {}).get("parameters", {}))
        _, missing = mapping.change_to_parameters(change, keys)
        where = f"entry point {ext.entry_point!r} of {ext.code.name}"
    else:
        return ""
    if missing:
        return f"The {where} has no parameter for {', '.join(missing)}, so this change cannot be applied."
    return ""


def follow_up_parameters(run: Run, change: dict) -> tuple[Code, str, dict, str]:
    """(code, entry point, parameters, commit) of a follow-up of `run` with `change` applied."""
    if run.kind == Run.Kind.CODE:
        cr = run.code_run
        code, entry_point, base, commit = cr.code, cr.entry_point, dict(cr.parameters), cr.commit
        keys = cr.mapping
    else:
        ext = run.external_run
        code, entry_point, commit = ext.code, ext.entry_point, ext.code.commit
        declared = code.entry_points[entry_point]["parameters"]
        base = {k: v for k, v in ext.params.items() if k in declared}
        keys = mapping.key_map(declared)
    reason = applicability(run, change)
    if reason:
        raise NotApplicable("change", reason)
    params, _ = mapping.change_to_parameters(change, keys)
    spec = code.entry_points[entry_point]["parameters"]
    for name, value in params.items():  # an int parameter takes a rounded value (batch_size 45.0 -> 45)
        if spec[name]["type"] == "int" and isinstance(value, float):
            params[name] = int(round(value))
    return code, entry_point, {**base, **params}, commit


def code_run_follow_up(*, run: Run, owner, change: dict, name: str = "",
                       applied_recommendation: Recommendation | None = None, tags=(), note: str = "") -> Run:
    """A new run of the same code, commit and entry point as `run` (a code run, or an external
    run of registered code) with the change applied to the mapped parameters."""
    code, entry_point, params, commit = follow_up_parameters(run, change)
    return code_run_create(code=code, owner=owner, entry_point=entry_point, parameters=params, name=name,
                           queue=run.queue if run.queue in QUEUES else "cpu",
                           stop_on_diagnosis=bool(run.config.get("stop_on_diagnosis")),
                           tags=[t.name for t in run.tags.all()] + list(tags), note=note, parent=run,
                           applied_recommendation=applied_recommendation, commit=commit)


def first_applicable(recommendations: list[dict], run: Run, tried: set):
    """For the autopilot on a code run: the first recommendation not yet tried whose change its
    entry point can take and that changes something: (recommendation, new config), or None."""
    for rec in recommendations:
        change = rec.get("change") or {}
        if not change or rec.get("rule") in tried or applicability(run, change):
            continue
        new_config = {**run.config, **change}
        if new_config != run.config:
            return rec, new_config
    return None


def command_line_arguments(run: Run, change: dict) -> list[str]:
    """For an external run of unregistered code: the change as arguments to copy, under the
    names the run logged its params with (`--learning_rate 0.003`)."""
    keys = run.external_run.mapping
    return [f"--{keys.get(k, k)} {v}" for k, v in change.items()]


def experiment_follow(*, project: Project, user, reference: str) -> FollowedExperiment:
    """Follow an experiment of the tracking server by name or id (checked at the next import)."""
    reference = (reference or "").strip()
    if not reference:
        raise MLprojectError("experiment", "give an experiment name or id")
    if len(reference) > 500:
        raise MLprojectError("experiment", "at most 500 characters")
    if FollowedExperiment.objects.filter(project=project, reference=reference).exists():
        raise MLprojectError("experiment", f"this project already follows {reference!r}")
    with transaction.atomic():
        followed = FollowedExperiment.objects.create(project=project, reference=reference, created_by=user,
                                                     by_id=reference.isdigit())
        transaction.on_commit(lambda: _import_soon(followed.pk))
    return followed


def _import_soon(followed_id: int) -> None:
    from kombu.exceptions import OperationalError

    from webapp.celery import app

    try:
        app.send_task("tracking.code.tasks.import_followed", kwargs={"followed_id": followed_id}, queue="default",
                      retry=False)
    except (OperationalError, ConnectionError, OSError):
        pass  # the beat task imports it at its next period


def experiment_unfollow(*, followed: FollowedExperiment) -> None:
    """Stop importing; the runs already imported stay in the history."""
    followed.delete()
