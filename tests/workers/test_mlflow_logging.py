"""MlflowLogger against a recording writer: what reaches MLflow, in which order, and nothing
twice when a run resumes."""
import pytest

from tracking.config import validate_config
from workers.engine import EPOCH_METRICS, STEP_METRICS, Training, fit
from workers.mlflow_logging import MlflowLogger, _portable, _restored


class RecordingWriter:
    def __init__(self):
        self.calls = []

    def log_metrics(self, run_id, points):
        self.calls.append(("metrics", list(points)))

    def log_artifact_object(self, run_id, artifact_path, filename, obj, artifact_uri=None):
        self.calls.append(("artifact", f"{artifact_path}/{filename}", _restored(_portable(obj))))  # as the real writer

    def terminate_run(self, run_id, status):
        self.calls.append(("terminate", status))

    def flush(self):
        self.calls.append(("flush",))

    def error_for(self, run_id):
        return None

    def points(self, key):
        return [(s, v) for kind, *rest in self.calls if kind == "metrics" for k, v, _, s in rest[0] if k == key]

    def artifacts(self):
        return [c[1] for c in self.calls if c[0] == "artifact"]


class FakeClient:
    def __init__(self, logged=None):
        self.batches, self.logged = [], logged or {}

    def log_batch(self, run_id, params=(), tags=()):
        self.batches.append((list(params), list(tags)))

    def get_metric_history(self, run_id, key):
        from mlflow.entities import Metric

        return [Metric(key, 0.0, 0, s) for s in self.logged.get(key, [])]


def config(**kw):
    return validate_config({"dataset": "wine", "epochs": 4, "batch_size": 32, **kw})


def test_it_logs_params_tag_every_point_once_a_checkpoint_per_epoch_and_the_model():
    writer, client = RecordingWriter(), FakeClient()
    r = fit(config(), callbacks=[MlflowLogger(client, "r1", writer, checkpoint_seconds=0)])
    params, tags = client.batches[0][0], client.batches[-1][1]
    assert {p.key: p.value for p in params}["optimizer"] == "sgd"
    assert [(t.key, t.value) for t in tags] == [("steps_per_epoch", str(r.steps_per_epoch))]
    for key in STEP_METRICS + EPOCH_METRICS:
        assert writer.points(key) == r.history[key]
    assert writer.artifacts() == ["checkpoints/last.pt"] * 4 + ["model/model.pt"]
    assert writer.calls[-2:] == [("terminate", "FINISHED"), ("flush",)]
    # every metric point is handed over before the checkpoint taken after it
    first_ckpt = next(i for i, c in enumerate(writer.calls) if c[0] == "artifact")
    logged_before = [p for c in writer.calls[:first_ckpt] if c[0] == "metrics" for p in c[1]]
    assert {(k, s) for k, _, _, s in logged_before} >= {("val_loss", 1), ("train_loss", r.steps_per_epoch - 1)}


def test_checkpoints_are_at_most_every_checkpoint_seconds():
    writer = RecordingWriter()
    fit(config(epochs=6), callbacks=[MlflowLogger(FakeClient(), "r1", writer, checkpoint_seconds=3600)])
    assert writer.artifacts() == ["model/model.pt"]


def test_a_stopped_run_saves_a_checkpoint_where_it_stopped_and_ends_killed():
    from workers.callbacks import Callback

    class Stop(Callback):
        def on_step_end(self, training):
            if training.step == 3:
                training.stop("asked", status="stopped")

    writer = RecordingWriter()
    fit(config(), callbacks=[Stop(), MlflowLogger(FakeClient(), "r1", writer, checkpoint_seconds=3600)])
    assert writer.artifacts() == ["checkpoints/last.pt", "model/model.pt"]
    assert ("terminate", "KILLED") in writer.calls


def test_a_diverged_run_ends_failed_without_a_model():
    writer = RecordingWriter()
    fit(validate_config({"dataset": "digits", "lr": 100, "epochs": 2}),
        callbacks=[MlflowLogger(FakeClient(), "r1", writer)])
    assert writer.artifacts() == [] and ("terminate", "FAILED") in writer.calls


def test_a_resumed_run_logs_only_what_mlflow_lacks():
    cfg = config(epochs=4)
    writer = RecordingWriter()
    fit(cfg, callbacks=[MlflowLogger(FakeClient(), "r1", writer, checkpoint_seconds=0)])
    checkpoint = [c[2] for c in writer.calls if c[0] == "artifact"][1]  # after epoch 2
    assert checkpoint["epoch"] == 2
    spe = checkpoint["step"] // 2
    # The dead attempt had stored steps up to the middle of epoch 3, and epoch metrics to 2.
    logged = {key: range(0, spe * 2 + 5) for key in STEP_METRICS}
    logged.update({key: [1, 2] for key in EPOCH_METRICS})
    resumed = RecordingWriter()
    r = Training(cfg, callbacks=[MlflowLogger(FakeClient(logged), "r1", resumed, resume=True)],
                 checkpoint=checkpoint).fit()
    assert [s for s, _ in resumed.points("train_loss")] == list(range(spe * 2 + 5, spe * 4))
    assert [s for s, _ in resumed.points("val_loss")] == [3, 4]
    assert r.history["val_loss"] == writer.points("val_loss")


def test_tensors_travel_as_numpy_and_come_back_equal():
    import torch

    obj = {"w": torch.randn(3, 3), "n": [torch.arange(4), (1, 2)], "rng": torch.get_rng_state(), "b": torch.ones(2).bool()}
    back = _restored(_portable(obj))
    assert torch.equal(back["w"], obj["w"]) and torch.equal(back["n"][0], obj["n"][0]) and back["n"][1] == (1, 2)
    assert back["rng"].dtype == torch.uint8 and back["b"].dtype == torch.bool


@pytest.mark.parametrize("status, mlflow_status", [("succeeded", "FINISHED"), ("stopped", "KILLED"),
                                                   ("diverged", "FAILED"), ("failed", "FAILED")])
def test_run_states_map_to_mlflow_states(status, mlflow_status):
    from workers.mlflow_logging import TERMINAL_STATUS

    assert TERMINAL_STATUS[status] == mlflow_status
