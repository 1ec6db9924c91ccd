"""`manage.py advise FILE` / `manage.py advise --mlflow-run RUN_ID`: the engine's answer as JSON.

Bad input (unreadable file, bad JSON, wrong types, no metric point at all, unknown run)
exits 2 with one line on stderr.
"""
import json
import logging
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tracking.rules import RunInputError, advise


def _fail(message: str):
    return CommandError(" ".join(str(message).split()), returncode=2)


class Command(BaseCommand):
    help = "Diagnose a run's curves and recommend the next config change (DESIGN.md, 'The advise contract')."
    # a command-line tool over a file or one MLflow run: Django's system checks (URLconf, admin, every
    # view module) would double its start-up time and check nothing it uses
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="a run input JSON file ('-' for stdin)")
        parser.add_argument("--mlflow-run", dest="mlflow_run", metavar="RUN_ID",
                            help="read the run from the configured MLflow store instead")

    def handle(self, *args, file=None, mlflow_run=None, **options):
        if bool(file) == bool(mlflow_run):
            raise _fail("give either FILE or --mlflow-run RUN_ID (exactly one)")
        run_input = self._from_mlflow(mlflow_run) if mlflow_run else self._from_file(file)
        try:
            answer = advise(run_input)
        except RunInputError as exc:
            raise _fail(f"bad run input: {exc}") from None
        self.stdout.write(json.dumps(answer, indent=2))

    def _from_file(self, path):
        try:
            text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(f"{path} is not valid JSON: {exc}") from None

    def _from_mlflow(self, run_id):
        import mlflow  # noqa: F401  (configures its loggers on import; quiet them after)

        from tracking.mlflow_io import RunNotFound, read_run

        for name in ("mlflow", "alembic"):  # a new store logs its migrations: keep stderr to one line
            logging.getLogger(name).setLevel(logging.WARNING)

        try:
            return read_run(run_id, tracking_uri=settings.MLFLOW_TRACKING_URI)
        except RunNotFound as exc:
            raise _fail(exc) from None
