"""MlflowLogger against a recording writer: what reaches MLflow, in which order, and nothing
twice when a run resumes."""
import pytest

from tracking.config import validate_config
from workers.engine import EPOCH_METRICS, STEP_METRICS, Training, fit
from workers.mlflow_logging import MlflowLogger, load_checkpoint_file


class RecordingWriter:
    def log_metrics(self, run_id, points):
        self.calls.append(("metrics", list(points)))

    def __init__(self, tmp_path=None):
        self.calls, self.tmp_path = [], tmp_path

    def log_artifact_object(self, run_id, artifact_path, filename, obj, artifact_uri=None, on_staged=None):
        # saved and read back as the real writer and a resume do (torch.save, weights_only=True)
        import io

        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        buf.seek(0)
        if on_staged is not None:
            on_staged()
        path = f"{artifact_path}/{filename}"
        if self.tmp_path is not None:
            (self.tmp_path / "ckpt.pt").write_bytes(buf.getvalue())
            obj = load_checkpoint_file(self.tmp_path / "ckpt.pt", "cpu")
        else:
            obj = torch.load(buf, weights_only=True)
        self.calls.append(("artifact", path, obj))

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


def test_a_resumed_run_logs_only_what_mlflow_lacks(tmp_path):
    cfg = config(epochs=4)
    writer = RecordingWriter(tmp_path)  # checkpoints read back with weights_only=True
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


def test_a_checkpoint_is_a_copy_that_training_goes_on_past():
    """The writer keeps what it is handed until its thread serialises it: the loop must not
    change it afterwards."""

    class Keep(RecordingWriter):
        def log_artifact_object(self, run_id, artifact_path, filename, obj, artifact_uri=None, on_staged=None):
            self.calls.append(("artifact", f"{artifact_path}/{filename}", obj))  # kept, never released

    writer = Keep()
    r = fit(config(epochs=3), callbacks=[MlflowLogger(FakeClient(), "r1", writer, checkpoint_seconds=0)])
    first = [c[2] for c in writer.calls if c[0] == "artifact"][0]
    assert first["epoch"] == 1
    final = r.model.state_dict()
    assert any(not (first["model"][k] == final[k]).all() for k in final)  # epoch 1's weights, not the last ones
    assert all(first["model"][k].data_ptr() != final[k].data_ptr() for k in final)


def test_the_parameters_copy_runs_beside_the_next_step_and_holds_the_epochs_end_state(monkeypatch):
    """The copy of parameters and optimizer state is taken on the logger's copier thread while
    the loop runs the next step's forward and backward; the loop waits for it before its
    optimizer step, so the checkpoint is the state at the epoch's end even when the copy is slow."""
    import threading
    import time

    import torch

    from workers import mlflow_logging
    from workers.callbacks import Callback
    from workers.engine import detached_copy

    threads = []

    def slow_copy(obj, into=None):
        threads.append(threading.current_thread().name)
        time.sleep(0.3)  # far longer than a step's forward and backward here
        return detached_copy(obj, into)

    monkeypatch.setattr(mlflow_logging, "detached_copy", slow_copy)
    reference = {}

    class Reference(Callback):
        order = 95  # after the logger (90), at the same epoch end: nothing trains in between

        def on_epoch_end(self, training):
            reference[training.epoch] = detached_copy(training.checkpoint(step_history=False))

    def same(a, b):
        if isinstance(a, torch.Tensor):
            return torch.equal(a, b)
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b

    writer = RecordingWriter()
    logger = MlflowLogger(FakeClient(), "r1", writer, checkpoint_seconds=0, log_model=False)
    fit(config(epochs=3, optimizer="adam"), callbacks=[logger, Reference()])
    saved = [c[2] for c in writer.calls if c[0] == "artifact"]
    assert [c["epoch"] for c in saved] == [1, 2, 3]
    for ckpt in saved:
        assert same(ckpt["model"], reference[ckpt["epoch"]]["model"])
        assert same(ckpt["optimizer"], reference[ckpt["epoch"]]["optimizer"])
    assert threads and all(name.startswith("checkpoint-copy") for name in threads)
    assert len(logger.copy_waits) == 3 and min(logger.copy_waits[:2]) > 0.1  # the loop waited before stepping


def test_a_checkpoints_copy_reuses_the_last_ones_buffers_once_it_is_serialised():
    ptrs = []

    class Staging(RecordingWriter):
        def log_artifact_object(self, run_id, artifact_path, filename, obj, artifact_uri=None, on_staged=None):
            if artifact_path == "checkpoints":
                ptrs.append(next(iter(obj["model"].values())).data_ptr())
                if len(ptrs) == 1:
                    on_staged()  # only the first copy is serialised (released)

    fit(config(epochs=3), callbacks=[MlflowLogger(FakeClient(), "r1", Staging(), checkpoint_seconds=0)])
    assert len(ptrs) == 3
    assert ptrs[1] == ptrs[0]  # the first copy was serialised: its buffers hold the second
    assert ptrs[2] != ptrs[1]  # the second was not released: the third is a fresh copy


def test_a_checkpoint_loads_with_weights_only_and_resumes_numpy_rng(tmp_path):
    import numpy as np
    import torch

    from workers.engine import Training

    training = Training(config(epochs=1))
    training.fit()
    torch.save(training.checkpoint(), tmp_path / "last.pt")
    expected = np.random.random(3)
    ckpt = load_checkpoint_file(tmp_path / "last.pt", "cpu")  # weights_only=True inside
    Training(config(epochs=1), checkpoint=ckpt)
    assert np.random.random(3).tolist() == expected.tolist()


def test_a_planted_pickle_in_a_checkpoint_does_not_run(tmp_path):
    import torch

    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    from workers.weights import UnsafeFileError

    torch.save({"version": 2, "x": Planted()}, tmp_path / "last.pt")
    with pytest.raises(UnsafeFileError, match="not plain weights"):
        load_checkpoint_file(tmp_path / "last.pt", "cpu")
    assert not marker.exists()


@pytest.mark.parametrize("status, mlflow_status", [("succeeded", "FINISHED"), ("stopped", "KILLED"),
                                                   ("diverged", "FAILED"), ("failed", "FAILED")])
def test_run_states_map_to_mlflow_states(status, mlflow_status):
    from workers.mlflow_logging import TERMINAL_STATUS

    assert TERMINAL_STATUS[status] == mlflow_status
