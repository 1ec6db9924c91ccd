"""The pure LR-finder: schedule, debiased EMA, the 4x stop and fastai's three suggestions."""
import math

import pytest

from tracking import lr_finder


def curve(lrs, best_log10=-2.0, blow_up_at=1.0):
    """A loss that falls from 2.3 towards 0.3 around 10**(best_log10 - 1), then explodes past blow_up_at."""
    out = []
    for lr in lrs:
        x = math.log10(lr)
        falling = 2.3 - 2.0 / (1 + math.exp(-3 * (x - (best_log10 - 1))))
        out.append(falling + (50 * (lr - blow_up_at) if lr > blow_up_at else 0.0))
    return out


def run_test(raw):
    tracker = lr_finder.SmoothedLoss()
    for loss in raw:
        tracker.update(loss)
        if tracker.should_stop:
            break
    return tracker


def test_the_schedule_is_exponential_from_1e7_to_10_over_100_steps():
    lrs = lr_finder.lr_schedule()
    assert len(lrs) == 100
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0)
    ratios = {round(b / a, 9) for a, b in zip(lrs, lrs[1:])}
    assert len(ratios) == 1


def test_the_ema_is_debiased_so_a_constant_loss_stays_constant():
    assert lr_finder.smooth_losses([2.0] * 10) == pytest.approx([2.0] * 10)


def test_it_stops_once_the_smoothed_loss_passes_four_times_its_minimum():
    lrs = lr_finder.lr_schedule()
    tracker = run_test(curve(lrs))
    assert tracker.should_stop and "4x" in tracker.stop_reason
    assert tracker.values[-1] > 4 * tracker.best
    assert all(v <= 4 * tracker.best for v in tracker.values[:-1])
    assert len(tracker.values) < 100


def test_it_stops_on_a_non_finite_loss():
    tracker = run_test([2.0, 1.9, float("nan"), 1.0])
    assert tracker.should_stop and len(tracker.values) == 3 and "finite" in tracker.stop_reason


@pytest.mark.parametrize("best_log10", [-3.0, -2.0, -1.0])
def test_valley_sits_in_the_descent_and_moves_with_the_curve(best_log10):
    lrs = lr_finder.lr_schedule()
    tracker = run_test(curve(lrs, best_log10=best_log10))
    s = lr_finder.suggest(lrs[:len(tracker.values)], tracker.values, steps=100)
    # The loss falls fastest at 10**(best_log10 - 1); the valley must be inside the falling stretch.
    assert 10 ** (best_log10 - 3) < s["valley"]["lr"] < 10 ** (best_log10 + 1)
    assert set(s) == {"valley", "steep", "minimum"}


def test_steep_is_the_most_negative_slope_against_log_lr():
    lrs = [10 ** (-6 + i * 0.1) for i in range(60)]
    losses = [2.0] * 60
    for i in range(30, 60):
        losses[i] = 2.0 - 0.01 * (i - 30)
    losses[40] = losses[39] - 0.5  # one sharp drop between index 39 and 40
    for i in range(41, 60):
        losses[i] = losses[i - 1] - 0.01
    s = lr_finder.suggest(lrs, losses, steps=60)
    assert s["steep"]["index"] == 39
    assert s["steep"]["lr"] == pytest.approx(lrs[39])


def test_minimum_is_the_lr_at_the_lowest_loss_divided_by_ten():
    lrs = [10 ** (-5 + i * 0.1) for i in range(50)]
    losses = [1.0 + (i - 30) ** 2 / 100 for i in range(50)]
    s = lr_finder.suggest(lrs, losses, steps=50)
    assert s["minimum"]["index"] == 30
    assert s["minimum"]["lr"] == pytest.approx(lrs[30] / 10)


def test_valley_is_halfway_through_the_middle_third_of_the_longest_decline():
    lrs = [10 ** (-6 + i * 0.1) for i in range(70)]
    # flat for 10, strictly falling for 30 (index 10..39), rising after
    losses = [3.0] * 10 + [3.0 - 0.05 * (i + 1) for i in range(30)] + [1.5 + 0.1 * i for i in range(30)]
    s = lr_finder.suggest(lrs, losses, steps=70)
    assert 19 <= s["valley"]["index"] <= 26


def test_too_short_a_test_has_no_suggestion():
    with pytest.raises(lr_finder.NotEnoughPoints):
        lr_finder.suggest([1e-5, 1e-4], [2.0, 1.0])


def test_use_this_lr_sets_the_constant_lr_or_one_cycles_max_lr():
    base = {"lr": 0.1, "scheduler": "cosine", "lr_min": 1e-7, "lr_max": 10.0, "lr_find_steps": 100, "epochs": 5}
    constant = lr_finder.run_config_with_lr(base, 0.003)
    assert constant["lr"] == 0.003 and constant["scheduler"] == "constant" and "lr_max" not in constant
    cycle = lr_finder.run_config_with_lr(base, 0.02, "onecycle")
    assert cycle["lr"] == 0.02 and cycle["scheduler"] == "onecycle"
    with pytest.raises(ValueError):
        lr_finder.run_config_with_lr(base, 0.02, "sometimes")
