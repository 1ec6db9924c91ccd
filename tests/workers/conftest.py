import os

import pytest


@pytest.fixture(scope="session")
def mlflow_client():
    """A client of this session's MLflow SQLite store (created, and migrated, once)."""
    from workers.mlflow_logging import make_client

    client = make_client(os.environ["MLFLOW_TRACKING_URI"])
    client.search_experiments()
    return client


@pytest.fixture
def run_factory(db, django_user_model):
    from tracking.config import validate_config
    from tracking.models import Project, Run, Team

    def make(config=None, **fields):
        user, _ = django_user_model.objects.get_or_create(username="trainer")
        team, _ = Team.objects.get_or_create(name="workers")
        project, _ = Project.objects.get_or_create(team=team, name="workers")
        config = validate_config(config or {"dataset": "wine", "epochs": 3})
        return Run.objects.create(project=project, owner=user, name="r", config=config, queue=config["queue"], **fields)

    return make
