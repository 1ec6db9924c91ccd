"""train_longer sizes the new run from the curve's time constant (an exponential approach's late share)."""
import math

import numpy as np
import pytest

from tracking.rules import advise
from tracking.rules.engine import analyse
from tracking.rules.rules import curve_time_constants, exp_late_share, longer_factor, time_constants

from . import curves as c


def exp_curves(n, x, start=2.3, end=0.2):
    """Train and val losses L_inf + A exp(-t/tau) over epochs 0..n-1, with T/tau = x."""
    t = np.arange(n)
    fall = np.exp(-t * x / (n - 1))
    return end * 0.8 + (start - end) * fall, end + (start - end) * fall


@pytest.mark.parametrize("tail", [0.25, 0.214, 0.5])
@pytest.mark.parametrize("x", [0.05, 0.3, 1.0, 2.5, 8.0])
def test_the_inversion_returns_the_time_constants_of_the_late_share(x, tail):
    assert time_constants(exp_late_share(x, tail), tail) == pytest.approx(x, rel=1e-6)


def test_the_late_share_falls_from_a_quarter_for_a_straight_line_to_zero():
    xs = [1e-6, 0.1, 0.5, 1, 2, 5, 20]
    shares = [exp_late_share(x) for x in xs]
    assert shares[0] == pytest.approx(0.25, abs=1e-6)
    assert all(a > b for a, b in zip(shares, shares[1:])) and shares[-1] < 1e-5
    # the closed form: a quarter of the span at x = 1
    assert exp_late_share(1.0) == pytest.approx((math.exp(-0.75) - math.exp(-1)) / (1 - math.exp(-1)))


@pytest.mark.parametrize("n", [15, 30, 60])
@pytest.mark.parametrize("x", [0.8, 1.5, 3.0])
def test_the_detector_late_share_of_a_synthetic_exponential_gives_back_its_time_constants(n, x):
    f, _, _ = analyse(c.run(*exp_curves(n, x), config={"optimizer": "adam", "lr": 0.001, "epochs": n}))
    assert curve_time_constants(f, f.main().late_share) == pytest.approx(x, rel=0.1)


def test_a_straight_descending_line_gets_the_cap_of_ten_times():
    train, val = c.not_converged()  # falling linearly to the end: no curvature seen
    f, _, _ = analyse(c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 20}))
    assert longer_factor(f, f.main().late_share) == 10
    answer = advise(c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 20}))
    longer = [r for r in answer["recommendations"] if r["rule"] == "not_converged.train_longer"]
    assert longer[0]["change"] == {"epochs": 200} and "time constant" in longer[0]["rationale"]


def test_a_curve_that_has_nearly_flattened_gets_twice_the_epochs():
    train, val = exp_curves(30, 4.0)  # 4 time constants: 98% of its descent made, still falling a little
    answer = advise(c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 30}))
    assert answer["diagnoses"][0]["id"] == "not_converged"
    longer = [r for r in answer["recommendations"] if r["rule"] == "not_converged.train_longer"]
    assert longer[0]["change"] == {"epochs": 60}


def test_a_curve_too_short_to_show_curvature_gets_the_cap():
    answer = advise({"config": {"optimizer": "adam", "lr": 0.001, "epochs": 2},
                     "metrics": {"val_loss": [[1, 1.0], [2, 0.8]]}, "status": "finished"})
    longer = [r for r in answer["recommendations"] if r["rule"] == "not_converged.train_longer"]
    assert longer[0]["change"] == {"epochs": 20}


def test_advise_sizes_a_not_converged_run_to_about_three_time_constants():
    # one time constant over 40 epochs: tau = 39 epochs, 3 tau ~ 117 epochs (factor ~3)
    train, val = exp_curves(40, 1.0)
    answer = advise(c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 40}))
    assert answer["diagnoses"][0]["id"] == "not_converged"
    longer = [r for r in answer["recommendations"] if r["rule"] == "not_converged.train_longer"]
    epochs = longer[0]["change"]["epochs"]
    assert isinstance(epochs, int) and 100 <= epochs <= 130
    # half a time constant: 6 tau / T -> about 6x
    train, val = exp_curves(40, 0.5)
    answer = advise(c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 40}))
    longer = [r for r in answer["recommendations"] if r["rule"] == "not_converged.train_longer"]
    assert 200 <= longer[0]["change"]["epochs"] <= 280


def test_the_ten_thousand_epoch_cap_holds():
    train, val = c.not_converged()
    answer = advise(c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 5000}))
    longer = [r for r in answer["recommendations"] if r["rule"] == "not_converged.train_longer"]
    assert longer[0]["change"] == {"epochs": 10000}


def test_explore_train_longer_uses_the_same_time_constant():
    from tracking.rules import explore

    train, val = c.healthy()  # converged but val_loss still at its minimum at the end
    run = c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 30})
    f, _, _ = analyse(run)
    want = int(round(30 * longer_factor(f, f.main().late_share)))
    longer = [r for r in explore(run) if r["rule"] == "explore.train_longer"]
    assert longer and longer[0]["change"] == {"epochs": want} and 60 <= want <= 300
