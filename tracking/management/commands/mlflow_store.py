from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Create the MLflow store's tables (a new SQLite store migrates on first use), once, before the "
            "MLflow server and the workers open it together. Idempotent.")

    def handle(self, *args, **options):
        from workers.mlflow_logging import make_client

        make_client(settings.MLFLOW_TRACKING_URI).search_experiments(max_results=1)
        self.stdout.write(f"MLflow store ready: {settings.MLFLOW_TRACKING_URI}")
