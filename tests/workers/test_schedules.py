"""Each scheduler shapes the lr (and one-cycle the momentum) as documented."""
import pytest

from tracking.config import validate_config
from workers.engine import fit
from workers.schedules import Schedule


def schedule(spe=10, **kw):
    return Schedule(validate_config({"lr": 0.1, "epochs": 10, **kw}), spe)


def test_constant_keeps_the_lr():
    s = schedule()
    assert {s.lr(i) for i in range(100)} == {0.1}


def test_step_decays_by_gamma_every_step_size_epochs():
    s = schedule(scheduler="step", step_size=3, gamma=0.5)
    assert [s.lr(e * 10) for e in (0, 2, 3, 5, 6, 9)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.0125])


def test_cosine_anneals_to_zero_at_the_last_step():
    s = schedule(scheduler="cosine")
    assert s.lr(0) == pytest.approx(0.1) and s.lr(50) == pytest.approx(0.05) and s.lr(100) == pytest.approx(0)
    assert all(s.lr(i) >= s.lr(i + 1) for i in range(99))


def test_cosine_restarts_restart_with_longer_cycles():
    s = schedule(scheduler="cosine_restarts", restart_period=2, cycle_mult=2)
    # cycles of 20, 40, ... steps: restarts at steps 20 and 60
    assert s.lr(19) < 0.01 and s.lr(20) == pytest.approx(0.1) and s.lr(59) < 0.01 and s.lr(60) == pytest.approx(0.1)
    flat = schedule(scheduler="cosine_restarts", restart_period=3, cycle_mult=1)
    assert flat.lr(30) == pytest.approx(0.1) and flat.lr(60) == pytest.approx(0.1) and flat.lr(45) < 0.1


def test_onecycle_rises_to_the_peak_then_falls_far_below_the_start():
    s = schedule(scheduler="onecycle", pct_start=0.3, optimizer="sgd", momentum=0.9)
    assert s.lr(0) == pytest.approx(0.1 / 25)
    assert s.lr(30) == pytest.approx(0.1)
    assert s.lr(100) < 0.1 / 25 / 1000
    # momentum moves the other way: high, low at the peak, high again
    assert s.momentum(0) == pytest.approx(0.9) and s.momentum(30) < 0.9 * 0.9 and s.momentum(100) == pytest.approx(0.9)


def test_onecycle_cycles_adams_beta1_and_leaves_momentumless_optimizers_alone():
    assert schedule(scheduler="onecycle", optimizer="adam").momentum_key == "betas"
    assert schedule(scheduler="onecycle", optimizer="adagrad").momentum(5) is None
    assert schedule(scheduler="onecycle", optimizer="sgd", momentum=0).momentum(5) is None


def test_warmup_runs_before_the_schedule():
    s = schedule(scheduler="cosine", warmup_epochs=2)
    assert s.lr(0) == pytest.approx(0.001) and s.lr(20) == pytest.approx(0.1)
    assert s.lr(10) == pytest.approx(0.001 + 0.099 * 0.5)


@pytest.mark.parametrize("scheduler", ["step", "cosine", "cosine_restarts", "onecycle"])
def test_the_training_loop_logs_the_scheduled_lr(scheduler):
    config = validate_config(dict(dataset="wine", epochs=4, scheduler=scheduler, step_size=1, restart_period=1,
                                  optimizer="adam", lr=0.01))
    r = fit(config)
    s = Schedule(config, r.steps_per_epoch)
    assert [v for _, v in r.history["lr"]] == pytest.approx([s.lr(i) for i in range(r.steps_run)])
    assert len({round(v, 12) for _, v in r.history["lr"]}) > 1


def test_onecycle_momentum_reaches_the_optimizer():
    from workers.callbacks import Callback

    seen = []

    class Watch(Callback):
        def on_step_end(self, training):
            seen.append(training.optimizer.param_groups[0]["betas"][0])

    fit(validate_config(dict(dataset="wine", epochs=3, scheduler="onecycle", optimizer="adam")), callbacks=[Watch()])
    assert max(seen) == pytest.approx(0.95) and min(seen) < 0.86
