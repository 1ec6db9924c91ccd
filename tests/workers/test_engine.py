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
    resumed = Training(config, checkpoint=torch.load(buf, weights_only=True)).fit()  # data only
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


# ---------------------------------------------------------------- flat parameters

@pytest.mark.parametrize("name,extra", [("sgd", dict(momentum=0.9, nesterov=True, weight_decay=1e-3)),
                                        ("adam", dict(weight_decay=1e-4)), ("adamw", dict(weight_decay=0.01)),
                                        ("rmsprop", dict(momentum=0.5)), ("adagrad", {})])
def test_one_flat_parameter_per_group_updates_the_model_exactly_as_one_per_layer(name, extra):
    from workers.engine import flatten_optimizer, make_optimizer
    from workers.nets import build_model

    config = cfg(optimizer=name, lr=0.01, **extra)

    def model():
        torch.manual_seed(0)
        return build_model(config, 13, 3)

    per_layer, flat = model(), model()
    opt_a = make_optimizer(config, list(per_layer.parameters()))
    opt_b, grad = flatten_optimizer(make_optimizer(config, list(flat.parameters())))
    assert len(opt_b.param_groups) == 1 and len(opt_b.param_groups[0]["params"]) == 1
    x, y = torch.randn(64, 13, generator=torch.Generator().manual_seed(1)), torch.arange(64) % 3
    for _ in range(5):
        for m, opt in ((per_layer, opt_a), (flat, opt_b)):
            loss = torch.nn.functional.cross_entropy(m(x), y)
            if m is flat:
                grad.zero_()
            else:
                opt.zero_grad()
            loss.backward()
            opt.step()
    for (k, a), (_, b) in zip(per_layer.state_dict().items(), flat.state_dict().items()):
        assert torch.equal(a, b), k  # the same arithmetic, element by element
    flat_param = opt_b.param_groups[0]["params"][0]
    assert all(p.untyped_storage().data_ptr() == flat_param.untyped_storage().data_ptr() for p in flat.parameters())


def test_fine_tuning_groups_become_one_flat_parameter_each_with_their_own_lr():
    t = Training(cfg(freeze_layers=1, lr_layer_factor=3.0, depth=3, width=16, lr=0.09))
    groups = t.optimizer.param_groups
    assert [len(g["params"]) for g in groups] == [1, 1, 1]
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.03, 0.09])
    frozen = t.model[0].weight.detach().clone()
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.fit()
    assert torch.equal(t.model[0].weight, frozen) and t.model[0].weight.grad is None
    assert all(not torch.equal(before[k], v) for k, v in t.model.state_dict().items() if not k.startswith("0."))


def test_a_checkpoint_of_version_1_with_one_optimizer_state_per_layer_resumes_exactly():
    config = cfg(epochs=4, optimizer="adam", lr=0.01)
    full = fit(config)
    saved = {}

    class SaveAt2(Callback):
        def on_epoch_end(self, training):
            if training.epoch == 2:
                saved["ckpt"] = training.checkpoint()
                training.stop("crash", status="stopped")

    fit(config, callbacks=[SaveAt2()])
    ckpt = saved["ckpt"]
    # As version 1 saved it: one entry per layer, each the layer's slice of the flat state.
    sizes = [v.numel() for v in ckpt["model"].values()]
    flat_state = ckpt["optimizer"]["state"][0]
    per_layer, offset = {}, 0
    for i, n in enumerate(sizes):
        per_layer[i] = {k: (v[offset:offset + n].clone() if v.dim() else v.clone()) for k, v in flat_state.items()}
        offset += n
    group = {**ckpt["optimizer"]["param_groups"][0], "params": list(range(len(sizes)))}
    old = {**ckpt, "version": 1, "optimizer": {"state": per_layer, "param_groups": [group]}}
    resumed = Training(config, checkpoint=old).fit()
    assert resumed.history == full.history


def test_a_large_model_keeps_one_tensor_a_layer_and_resumes_exactly_with_gradient_clipping():
    """Above FLAT_MAX_BYTES the optimizer keeps one tensor a layer and the gradients are set to
    None each step (the backward hands its fresh ones over); clipping works on them, and a
    checkpoint that records this layout resumes exactly."""
    from workers.engine import FLAT_MAX_BYTES

    config = cfg(epochs=3, width=512, depth=2, optimizer="adam", lr=0.003, grad_clip=0.5)
    t = Training(config)
    assert sum(p.numel() * 4 for p in t.params) > FLAT_MAX_BYTES
    assert t.flat_grad is None and len(t.optimizer.param_groups[0]["params"]) == len(t.params)
    small = Training(cfg(epochs=1))
    assert small.flat_grad is not None
    full = t.fit()
    saved = {}

    class SaveAt1(Callback):
        def on_epoch_end(self, training):
            if training.epoch == 1:
                saved["ckpt"] = training.checkpoint()
                training.stop("crash", status="stopped")

    fit(config, callbacks=[SaveAt1()])
    assert saved["ckpt"]["flat_optimizer"] is False
    resumed = Training(config, checkpoint=saved["ckpt"]).fit()
    assert resumed.history == full.history
    assert max(v for _, v in full.history["grad_norm"]) > 0.5  # clipping had work to do
