"""Fine-tuning through the engine: `fit` honours freeze_layers and the discriminative LRs, and a
run on a real worker starts from another run's final model stored in MLflow."""
import time

import mlflow
import pytest
import torch

from tracking.config import validate_config
from workers.engine import Training, fit

torch.set_num_threads(1)


def test_fit_freezes_the_first_groups_and_scales_the_lrs_of_the_others():
    config = validate_config({"dataset": "wine", "epochs": 2, "depth": 3, "width": 16, "lr": 0.05,
                              "freeze_layers": 1, "lr_layer_factor": 2.0, "scheduler": "cosine"})
    training = Training(config)
    before = training.model[0].weight.detach().clone()
    result = training.fit()
    assert result.status == "succeeded"
    assert torch.equal(before, training.model[0].weight)
    lrs = [g["lr"] for g in training.optimizer.param_groups]
    last = result.history["lr"][-1][1]
    assert lrs == pytest.approx([last / 4, last / 2, last])


def test_a_plain_config_trains_exactly_as_before():
    config = validate_config({"dataset": "wine", "epochs": 2, "width": 16})
    assert len(Training(config).optimizer.param_groups) == 1
    assert fit(config).best_val_loss == pytest.approx(fit(config).best_val_loss)


@pytest.mark.slow
def test_a_run_on_the_worker_starts_from_another_runs_final_model(celery_worker_process, team_users):
    from tracking.config import ConfigError
    from tracking.models import Run
    from tracking.services import run_create
    from workers.dispatch import enqueue_run
    from workers.finetune import state_dict_from_run

    base = {"dataset": "wine", "epochs": 2, "depth": 2, "width": 16, "lr": 0.05}
    source = run_create(project=team_users["project"], owner=team_users["admin"], config=base, name="source")

    def wait_final(run):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_final():
                return run
            time.sleep(0.2)
        raise AssertionError(celery_worker_process.log()[-3000:])

    wait_final(source)
    assert source.status == "succeeded", source.status_reason
    trained = state_dict_from_run(source.pk)
    tuned = run_create(project=team_users["project"], owner=team_users["admin"], name="tuned",
                       config={**base, "init_from_run": source.pk, "freeze_layers": 1, "seed": 7})
    wait_final(tuned)
    assert tuned.status == "succeeded", tuned.status_reason
    after = state_dict_from_run(tuned.pk)
    assert torch.equal(after["0.weight"], trained["0.weight"])       # frozen: exactly the source's
    assert not torch.equal(after["2.weight"], trained["2.weight"])   # trained on from the source's
    params = mlflow.MlflowClient().get_run(tuned.mlflow_run_id).data.params
    assert params["init_from_run"] == str(source.pk) and params["freeze_layers"] == "1"
    with pytest.raises(ConfigError) as exc:  # the service refuses a run that does not exist
        run_create(project=team_users["project"], owner=team_users["admin"], config={**base, "init_from_run": 99999})
    assert exc.value.field == "init_from_run"
    # A run whose source never trained fails on the worker at once, with the reason.
    never = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="never trained",
                               config=validate_config(base), status="failed")
    broken = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="from nowhere",
                                config=validate_config({**base, "init_from_run": never.pk}), queue="cpu")
    enqueue_run(broken.pk)
    wait_final(broken)
    assert broken.status == "failed" and "no MLflow run" in broken.status_reason
