"""Runs logged by other loggers (Lightning, Hugging Face, plain scripts) are read under DESIGN.md's
names and units; every point of every series is checked."""
import numpy as np
import pytest

from tracking.rules import RunInputError, advise, read_run_input
from tracking.rules.loggers import canonical_name, choose_sources

from . import curves as c


@pytest.mark.parametrize("logged, design", [
    ("train_loss_step", "train_loss"), ("train_loss_epoch", "train_loss_epoch"), ("loss_step", "train_loss"),
    ("loss_epoch", "train_loss_epoch"), ("val_loss", "val_loss"), ("val_acc", "val_accuracy"),
    ("val_loss_epoch", "val_loss"), ("train_acc_epoch", "train_accuracy"), ("lr-SGD", "lr"),
    ("lr-Adam-pg0", "lr"), ("lr-AdamW/pg1", "lr"), ("loss", "train_loss"), ("eval_loss", "val_loss"),
    ("eval_accuracy", "val_accuracy"), ("eval_acc", "val_accuracy"), ("learning_rate", "lr"), ("epoch", "epoch"),
    ("valid_loss", "val_loss"), ("acc", "train_accuracy"), ("Val_Loss", "val_loss"),
    ("eval_runtime", None), ("val_loss_step", None), ("train_acc_step", None), ("momentum-SGD", None),
])
def test_logged_names_map_to_design_names(logged, design):
    assert canonical_name(logged) == design


def test_one_series_is_chosen_per_design_name():
    # Hugging Face logs one `train_loss` (the run's mean) at the end: its `loss` curve wins
    assert choose_sources({"loss": 40, "train_loss": 1, "eval_loss": 4, "epoch": 44})["train_loss"] == "loss"
    # a DESIGN name with a curve wins over an alias; an LR monitor's first group over the others
    sources = choose_sources({"loss": 40, "train_loss": 40, "lr-Adam-pg1": 40, "lr-Adam-pg0": 40, "foo": 3})
    assert sources == {"train_loss": "train_loss", "lr": "lr-Adam-pg0"}


def lightning_run(val, train_epoch, spe=25, log_every=5, with_epoch_metric=True, lr=0.05):
    """What Lightning's MLFlowLogger writes: values at global steps, `epoch` 0-based beside them."""
    metrics = {"train_loss_step": [], "train_loss_epoch": [], "val_loss": [], "val_acc": [], "lr-SGD": [],
               "epoch": []}
    rng = np.random.default_rng(0)
    for e, (v, t) in enumerate(zip(val, train_epoch)):
        for s in range(e * spe, (e + 1) * spe):
            if (s + 1) % log_every == 0:
                metrics["train_loss_step"].append([s, float(t * (1 + 0.05 * rng.standard_normal()))])
                metrics["epoch"].append([s, e])
            metrics["lr-SGD"].append([s, lr])
        end = (e + 1) * spe - 1
        metrics["val_loss"].append([end, float(v)])
        metrics["val_acc"].append([end, 0.9])
        metrics["train_loss_epoch"].append([end, float(t)])
        metrics["epoch"].append([end, e])
    if not with_epoch_metric:
        del metrics["epoch"]
    return {"config": {}, "metrics": metrics, "steps_per_epoch": None, "status": "finished"}


@pytest.mark.parametrize("with_epoch_metric", [True, False])
def test_lightning_steps_per_epoch_are_inferred_and_evidence_speaks_in_epochs(with_epoch_metric):
    train, val = c.overfitting(40)
    run = read_run_input(lightning_run(val, train, with_epoch_metric=with_epoch_metric))
    assert run.steps_per_epoch == 25
    assert list(run.metrics["val_loss"].steps[:3]) == [1, 2, 3] and run.metrics["val_loss"].steps[-1] == 40
    assert run.sources["train_loss"] == "train_loss_step" and run.sources["lr"] == "lr-SGD"
    answer = advise(lightning_run(val, train, with_epoch_metric=with_epoch_metric))
    top = answer["diagnoses"][0]
    assert top["id"] == "overfitting"
    assert top["epochs"][1] == 40, top
    assert "epoch 999" not in top["evidence"] and "epoch 13" in top["evidence"], top["evidence"]


def test_hugging_face_epoch_metric_gives_steps_per_epoch_and_eval_epochs():
    spe, n = 16, 12
    train, val = c.healthy(n)
    metrics = {"loss": [], "learning_rate": [], "epoch": [], "eval_loss": [], "train_loss": []}
    for s in range(1, n * spe + 1):
        if s % 4 == 0:
            metrics["loss"].append([s, float(train[(s - 1) // spe])])
            metrics["learning_rate"].append([s, 5e-5 * (1 - s / (n * spe))])
            metrics["epoch"].append([s, s / spe])
        if s % spe == 0:
            metrics["eval_loss"].append([s, float(val[s // spe - 1])])
            metrics["epoch"].append([s, s / spe])
    metrics["train_loss"].append([n * spe, float(np.mean(train))])  # Trainer's summary at the end
    run = read_run_input({"config": {}, "metrics": metrics})
    assert run.steps_per_epoch == spe
    assert list(run.metrics["val_loss"].steps) == list(range(1, n + 1))
    assert len(run.metrics["train_loss"]) == len(metrics["loss"])


def test_plain_keras_style_names_from_step_zero_are_epochs():
    train, val = c.overfitting(30)
    run = {"config": {}, "metrics": {"loss": [[i, float(v)] for i, v in enumerate(train)],
                                     "val_loss": [[i, float(v)] for i, v in enumerate(val)],
                                     "acc": [[i, 0.9] for i in range(30)], "val_acc": [[i, 0.8] for i in range(30)]}}
    read = read_run_input(run)
    assert read.metrics["val_loss"].steps[0] == 1 and read.metrics["val_loss"].steps[-1] == 30
    assert advise(run)["diagnoses"][0]["id"] == "overfitting"


@pytest.mark.parametrize("bad, index, says", [
    ([[0, 2.3], [1, 2.2], [2, True], [3, 2.0]], 2, "True"),
    ([[0, 2.3], [1, 2.2], [2, None], [3, 2.0]], 2, "None"),
    ([[0, 2.3], [1, 2.2], [2, 2.1, 7], [3, 2.0]], 2, "pair"),
    ([[0, 2.3], [1, 2.2], [2], [3, 2.0, 1.9]], 2, "pair"),
    ([[0, 2.3], [1, 2.2], [2, "abc"], [3, 2.0]], 2, "'abc'"),
    ([[0, 2.3], [1, 2.2], [2, 2.1], [3, 2.0], [4, {"v": 1}], [5, 1.9]], 4, "value"),
    ([[0, 2.3], [True, 2.2], [2, 2.1]], 1, "step True"),
    ([[0, 2.3], ["nan", 2.2], [2, 2.1]], 1, "steps must be finite"),
    ([[0, 2.3], "ab", [2, 2.1]], 1, "pair"),
])
def test_a_malformed_point_anywhere_is_refused_naming_the_metric_and_its_index(bad, index, says):
    with pytest.raises(RunInputError) as err:
        read_run_input({"config": {}, "metrics": {"val_loss": [[1, 1.0], [2, 0.9]], "train_loss": bad}})
    assert err.value.field == f"metrics.train_loss[{index}]"
    assert says in str(err.value)


def test_a_malformed_point_that_a_long_summarised_series_reads_is_found_too():
    # 50,000 lr points: every 25th is read (SUMMARY_POINTS 2,000), from index 24 so that the last one
    # is read; each of those is checked, and named by its index
    lr = [[s, 0.1] for s in range(50_000)]
    lr[31_349] = [31_349, False]
    with pytest.raises(RunInputError) as err:
        read_run_input({"metrics": {"train_loss": [[s, 1.0] for s in range(100)], "lr-SGD": lr}})
    assert err.value.field == "metrics.lr-SGD[31349]"
    lr[31_349] = [31_349, 0.1]
    lr[40_024] = "ab"
    with pytest.raises(RunInputError) as err:
        read_run_input({"metrics": {"train_loss": [[s, 1.0] for s in range(100)], "lr-SGD": lr}})
    assert err.value.field == "metrics.lr-SGD[40024]"
    lr[40_024] = [40_024, 0.1]
    lr[49_999] = [49_999, None]
    with pytest.raises(RunInputError) as err:
        read_run_input({"metrics": {"train_loss": [[s, 1.0] for s in range(100)], "lr-SGD": lr}})
    assert err.value.field == "metrics.lr-SGD[49999]"


def test_a_long_summarised_series_is_read_at_evenly_spaced_points_up_to_the_last():
    lr = [[s, 0.1 * (1 - s / 100_000)] for s in range(100_000)]
    read = read_run_input({"metrics": {"train_loss": [[s, 1.0] for s in range(100)], "lr": lr}})
    steps = read.metrics["lr"].steps
    assert len(steps) == 2_000 and steps[0] == 49 and steps[-1] == 99_999 and set(np.diff(steps)) == {50.0}
    assert read.metrics["lr"].values[-1] == pytest.approx(0.1 * (1 - steps[-1] / 100_000))


def test_nan_and_inf_strings_are_values_not_errors():
    run = read_run_input({"metrics": {"train_loss": [[0, 2.3], [1, "nan"], [2, "Infinity"], [3, "-inf"]]}})
    v = run.metrics["train_loss"].values
    assert np.isnan(v[1]) and v[2] == np.inf and v[3] == -np.inf
