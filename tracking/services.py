"""Write services: keyword-only functions named <entity>_<action>.

Views, the API, the rules helpers and the email helpers call these; nothing else
writes runs, teams, invites or memberships.
"""
from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .config import ConfigError, validate_config
from .datasets import CsvError, summarise_csv, uploads
from .limits import BUILTIN_SHAPES, DataShape
from .limits import run_limits_check as limits_check
from .models import Invite, Membership, Project, Recommendation, Run, Tag, Team


class ServiceError(ValueError):
    """A request that is well-formed but not allowed now (e.g. removing the last admin)."""


# ---- runs -------------------------------------------------------------------------------

def _default_name(config: dict) -> str:
    return f"{config['model']}-{config['dataset']}-{config['optimizer']}-lr{config['lr']:g}"


TAG_MAX_LENGTH = 50  # Tag.name's column


def tag_names_parse(text: str) -> list[str]:
    """'a, b ,a' -> ['a', 'b'], checked by tag_names_clean."""
    return tag_names_clean((text or "").split(","))


def tag_names_clean(names) -> list[str]:
    """Tag names stripped, blanks and duplicates dropped, order kept. The form, the API and the
    services all take at most RUN_MAX_TAGS tags of at most 50 characters: more is a ConfigError
    naming "tags", and nothing is written."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError("tags", "must be a list of names")
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if len(names) > settings.RUN_MAX_TAGS:
        raise ConfigError("tags", f"at most {settings.RUN_MAX_TAGS} tags, not {len(names)}")
    long = next((n for n in names if len(n) > TAG_MAX_LENGTH), None)
    if long is not None:
        raise ConfigError("tags", f"a tag has at most {TAG_MAX_LENGTH} characters ({long[:20]}... has {len(long)})")
    return names


def _tags_for(project: Project, names) -> list[Tag]:
    names = tag_names_clean(names)
    Tag.objects.bulk_create([Tag(project=project, name=n) for n in names], ignore_conflicts=True)
    by_name = {t.name: t for t in Tag.objects.filter(project=project, name__in=names)}
    return [by_name[n] for n in names]


def run_create(*, project: Project, owner, config: dict, name: str = "", parent: Run | None = None,
               applied_recommendation=None, tags=(), note: str = "") -> Run:
    """Validate the config (raises ConfigError naming the field, nothing written), write the row,
    and enqueue it once the transaction commits, so a run is never lost between the two."""
    from workers.dispatch import enqueue_run

    config = validate_config(config)
    tags = tag_names_clean([t if isinstance(t, str) else t.name for t in tags])
    run_limits_check(config=config, team_id=project.team_id)
    if config.get("init_from_run") and not Run.objects.filter(
            pk=config["init_from_run"], project__team_id=project.team_id).exists():
        raise ConfigError("init_from_run", "no such run in this team")
    with transaction.atomic():
        run = Run.objects.create(
            project=project, owner=owner, config=config, queue=config["queue"],
            name=(name or "").strip()[:200] or _default_name(config), note=note or "",
            parent=parent, applied_recommendation=applied_recommendation,
        )
        if tags:
            run.tags.set(_tags_for(project, tags))
        transaction.on_commit(lambda: enqueue_run(run.pk))
    return run


def run_clone(*, source: Run, owner, changes: dict | None = None, name: str = "", note: str = "") -> Run:
    """A new run with the source's config (plus changes), recording the source as its parent."""
    return run_create(project=source.project, owner=owner, config={**source.config, **(changes or {})},
                      name=name or f"{source.name} (clone)", parent=source,
                      tags=[t.name for t in source.tags.all()], note=note)


def run_request_stop(*, run: Run) -> Run:
    """Ask the worker to stop the run. A run still queued stops at once (the worker's conditional
    claim then finds nothing to do); a final run is left as it is."""
    now = timezone.now()
    stopped = Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.STOPPED, stop_requested=True, finished_at=now,
        status_reason="Stopped before it started.")
    if not stopped:
        Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(stop_requested=True)
    run.refresh_from_db()
    return run


def run_annotate(*, run: Run, note: str, tags) -> Run:
    """Set the run's free-text note and its tags (names)."""
    tags = tag_names_clean(tags)
    with transaction.atomic():
        run.note = note or ""
        run.save(update_fields=["note"])
        run.tags.set(_tags_for(run.project, tags))
    return run


def _data_shape(config: dict, team_id: int) -> DataShape:
    """Rows, input features and classes of the config's data set (an upload: its stored summary;
    ConfigError when the file is not this team's upload or has no such label)."""
    if config["dataset"] != "csv":
        return DataShape(*BUILTIN_SHAPES[config["dataset"]])
    info = uploads.csv_info(path=config["csv_path"], team_id=team_id)
    if info.get("label") != config["csv_label"]:
        try:
            summary = summarise_csv(config["csv_path"], label=config["csv_label"], name=info.get("name", "the CSV"),
                                    limits=uploads.csv_limits())
        except CsvError as exc:
            raise ConfigError("csv_label", str(exc)) from None
        info = summary.as_dict()
    return DataShape(info["rows"], info["features"], max(2, info["classes"]))


def run_limits_check(*, config: dict, team_id: int):
    """The run's estimate; ConfigError naming the field when it would pass a limit (settings
    RUN_MEMORY_LIMIT_MB, RUN_TIME_LIMIT, RUN_MAX_STEPS) or use another team's upload."""
    return limits_check(config, _data_shape(config, team_id), memory_mb=settings.RUN_MEMORY_LIMIT_MB,
                        time_limit=settings.RUN_TIME_LIMIT, max_steps=settings.RUN_MAX_STEPS)


def recommendation_apply(*, rec: Recommendation, user) -> Run:
    """The recommendation's follow-up run, created once. The recommendation is claimed by a
    conditional UPDATE (new -> applied) in the transaction that creates the run: a second click,
    or a recommendation dismissed meanwhile, creates nothing (ServiceError); a bad config
    (ConfigError) rolls the claim back."""
    from .config import apply_change

    run = rec.run
    with transaction.atomic():
        if not Recommendation.objects.filter(pk=rec.pk, state=Recommendation.State.NEW).update(
                state=Recommendation.State.APPLIED):
            state = Recommendation.objects.values_list("state", flat=True).get(pk=rec.pk)
            raise ServiceError(f"This recommendation was already {state}.")
        return run_create(project=run.project, owner=user, config=apply_change(run.config, rec.change),
                          name=f"{run.name} · {rec.rule.split('.')[-1].replace('_', ' ')}",
                          parent=run, applied_recommendation=rec, tags=[t.name for t in run.tags.all()])


def recommendation_dismiss(*, rec: Recommendation) -> bool:
    """Hide a recommendation not yet applied; an applied one stays applied. True if dismissed."""
    return bool(Recommendation.objects.filter(pk=rec.pk, state=Recommendation.State.NEW).update(
        state=Recommendation.State.DISMISSED))


# ---- teams ------------------------------------------------------------------------------

def team_create(*, name: str, creator) -> Team:
    with transaction.atomic():
        team = Team.objects.create(name=name.strip())
        Membership.objects.create(team=team, user=creator, role=Membership.ADMIN)
    return team


def project_create(*, team: Team, name: str, description: str = "") -> Project:
    """A new project; a name the team already has (two submissions at once included: the unique
    constraint decides) is a ConfigError naming "name"."""
    try:
        with transaction.atomic():
            return Project.objects.create(team=team, name=name.strip(), description=description)
    except IntegrityError:
        raise ConfigError("name", "the team already has a project with this name") from None


def invite_create(*, team: Team, created_by) -> Invite:
    return Invite.objects.create(team=team, created_by=created_by)


def invite_accept(*, invite: Invite, user) -> Membership:
    """Join the invite's team. An invite is used once and expires after 7 days."""
    existing = Membership.objects.filter(team=invite.team, user=user).first()
    if existing:
        return existing
    with transaction.atomic():
        claimed = Invite.objects.filter(pk=invite.pk, used_at__isnull=True).update(
            used_at=timezone.now(), used_by=user)
        if not claimed or not invite.is_usable():
            raise ServiceError("This invite link has been used or has expired.")
        return Membership.objects.create(team=invite.team, user=user, role=Membership.MEMBER)


def user_signup_with_invite(*, invite: Invite, username: str, email: str, password: str):
    """A person without an account signs up through an invite link and joins its team, in one step
    (no account is left behind when the invite turns out used or expired)."""
    from django.contrib.auth import get_user_model

    with transaction.atomic():
        user = get_user_model().objects.create_user(username, email, password)
        invite_accept(invite=invite, user=user)
    return user


def member_remove(*, membership: Membership, by=None) -> None:
    """Remove a member from a team; a team always keeps at least one admin. The team's admin rows
    are locked (SELECT ... FOR UPDATE; SQLite's write lock is taken at BEGIN) before counting, so
    two admins removing each other at once leave one: the second sees the first's removal, and
    `by` (the admin asking) is checked to be an admin still."""
    with transaction.atomic():
        admins = set(Membership.objects.select_for_update().filter(team_id=membership.team_id, role=Membership.ADMIN)
                     .values_list("user_id", flat=True))
        if by is not None and by.pk not in admins:
            raise ServiceError("Only an admin of the team can remove members.")
        if not Membership.objects.filter(pk=membership.pk).exists():
            return  # removed meanwhile
        if membership.is_admin() and admins - {membership.user_id} == set():
            raise ServiceError("A team needs at least one admin.")
        Membership.objects.filter(pk=membership.pk).delete()
