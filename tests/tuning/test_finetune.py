"""Fine-tuning: frozen layer groups, discriminative LRs through the schedule, and starting from
another run's model stored in MLflow."""
import io

import mlflow
import pytest
import torch

from tracking.config import validate_config
from workers import finetune
from workers.engine import Training

torch.set_num_threads(1)


def config(**kw):
    return validate_config({"dataset": "digits", "epochs": 1, "depth": 3, "width": 32, "lr": 0.1, **kw})


def test_it_groups_an_mlp_into_hidden_blocks_and_a_head():
    t = Training(config(batch_norm=True, dropout=0.1))
    groups = finetune.layer_groups(t.model)
    assert len(groups) == 4
    assert [type(m).__name__ for m in groups[0]] == ["Linear", "BatchNorm1d", "ReLU", "Dropout"]
    assert [type(m).__name__ for m in groups[-1]] == ["Linear"]


def test_freezing_keeps_the_first_layers_unchanged_through_training():
    t = Training(config(freeze_layers=2))
    finetune.prepare(t, load_state=None)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.fit()
    after = t.model.state_dict()
    assert torch.equal(before["0.weight"], after["0.weight"])    # group 0 frozen
    assert torch.equal(before["2.weight"], after["2.weight"])    # group 1 frozen
    assert not torch.equal(before["4.weight"], after["4.weight"])  # group 2 trains
    assert not torch.equal(before["6.weight"], after["6.weight"])  # the head trains
    assert not any(p.requires_grad for p in t.model[0].parameters())


def test_each_earlier_group_gets_the_lr_of_the_next_divided_by_the_factor():
    t = Training(config(freeze_layers=1, lr_layer_factor=3.0, scheduler="cosine", epochs=2))
    finetune.prepare(t, load_state=None)
    groups = t.optimizer.param_groups
    assert [g["group"] for g in groups] == [1, 2, 3]
    lr = t.schedule.apply(t.optimizer, 5)
    assert [g["lr"] for g in groups] == pytest.approx([lr / 9, lr / 3, lr])
    t.fit()
    last = t.history["lr"][-1][1]
    assert [g["lr"] for g in groups] == pytest.approx([last / 9, last / 3, last])


def test_a_plain_run_is_left_as_it_was():
    t = Training(config())
    optimizer, schedule = t.optimizer, t.schedule
    finetune.prepare(t, load_state=None)
    assert t.optimizer is optimizer and t.schedule is schedule and len(optimizer.param_groups) == 1


def test_it_loads_matching_weights_and_trains_a_head_of_another_size_from_scratch():
    source = Training(validate_config({"dataset": "classification", "epochs": 1, "depth": 2, "width": 16}))
    source.fit()
    other_inputs = Training(validate_config({"dataset": "wine", "epochs": 1, "depth": 2, "width": 16}))
    copied = finetune.load_matching(other_inputs.model, source.model.state_dict())
    assert "0.weight" not in copied and "2.weight" in copied  # 13 vs 20 inputs: the first layer differs
    narrower = Training(validate_config({"dataset": "wine", "epochs": 1, "depth": 2, "width": 8}))
    with pytest.raises(finetune.InitError):
        finetune.load_matching(narrower.model, source.model.state_dict())
    same_inputs = Training(validate_config({"dataset": "classification", "epochs": 1, "depth": 2, "width": 16,
                                            "seed": 3}))
    state = dict(source.model.state_dict())
    state["4.weight"] = torch.zeros(7, 16)  # a head for 7 classes
    copied = finetune.load_matching(same_inputs.model, state)
    assert "0.weight" in copied and "4.weight" not in copied
    assert torch.equal(same_inputs.model[0].weight, source.model[0].weight)


@pytest.mark.django_db
def test_init_from_run_reads_the_final_model_from_the_runs_mlflow_artifacts(team_users, tmp_path):
    from tracking.models import Run

    trained = Training(config())
    trained.fit()
    client = mlflow.MlflowClient()
    exp = client.create_experiment(f"finetune-{tmp_path.name}", artifact_location=str(tmp_path / "art"))
    ml_run = client.create_run(exp)
    buf = io.BytesIO()  # what workers/mlflow_logging.py stores as model/model.pt
    torch.save({"state_dict": trained.model.state_dict(), "config": trained.config}, buf)
    (tmp_path / "model.pt").write_bytes(buf.getvalue())
    client.log_artifact(ml_run.info.run_id, str(tmp_path / "model.pt"), "model")
    source = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="source",
                                config=config(), status="succeeded", mlflow_run_id=ml_run.info.run_id)
    t = Training(config(init_from_run=source.pk, freeze_layers=1, seed=9))
    finetune.prepare(t)
    assert torch.equal(t.model[0].weight, trained.model[0].weight)
    assert torch.equal(t.model[6].weight, trained.model[6].weight)
    missing = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="never ran",
                                 config=config(), status="failed")
    with pytest.raises(finetune.InitError, match="no MLflow run"):
        finetune.prepare(Training(config(init_from_run=missing.pk)))
