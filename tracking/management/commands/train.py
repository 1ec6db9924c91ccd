"""python manage.py train CONFIG.json: one run in the foreground, with the worker's engine and
logging (MLflow, progress, checkpoints) but no Redis. Prints the run's id, its MLflow run id
and its best val_loss; a bad config exits 2 with one line naming the field."""
import json
import socket

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tracking.config import ConfigError, validate_config
from tracking.models import Membership, Project, Run, Team

CLI = "cli"


class Command(BaseCommand):
    help = "Train one run of CONFIG.json in the foreground (in the 'cli' team's project unless --project)."

    def add_arguments(self, parser):
        parser.add_argument("config", help="a JSON file holding the run config")
        parser.add_argument("--project", type=int, help="id of the project to file the run under")
        parser.add_argument("--name", default="", help="the run's name")
        parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when there is one")

    def handle(self, *args, **opts):
        config = self._config(opts["config"])
        project, owner = self._project_and_owner(opts["project"])
        run = Run.objects.create(project=project, owner=owner, config=config, queue=config["queue"],
                                 name=opts["name"] or f"cli: {opts['config']}")
        from workers.engine import use_threads_from_env
        from workers.training import train_run

        use_threads_from_env()
        result = train_run(run.pk, worker=f"cli@{socket.gethostname()}", device=opts["device"])
        run.refresh_from_db()
        self.stdout.write(f"run {run.pk}: {run.status}" + (f" ({run.status_reason})" if run.status_reason else ""))
        self.stdout.write(f"mlflow run id: {run.mlflow_run_id}")
        self.stdout.write(f"best val_loss: {run.best_val_loss}")
        if result is None or run.status == Run.Status.FAILED:
            raise CommandError(f"run {run.pk} failed: {run.status_reason}", returncode=1)

    def _config(self, path):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise CommandError(f"config: cannot read {path}: {exc}", returncode=2) from None
        try:
            return validate_config(data)
        except ConfigError as exc:
            raise CommandError(f"config field {exc.field}: {exc.message}", returncode=2) from None

    def _project_and_owner(self, project_id):
        owner, created = get_user_model().objects.get_or_create(username=CLI, defaults={"email": "cli@localhost"})
        if created:
            owner.set_unusable_password()
            owner.save()
        if project_id is not None:
            try:
                return Project.objects.get(pk=project_id), owner
            except Project.DoesNotExist:
                raise CommandError(f"--project: no project {project_id}", returncode=2) from None
        team, _ = Team.objects.get_or_create(name=CLI)
        Membership.objects.get_or_create(team=team, user=owner, defaults={"role": Membership.ADMIN})
        project, _ = Project.objects.get_or_create(team=team, name=CLI,
                                                   defaults={"description": "Runs started with manage.py train."})
        return project, owner
