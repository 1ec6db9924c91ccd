"""Values the engine's ratios were not made for (a loss below zero, a loss at exactly zero) and random
series of every kind: `advise` answers in the contract's shape or refuses the input with a
RunInputError, never an uncaught error (the command would exit 1 with a traceback, the run page 500)."""
import math
import random
import tracemalloc

import pytest

from tracking.rules import RunInputError, advise


def check_answer(answer):
    assert set(answer) >= {"diagnoses", "recommendations"}
    for d in answer["diagnoses"]:
        assert 0.0 <= d["severity"] <= 1.0 and d["evidence"]
    for r in answer["recommendations"]:
        assert 0.0 <= r["confidence"] <= 1.0 and isinstance(r["change"], dict)


def test_a_negative_log_likelihood_that_goes_below_zero_gets_an_answer():
    # a Gaussian NLL (a density's log-likelihood is not bounded below by zero): train falls from 1.0 to
    # -0.6, val to -0.3 at epoch 12 and back up to 0.1 (overfitting-shaped), at Adam lr 0.003
    train = [1.0 - 0.08 * e for e in range(21)]
    val = [1.1 - 0.12 * e for e in range(12)] + [-0.3 + 0.045 * e for e in range(1, 10)]
    run = {"config": {"optimizer": "adam", "lr": 3e-3, "epochs": 21},
           "metrics": {"train_loss": [[e, v] for e, v in enumerate(train, 1)],
                       "val_loss": [[e, v] for e, v in enumerate(val, 1)]},
           "steps_per_epoch": None, "status": "finished"}
    check_answer(advise(run))


def test_a_val_loss_at_exactly_zero_throughout_gets_an_answer():
    # a val set classified without error from the first epoch (val_loss 0.0 at every epoch) while the
    # train loss blew up late, at a tiny Adam LR: the catch-up room divided by the val curve's first value
    run = {"config": {"optimizer": "adam", "lr": 1e-5, "epochs": 5, "dropout": 0.9},
           "metrics": {"train_loss": [[1, 0.916], [2, 0.993], [3, 0.0], [4, 0.0], [5, 3.76e7]],
                       "loss": [[1, math.nan], [2, 0.939], [3, 2.77], [4, 0.0], [5, 0.46]],
                       "lr": [[1, 0.505], [2, 0.0], [3, 0.0], [4, 0.0865], [5, 0.0196]],
                       "val_loss": [[e, 0.0] for e in range(1, 6)]},
           "steps_per_epoch": None, "status": "finished"}
    check_answer(advise(run))


def test_random_series_of_every_kind_get_an_answer_or_a_clear_refusal():
    rng = random.Random(20261203)
    names = ["loss", "val_loss", "train_loss", "val_acc", "acc", "train_loss_step", "train_loss_epoch", "lr",
             "epoch", "eval_loss", "lr-SGD", "grad_norm"]
    answered = 0
    for _ in range(1500):
        n = rng.randint(1, 30)

        def series():
            step, first = rng.choice([1, 5, 10, 10 ** 9]), rng.choice([0, 1, 4, 1.7e12])
            values = []
            for _ in range(n):
                r = rng.random()
                values.append(math.nan if r < 0.05 else math.inf if r < 0.07 else -math.inf if r < 0.08
                              else rng.choice([rng.random(), 10 ** rng.uniform(-8, 8), 0.0, -rng.random()]))
            return [[first + i * step, v] for i, v in enumerate(values)]

        run = {"config": {"lr": rng.choice([1e-5, 0.01, 0.5, 3.0]), "optimizer": rng.choice(["sgd", "adam", "adamw"]),
                          "momentum": rng.choice([0, 0.5, 0.9]), "epochs": n, "dropout": rng.choice([0, 0.3, 0.9]),
                          "weight_decay": rng.choice([0, 1e-4, 0.1])},
               "metrics": {name: series() for name in rng.sample(names, rng.randint(1, 6))},
               "steps_per_epoch": rng.choice([None, None, 5]), "status": rng.choice(["finished", "running", "failed"])}
        try:
            answer = advise(run)
        except RunInputError:
            continue
        check_answer(answer)
        answered += 1
    assert answered >= 500  # most of them are valid input


def check_answer_in_bounded_memory(run, limit_mb=20):
    tracemalloc.start()
    try:
        answer = advise(run)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    check_answer(answer)
    assert peak < limit_mb * 2 ** 20, f"{peak / 2 ** 20:.0f} MB"


@pytest.mark.parametrize("spe", [None, 1, 7])
def test_steps_logged_as_timestamps_size_no_array(spe):
    # a loop that logs with step=time.time() in ms: 2,000 train points and 19 val points at steps near
    # 1.7e12. Binned per epoch, steps_per_epoch 1 once meant an array of 1.7e12 epochs (the process was
    # killed for its memory); now the epochs are computed from the points, not looked up in a table
    run = {"config": {"optimizer": "sgd", "lr": 0.05},
           "metrics": {"train_loss": [[1.7e12 + 1000 * i, 1.0 / (i + 1)] for i in range(2000)],
                       "val_loss": [[1.7e12 + 100_000 * i, 1.2 / (i + 1)] for i in range(1, 20)]},
           "steps_per_epoch": spe, "status": "finished"}
    check_answer_in_bounded_memory(run)
    # the same without a val curve (train epochs from the step numbers): 10 billion epochs if believed
    del run["metrics"]["val_loss"]
    check_answer_in_bounded_memory(run)


def test_a_class_count_too_large_for_a_float_log_is_no_class_count():
    run = {"config": {"num_classes": 10 ** 30, "optimizer": "sgd", "lr": 0.1},
           "metrics": {"eval_loss": [[1, 1.0], [2, 0.8], [3, 0.7], [4, 0.65]]},
           "steps_per_epoch": None, "status": "finished"}
    check_answer(advise(run))
