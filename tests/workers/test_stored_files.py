"""Stored files are data: a pickle planted in MLflow (a model to fine-tune from, a checkpoint to
resume from) is refused by a real worker, which fails the run with the reason, and nothing in
the pickle runs."""
import io
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.waiting import wait_for
from tracking.models import Run
from workers.dispatch import enqueue_run
from workers.weights import UnsafeFileError, load_weights

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Planted:
    """Unpickling this runs a shell command (what an attacker's model.pt would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (subprocess.call, (["touch", self.marker],))


def planted_file(path, marker):
    """A torch file that looks like a Runwise model but whose pickle runs `touch marker`."""
    torch.save({"state_dict": Planted(marker), "config": {}, "n_features": 13, "n_classes": 3}, path)
    return path


def final(run, worker, timeout=120):
    wait_for(lambda: Run.objects.get(pk=run.pk).is_final(), timeout, "the run's end", log=worker.log)
    run.refresh_from_db()
    return run


def test_the_loader_refuses_a_pickle_that_would_run_code_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = planted_file(tmp_path / "model.pt", marker)
    with pytest.raises(UnsafeFileError) as exc:
        load_weights(path, what="the model of run 7 (model/model.pt)")
    assert not marker.exists()
    assert "the model of run 7 (model/model.pt) is not plain weights" in str(exc.value)
    assert str(exc.value).endswith("was not loaded: it asks for commands.call")  # subprocess.call
    with pytest.raises(UnsafeFileError, match="not a readable torch file"):
        load_weights(io.BytesIO(b"not a torch file at all"), what="x")


def test_a_fine_tune_from_a_run_whose_model_was_replaced_by_a_pickle_fails_and_runs_nothing(
        celery_worker_process, run_factory, mlflow_client, tmp_path):
    base = {"dataset": "wine", "epochs": 2, "width": 16}
    source = run_factory(base)
    enqueue_run(source.pk)
    assert final(source, celery_worker_process).status == "succeeded", source.status_reason
    # The attacker overwrites the source run's model artifact in the store.
    artifact_dir = Path(mlflow_client.get_run(source.mlflow_run_id).info.artifact_uri.removeprefix("file://"))
    model = artifact_dir / "model" / "model.pt"
    assert model.exists()
    marker = tmp_path / "code-ran-on-the-worker"
    planted_file(model, marker)

    tuned = run_factory({**base, "init_from_run": source.pk})
    enqueue_run(tuned.pk)
    final(tuned, celery_worker_process)
    assert tuned.status == "failed"
    assert tuned.status_reason.startswith(f"init_from_run: the model of run {source.pk} (model/model.pt) "
                                          "is not plain weights and was not loaded"), tuned.status_reason
    time.sleep(0.5)
    assert not marker.exists()
    assert celery_worker_process.proc.poll() is None  # the worker goes on


def test_a_resume_from_a_planted_checkpoint_fails_and_runs_nothing(
        celery_worker_process, run_factory, mlflow_client, tmp_path):
    from workers.mlflow_logging import experiment_id

    run = run_factory({"dataset": "wine", "epochs": 3, "width": 16})
    exp = experiment_id(mlflow_client, f"project-{run.project_id}", os.environ["MLFLOW_ARTIFACT_ROOT"])
    mlflow_run = mlflow_client.create_run(exp, run_name="planted")
    marker = tmp_path / "code-ran-on-resume"
    planted_file(tmp_path / "last.pt", marker)
    mlflow_client.log_artifact(mlflow_run.info.run_id, str(tmp_path / "last.pt"), "checkpoints")
    # A run that lost its worker: queued again, with its MLflow run and a checkpoint to resume from.
    Run.objects.filter(pk=run.pk).update(mlflow_run_id=mlflow_run.info.run_id, attempts=1)
    enqueue_run(run.pk)
    final(run, celery_worker_process)
    assert run.status == "failed"
    assert run.status_reason.startswith(f"the last checkpoint of MLflow run {mlflow_run.info.run_id} "
                                        "is not plain weights and was not loaded"), run.status_reason
    time.sleep(0.5)
    assert not marker.exists()
    assert celery_worker_process.proc.poll() is None
