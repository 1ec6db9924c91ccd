"""The pure training API: every config key takes effect, runs are reproducible, callbacks
can stop a run, a non-finite loss ends it as diverged, and a checkpoint resumes exactly."""
import math

import pytest
import torch

from tracking.config import validate_config
from workers.callbacks import Callback, Recorder
from workers.engine import EPOCH_METRICS, STEP_METRICS, Training, fit


def cfg(**kw):
    base = dict(dataset="wine", epochs=3, batch_size=16, seed=0)
    return validate_config({**base, **kw})


def losses(result):
    return [v for _, v in result.history["train_loss"]]


def test_it_returns_the_design_metrics_with_their_steps():
    r = fit(cfg(epochs=2))
    spe = r.steps_per_epoch
    assert spe == math.ceil(142 / 16)  # 178 wine rows, 36 held out
    for name in STEP_METRICS:
        assert [s for s, _ in r.history[name]] == list(range(2 * spe))
    for name in EPOCH_METRICS:
        assert [e for e, _ in r.history[name]] == [1, 2]
    assert r.status == "succeeded" and r.epochs_run == 2 and r.steps_run == 2 * spe
    assert r.best_val_loss == min(v for _, v in r.history["val_loss"])
    assert r.best_val_accuracy == max(v for _, v in r.history["val_accuracy"])


def test_a_cpu_run_is_reproducible_from_its_seed():
    a, b, c = fit(cfg(dropout=0.2, augment=True)), fit(cfg(dropout=0.2, augment=True)), fit(cfg(dropout=0.2, augment=True, seed=1))
    assert a.history == b.history
    assert a.history["train_loss"] != c.history["train_loss"]


@pytest.mark.parametrize("key, value", [
    ("optimizer", "adam"), ("optimizer", "adamw"), ("optimizer", "rmsprop"), ("optimizer", "adagrad"),
    ("momentum", 0.9), ("weight_decay", 0.1), ("batch_size", 8), ("dropout", 0.3), ("batch_norm", True),
    ("label_smoothing", 0.2), ("augment", True), ("width", 16), ("depth", 3), ("activation", "tanh"),
    ("activation", "gelu"), ("activation", "leaky_relu"), ("lr", 0.05), ("val_fraction", 0.3),
    ("train_subset", 50), ("scheduler", "cosine"), ("warmup_epochs", 1.0),
])
def test_every_config_key_changes_the_run(key, value):
    assert losses(fit(cfg(**{key: value}))) != losses(fit(cfg()))


def test_nesterov_changes_sgd_with_momentum():
    assert losses(fit(cfg(momentum=0.9, nesterov=True))) != losses(fit(cfg(momentum=0.9)))


def test_weight_decay_is_decoupled_for_adamw():
    adam, adamw = fit(cfg(optimizer="adam", weight_decay=0.1)), fit(cfg(optimizer="adamw", weight_decay=0.1))
    assert losses(adam) != losses(adamw)


def test_the_cnn_trains_on_digits():
    r = fit(validate_config(dict(dataset="digits", model="cnn", width=8, depth=2, epochs=2, optimizer="adam",
                                 lr=0.01, batch_size=64)))
    assert r.status == "succeeded" and r.best_val_accuracy > 0.5
    assert any(isinstance(m, torch.nn.Conv2d) for m in r.model.modules())


@pytest.mark.parametrize("dataset", ["digits", "breast_cancer", "wine", "moons", "spirals", "classification"])
def test_every_built_in_data_set_trains(dataset):
    r = fit(validate_config(dict(dataset=dataset, epochs=2, optimizer="adam", lr=0.01, batch_size=64)))
    assert r.status == "succeeded" and r.best_val_accuracy > 0.4


def test_a_csv_data_set_trains_on_its_label_column(tmp_path):
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=rng)
    rows = ["a,b,colour,label"] + [f"{a:.3f},{b:.3f},{'red' if c > 0 else 'blue'},{'yes' if a + b > 0 else 'no'}"
                                   for a, b, c in x.tolist()]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows))
    r = fit(validate_config(dict(dataset="csv", csv_path=str(path), csv_label="label", epochs=5,
                                 optimizer="adam", lr=0.01)))
    assert r.best_val_accuracy > 0.8


def test_a_csv_without_the_label_column_is_a_clear_error(tmp_path):
    from workers.datasets import DatasetError

    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DatasetError, match="no column 'label'"):
        fit(validate_config(dict(dataset="csv", csv_path=str(path), csv_label="label")))


def test_a_huge_learning_rate_ends_the_run_as_diverged_at_the_non_finite_step():
    r = fit(validate_config(dict(dataset="digits", lr=100, epochs=5)))
    assert r.status == "diverged"
    (step, loss), (_, grad_norm) = r.history["train_loss"][-1], r.history["grad_norm"][-1]
    assert step == r.diverged_step and not (math.isfinite(loss) and math.isfinite(grad_norm))
    assert all(math.isfinite(v) for _, v in r.history["train_loss"][:-1] + r.history["grad_norm"][:-1])
    assert "non-finite" in r.reason


def test_grad_norm_is_logged_before_clipping_and_clipping_takes_effect():
    clipped, free = fit(cfg(grad_clip=0.01, lr=0.5)), fit(cfg(lr=0.5))
    assert clipped.history["grad_norm"][0] == free.history["grad_norm"][0]
    assert max(v for _, v in clipped.history["grad_norm"]) > 0.01
    assert losses(clipped)[1:] != losses(free)[1:]


def test_early_stopping_ends_a_run_whose_val_loss_stops_improving():
    r = fit(validate_config(dict(dataset="digits", epochs=200, train_subset=60, lr=0.1, optimizer="adam",
                                 early_stopping_patience=3)))
    val = [v for _, v in r.history["val_loss"]]
    best = val.index(min(val))
    assert r.status == "succeeded" and "early stopping" in r.reason
    assert r.epochs_run == best + 1 + 3 < 200


def test_a_callback_stops_the_run_with_a_reason_after_the_current_step():
    class StopAtStep(Callback):
        def on_step_end(self, training):
            if training.step == 7:
                training.stop("enough", status="stopped")

    rec = Recorder()
    r = fit(cfg(epochs=5), callbacks=[StopAtStep(), rec])
    assert (r.status, r.reason, r.steps_run) == ("stopped", "enough", 7)
    hooks = [h for h, _, _ in rec.calls]
    assert hooks[0] == "on_fit_start" and hooks[-2:] == ["on_fit_end", "on_teardown"]
    assert hooks.count("on_step_end") == 7


def test_the_fit_end_hook_runs_when_training_fails():
    class Boom(Callback):
        def on_epoch_end(self, training):
            raise RuntimeError("boom")

    rec = Recorder()
    with pytest.raises(RuntimeError):
        fit(cfg(), callbacks=[Boom(), rec])
    assert [c[0] for c in rec.calls[-2:]] == ["on_fit_end", "on_teardown"]


def test_a_run_resumed_from_a_checkpoint_matches_an_uninterrupted_run():
    config = cfg(epochs=6, dropout=0.2, augment=True, momentum=0.9, scheduler="cosine")
    full = fit(config)
    saved = {}

    class SaveAt3(Callback):
        def on_epoch_end(self, training):
            if training.epoch == 3:
                saved["ckpt"] = {k: v for k, v in training.checkpoint().items()}
                torch.save(saved["ckpt"], buf)
                training.stop("crash", status="stopped")

    import io
    buf = io.BytesIO()
    fit(config, callbacks=[SaveAt3()])
    buf.seek(0)
    resumed = Training(config, checkpoint=torch.load(buf, weights_only=False)).fit()
    assert resumed.history == full.history
    assert resumed.best_val_loss == full.best_val_loss


def test_warmup_starts_at_a_hundredth_of_the_lr():
    r = fit(cfg(lr=0.1, warmup_epochs=1.0))
    lrs = [v for _, v in r.history["lr"]]
    spe = r.steps_per_epoch
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[:spe] == sorted(lrs[:spe]) and lrs[spe] == pytest.approx(0.1)


def test_values_read_in_bulk_from_the_device_match_values_read_at_every_step():
    config = cfg(epochs=3, grad_clip=0.5)
    per_step = Training(config)
    assert not per_step.defer_reads  # on the CPU a value is read at once
    deferred = Training(config)
    deferred.defer_reads = True      # as on CUDA: 0-d tensors copied back in bulk
    assert deferred.fit().history == per_step.fit().history


def test_a_divergence_found_in_bulk_ends_the_history_at_the_non_finite_step():
    config = validate_config(dict(dataset="digits", lr=100, epochs=5))
    per_step, deferred = Training(config), Training(config)
    deferred.defer_reads = True
    a, b = per_step.fit(), deferred.fit()
    assert a.status == b.status == "diverged" and a.diverged_step == b.diverged_step
    assert a.steps_run == b.steps_run == a.diverged_step + 1
    assert len(b.history["train_loss"]) == len(a.history["train_loss"])
