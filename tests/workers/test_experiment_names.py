"""A project's MLflow experiment is named after its team and project; one made under the old name
("project-<id>") is renamed, so the project keeps its one experiment and its runs."""
import pytest

from tracking.models import Project, Team
from workers.mlflow_logging import experiment_name, project_experiment_id

pytestmark = pytest.mark.django_db


def a_project(name="vision"):
    team = Team.objects.create(name="Vision lab")
    return Project.objects.create(team=team, name=name)


def test_the_experiment_is_named_after_team_and_project(mlflow_client, tmp_path):
    project = a_project("digits baseline")
    exp_id = project_experiment_id(mlflow_client, project, str(tmp_path))
    experiment = mlflow_client.get_experiment(exp_id)
    assert experiment.name == f"Vision lab / digits baseline #{project.pk}" == experiment_name(project)
    assert experiment.artifact_location.endswith(f"/project-{project.pk}")  # a plain folder name
    assert project_experiment_id(mlflow_client, project, str(tmp_path)) == exp_id  # found again, not re-made


def test_an_experiment_under_the_old_name_is_renamed_with_its_runs(mlflow_client, tmp_path):
    project = a_project()
    old = mlflow_client.create_experiment(f"project-{project.pk}", artifact_location=str(tmp_path / "old"))
    ml_run = mlflow_client.create_run(old)
    assert project_experiment_id(mlflow_client, project, str(tmp_path)) == old
    assert mlflow_client.get_experiment(old).name == experiment_name(project)
    assert mlflow_client.get_run(ml_run.info.run_id).info.experiment_id == old
