"""Rules: each a small named unit that turns a diagnosis into one config change.

A rule has an id ("<diagnosis>.<action>"), the diagnosis it answers, a condition
on the run (`when`), the change it proposes computed from the run's config
(absolute new values; a key the config lacks starts from the project default),
a rationale, and a base confidence (scaled by the diagnosis's severity).
To add a rule, write its `change` function and append a `Rule` to RULES.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .diagnoses import Diagnosis, config_number, headroom, lr_is_high, lr_is_low, num, pct
from .features import Features, ramp
from .loggers import design_config

try:  # the one source of the project defaults (pure pydantic, no Django)
    from tracking.config import DEFAULTS as _PROJECT_DEFAULTS
except ImportError:  # pragma: no cover - the engine used outside the project
    _PROJECT_DEFAULTS = {}

DEFAULTS = {
    "optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
    "batch_size": 32, "epochs": 20, "scheduler": "constant", "warmup_epochs": 0.0, "dropout": 0.0,
    "batch_norm": False, "label_smoothing": 0.0, "grad_clip": None, "early_stopping_patience": None,
    "augment": False,
}
DEFAULTS.update({k: v for k, v in _PROJECT_DEFAULTS.items() if k in DEFAULTS})
ADAPTIVE = ("adam", "adamw", "rmsprop", "adagrad")


@dataclass
class Context:
    """What a rule reads: the run's config (known keys, defaults filled in), its features and the diagnosis."""

    config: dict
    features: Features
    diagnosis: Diagnosis
    keys: Optional[frozenset] = None  # the keys the run's own config holds (None: the features' config)

    @property
    def optimizer(self) -> str:
        return self.config["optimizer"]

    @property
    def plain_sgd(self) -> bool:
        """SGD with no or low momentum: the usual range is 0.9 to 0.99 (Smith, 2018), 0.1 is low."""
        return self.optimizer == "sgd" and self.config["momentum"] < LOW_MOMENTUM

    @property
    def has(self) -> set:
        """The keys the run's own config holds (an external trainer may lack a knob, e.g. batch_norm)."""
        return self.keys if self.keys is not None else self.features.extra.get("config_keys", set())


FINE_TUNING_KEYS = ("init_from_run", "freeze_layers", "lr_layer_factor")
LOW_MOMENTUM = 0.8  # SGD momentum below this is low (the usual values are 0.9-0.99)


def read_config(raw: dict) -> dict:
    """The fixed DESIGN keys of a run's config, coerced to their types; defaults for the rest. Keys
    other trainers log (learning_rate, num_train_epochs, optim ...) stand for DESIGN keys the config lacks."""
    raw = design_config(raw)
    cfg = dict(DEFAULTS)
    for key in ("lr", "momentum", "weight_decay", "warmup_epochs", "dropout", "label_smoothing"):
        cfg[key] = config_number(raw, key, DEFAULTS[key])
    for key in ("batch_size", "epochs"):
        v = config_number(raw, key, DEFAULTS[key])
        cfg[key] = int(v) if v >= 1 else DEFAULTS[key]
    for key in ("optimizer", "scheduler"):
        if isinstance(raw.get(key), str):
            cfg[key] = raw[key].strip().lower()
    for key in ("nesterov", "batch_norm", "augment"):
        v = raw.get(key)
        if isinstance(v, str):
            v = v.strip().lower() in ("true", "1", "yes")
        if isinstance(v, (bool, int)):
            cfg[key] = bool(v)
    clip = raw.get("grad_clip")
    clip = None if clip in (None, "", "None", "none", "null") else config_number(raw, "grad_clip", 0.0)
    cfg["grad_clip"] = clip if clip and clip > 0 else None
    pat = raw.get("early_stopping_patience")
    pat = None if pat in (None, "", "None", "none", "null") else config_number(raw, "early_stopping_patience", 0)
    cfg["early_stopping_patience"] = int(pat) if pat and pat >= 1 else None
    for key in FINE_TUNING_KEYS:  # Runwise's fine-tuning keys, kept when the run has them
        if isinstance(raw.get(key), (int, float)) and not isinstance(raw.get(key), bool):
            cfg[key] = raw[key]
    return cfg


def _round(x: float) -> float:
    """Two significant digits: the values a person would type."""
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.2g}")


def _lr_times(factor: float):
    def change(ctx):
        return {"lr": _round(ctx.config["lr"] * factor)}
    return change


def usual_lr(config: dict) -> float:
    """The middle of the usual stable range of the optimizer (SGD: an effective step of 0.1)."""
    opt = config["optimizer"]
    if opt == "sgd":
        return 0.1 * (1.0 - config["momentum"])
    return 0.01 if opt == "adagrad" else 0.001


def _lr_down_divergence(ctx):
    facts = ctx.diagnosis.facts
    factor = 0.1 if facts.get("nonfinite") or facts.get("ratio", 1) >= 3 else 0.3
    new = ctx.config["lr"] * factor
    if lr_is_high(ctx.config) >= 0.5:  # far above the usual range: x0.1 may still be too much
        new = min(new, usual_lr(ctx.config))
    return {"lr": _round(new)}


def _lr_down_unstable(ctx):
    return {"lr": _round(ctx.config["lr"] * (0.1 if lr_is_high(ctx.config) >= 0.5 else 0.3))}


def wd_strength(config: dict) -> float:
    wd = config["weight_decay"] / (10.0 if config["optimizer"] == "adamw" else 1.0)
    return ramp(math.log10(wd), -3.3, -1.7) if wd > 0 else 0.0


def decay_per_step(config: dict) -> float:
    """The share of the weights weight decay removes each step: lr x weight_decay, over 1 - momentum for
    SGD (the momentum buffer repeats it); typical settings (SGD lr 0.1, momentum 0.9, 5e-4) take 5e-4."""
    shrink = config["lr"] * config["weight_decay"]
    if config["optimizer"] == "sgd":
        shrink /= max(1e-3, 1.0 - config["momentum"])
    return shrink


def wd_above_bottom(config: dict) -> float:
    """0 at 1e-4 (L2; 1e-3 for AdamW) and below, 1 from 5e-4 (5e-3): above the bottom of the usual range."""
    wd = config["weight_decay"] / (10.0 if config["optimizer"] == "adamw" else 1.0)
    return ramp(math.log10(wd), -4.0, -3.3) if wd > 0 else 0.0


def _warmup(ctx):
    epochs = ctx.config["epochs"]
    warm = max(1.0, round(0.1 * epochs))
    if warm >= epochs:
        warm = max(0.5, epochs / 4) if epochs > 1 else 0.0
    return {"warmup_epochs": float(warm)} if warm > 0 else {}


def _clip(ctx):
    g = ctx.features.curves.grad_norm
    if g is not None and len(g) >= 10:
        vals = g.values[np.isfinite(g.values)]
        if vals.size >= 10:
            return {"grad_clip": _round(max(float(np.percentile(vals, 90)), 1e-3))}
    return {"grad_clip": 1.0}


def _grow_batch(ctx):
    return {"batch_size": ctx.config["batch_size"] * 4}


def _shrink_batch(ctx):
    bs = ctx.config["batch_size"]
    new = max(8, bs // 4)
    scale = new / bs if ctx.optimizer == "sgd" else math.sqrt(new / bs)
    return {"batch_size": new, "lr": _round(ctx.config["lr"] * scale)}


def _wd_base(ctx):
    return 0.05 if ctx.optimizer == "adamw" else 1e-3


def _raise_wd(ctx):
    wd = ctx.config["weight_decay"]
    base = _wd_base(ctx)
    return {"weight_decay": _round(max(base, wd * (10 if wd < base else 3)))}


def _wd_top(config: dict) -> float:
    """The top of the usual weight-decay range: Smith (2018) tries 1e-2 down to 1e-5 (shallow nets the
    larger values); decoupled weight decay (AdamW) is used at about 10x those values."""
    return 0.1 if config["optimizer"] == "adamw" else 1e-2


def _lower_wd(ctx):
    wd = ctx.config["weight_decay"]
    top = _wd_top(ctx.config)
    if wd < 1e-5 or ctx.diagnosis.facts.get("failed_to_learn") or ctx.diagnosis.facts.get("held_back"):
        # nothing learned (or next to no weight decay): take it off (Smith 2018 tries down to 0)
        return {"weight_decay": 0.0}
    # 10x lower, and from far above the usual range straight into it (x0.1 steps would waste runs)
    return {"weight_decay": _round(min(wd / 10, top))}


def _lower_wd_annealed(ctx):
    """Off at an LR above its optimizer's usual range (the LR regularises enough), else into the middle
    of the usual range (a tenth of its top), and at least 10x lower."""
    wd = ctx.config["weight_decay"]
    if lr_is_high(ctx.config) >= 0.5:
        return {"weight_decay": 0.0}
    return {"weight_decay": _round(min(wd / 10, _wd_top(ctx.config) / 10))}


def _add_dropout(ctx):
    return {"dropout": 0.3 if ctx.config["dropout"] < 0.2 else _round(min(0.6, ctx.config["dropout"] + 0.2))}


def _lower_dropout(ctx):
    d = ctx.config["dropout"]
    return {"dropout": 0.0 if d <= 0.2 else _round(d / 2)}


def _early_stop(ctx):
    epochs = ctx.config["epochs"]
    return {"early_stopping_patience": int(max(3, min(10, round(0.1 * epochs))))}


def _momentum(ctx):
    """Momentum 0.9 multiplies SGD's effective step lr/(1-momentum); where that would leave the usual
    stable range, the LR comes down with it (to the middle of the range), and where even the 10x step
    stays far below the range (an effective step of 0.01 or less) on a curve that barely moved, the LR
    goes up with it to the middle: in that regime a curve's progress grows with the step, and 10x a step
    that barely moved the loss still barely moves it."""
    new = {"momentum": 0.9}
    with_momentum = {**ctx.config, "momentum": 0.9}
    if ctx.optimizer == "sgd" and (lr_is_high(with_momentum) >= 0.5
                                   or (lr_is_low(with_momentum) >= 0.5 and _barely_moved(ctx))):
        new["lr"] = _round(usual_lr(with_momentum))
    return new


def _barely_moved(ctx) -> bool:
    """The main curve's best is within 5% of its first value and the val accuracy (when logged) rose
    under 5 points: the whole run moved the model that little."""
    m, acc = ctx.features.main(), ctx.features.accuracy
    if m is None or not np.isfinite(m.raw_min) or (acc and acc["best"] - acc["first"] >= 0.05):
        return False
    first = m.raw[np.isfinite(m.raw)][0]
    return bool(first > 0 and m.raw_min > 0.95 * first)


def _sgd_to_adam(ctx):
    return {"optimizer": "adam", "lr": 0.001, "momentum": 0.0, "nesterov": False}


def _adam_to_sgd(ctx):
    return {"optimizer": "sgd", "lr": _round(min(0.1, max(0.01, ctx.config["lr"] * 30))), "momentum": 0.9}


def _raise_lr_slow(ctx):
    """The size of the raise follows the evidence. A curve still falling at a steady rate (its last
    quarter made 20% or more of its descent, 25% being a straight line) covered under one time
    constant of its convergence (an exponential approach with late share 0.2 covers ~0.5), and
    progress per step grows with the LR: it needs an order of magnitude more (x10, AUTOTRAINER's
    'LR x10 per try' for slow convergence). A curve that has started to bend needs less (x3).
    When the LR is also far below its optimizer's usual range, go straight to the middle of that
    range, as a divergence far above it does (the next run's curves correct either way)."""
    cfg = ctx.config
    low = lr_is_low(cfg)
    straight = ctx.diagnosis.facts.get("late_share", 0) >= 0.2  # a uniform rate would make 25%
    factor = 10 if low >= 0.9 or straight else 3
    new = cfg["lr"] * factor
    if low >= 0.9 and straight:
        new = max(new, usual_lr(cfg))
    return {"lr": _round(new)}


def _raise_lr_underfit(ctx):
    """x10 when the run learned nothing or the LR is far below its optimizer's usual range (far below
    it, with a curve that barely moved: straight to the middle of the range when that is more, as
    _raise_lr_slow does); x3 otherwise."""
    low = lr_is_low(ctx.config) >= 0.9
    new = ctx.config["lr"] * (10 if ctx.diagnosis.facts.get("failed_to_learn") or low else 3)
    if low and _barely_moved(ctx):
        new = max(new, usual_lr(ctx.config))
    return {"lr": _round(new)}


def exp_late_share(x: float, tail: float = 0.25) -> float:
    """Late share of L(t) = L_inf + A exp(-t/tau) observed over [0, T], x = T/tau: the share of its
    descent made in the last `tail` of the span. Tends to `tail` for a straight line (x -> 0)."""
    if x < 1e-9:
        return tail
    return (math.exp(-(1.0 - tail) * x) - math.exp(-x)) / -math.expm1(-x)


def time_constants(share: float, tail: float = 0.25) -> float:
    """x = T/tau of the exponential approach with this late share (the inverse of exp_late_share,
    by bisection: the share falls monotonically from `tail` at x -> 0 to 0 as x grows)."""
    lo, hi = 1e-6, 60.0
    if share >= exp_late_share(lo, tail):
        return lo
    if share <= exp_late_share(hi, tail):
        return hi
    for _ in range(60):
        mid = math.sqrt(lo * hi)  # x spans orders of magnitude: bisect on a log scale
        lo, hi = (mid, hi) if exp_late_share(mid, tail) > share else (lo, mid)
    return math.sqrt(lo * hi)


def curve_time_constants(features: Features, share: Optional[float]) -> Optional[float]:
    """x = T/tau of the main curve from its late share (None when it has under 3 points). The
    detector measures the share over the last quarter of the points (`tail` of the span exactly)
    and adds its noise floor to the descent; both are taken into account here."""
    m = features.main()
    n = len(m.raw) if m is not None else 0
    if share is None or n < 3 or not math.isfinite(share):
        return None
    s = m.smooth  # as features.shape measures late_share
    q = max(0, n - 1 - max(1, n // 4))
    tail = (n - 1 - q) / (n - 1)
    descent = max(s[0], s.max() if n < 4 else s[0]) - s.min()
    if descent > features.floor:
        share *= (descent + features.floor) / descent
    return time_constants(share, tail)


def longer_factor(features: Features, share: Optional[float]) -> float:
    """How many times more epochs, from the main curve's time constant. Model the loss as an
    exponential approach L(t) = L_inf + A exp(-t/tau); over the run's T epochs its late share fixes
    x = T/tau (curve_time_constants). A run of 3 tau covers 95% of the descent: factor 3/x, clamped
    to [2, 10] (a smaller step is not worth a run; beyond 10x the model is extrapolated too far). A
    straight line (no curvature seen) and a curve too short to show any get 10."""
    x = curve_time_constants(features, share)
    return 10.0 if x is None else min(10.0, max(2.0, 3.0 / x))


def _longer_epochs(ctx, share: Optional[float]) -> dict:
    return {"epochs": int(min(10000, round(ctx.config["epochs"] * longer_factor(ctx.features, share))))}


def _longer(ctx):
    return _longer_epochs(ctx, ctx.diagnosis.facts.get("late_share"))


def _explore_longer(ctx):
    m = ctx.features.main()  # the detector's late share of the main curve (healthy: no diagnosis facts)
    return _longer_epochs(ctx, m.late_share if m is not None else None)


def _schedule(name):
    def change(ctx):
        return {"scheduler": name}
    return change


def _set(key, value):
    def change(ctx):
        return {key: value}
    return change


@dataclass(frozen=True)
class Rule:
    id: str
    diagnosis: str
    when: Callable[[Context], bool]
    change: Callable[[Context], dict]
    rationale: str
    confidence: float  # for a diagnosis of severity 1; scaled down with the severity
    boost: Optional[Callable[[Context], float]] = None  # extra confidence from the config, 0..0.3
    # (0..1, why) for the change: how much the curve leaves this cure to gain, and the sentence the
    # rationale gets when that is less than all
    room: Optional[Callable[[Context, dict], tuple[float, str]]] = None
    # the most the recommendation can say, whatever the diagnosis (a coin flip: under 0.5), or a function
    # of the context that says it, (cap, why), why going into the rationale where the cap binds
    cap: float | Callable[[Context], tuple[float, str]] = 0.95

    def assess(self, ctx: Context, change: dict) -> tuple[float, str]:
        """(confidence, rationale) of the change. The confidence is the chance the change helps: the
        rule's record on its diagnosis, moved by the config's priors, times how sure the diagnosis is,
        times the room the curve leaves this cure (the rationale then says why it is less). A
        diagnosis whose cause the curves leave open (a run that collapsed or learned nothing, its
        cause read from the config) counts less."""
        base = self.confidence + (self.boost(ctx) if self.boost else 0.0)
        sure = 0.75 + 0.25 * ctx.diagnosis.severity
        facts = ctx.diagnosis.facts
        if facts.get("collapsed") or facts.get("failed_to_learn"):
            # more so when the curve is compared with its first epoch, not a known untrained level
            sure *= 0.7 if ctx.features.untrained_known else 0.55
        if ctx.diagnosis.id != "not_converged" and not (facts.get("nonfinite") or facts.get("blown_up")
                                                        or facts.get("no_fit")):
            # a rise, swings or a level after a best val_loss already near zero did not keep the run from
            # a near-perfect fit: a change can gain little there, and is as likely to lose it (a curve
            # still falling at the end is another matter: it keeps gaining large shares of its level; a
            # loss that never beat a constant prediction is no fit at all, whatever scale a blown-up first
            # epoch sets)
            sure *= 0.5 + 0.5 * headroom(ctx.features)
        rationale = self.rationale
        if self.room:
            factor, why = self.room(ctx, change)
            sure *= factor
            if factor < 1.0 and why:
                rationale = f"{rationale} {why}"
        return max(0.0, min(0.95, base)) * sure, rationale


def _always(ctx):
    return True


def _step_headroom(ctx) -> float:
    """0..1: how close SGD's effective step lr/(1-0.9) with momentum 0.9 (after _momentum's own LR
    cap) comes to the top of the usual range (0.1 is its middle, 0.5 where 'high' starts)."""
    step = _momentum(ctx).get("lr", ctx.config["lr"]) / (1.0 - 0.9)
    return ramp(math.log10(max(step, 1e-12)), math.log10(0.1), math.log10(0.5))


def _can_batch_norm(ctx):
    """Batch norm off, in a config that has the knob (an external model may not have one)."""
    return "batch_norm" in ctx.has and not ctx.config["batch_norm"]


def _not_annealed(ctx):
    """More epochs help a curve the LR schedule did not flatten: not when the LR at the end was
    already annealed near zero (the flattening is the schedule's doing)."""
    return not ctx.features.annealed


def lr_upper(config: dict) -> float:
    """0..1: how far the LR sits in the upper part of its optimizer's usual range: 1.5x its middle
    (usual_lr; SGD's effective step lr/(1-momentum)) -> 0, 3x or more -> 1."""
    mid = usual_lr(config)
    lr = config["lr"]
    if config["optimizer"] == "sgd":
        lr, mid = lr / max(1e-3, 1.0 - config["momentum"]), 0.1
    if lr <= 0 or mid <= 0:
        return 0.0
    return ramp(math.log10(lr / mid), math.log10(1.5), math.log10(3.0))


# val_loss this far under the least cross-entropy of a model that ignores its inputs (features:
# vs_constant) shows a fit, not the noise of a loss at that bound
USED_ITS_INPUTS = 0.9
LEARNED_RISE = 0.05  # a rise of the val accuracy over the logged epochs that shows learning


def learned_in_first_epoch(acc: Optional[dict]) -> bool:
    """The val accuracy rose under LEARNED_RISE over the logged epochs: what the run learned, if
    anything, it learned in its first epoch (the first logged one comes after a whole epoch)."""
    return bool(acc) and acc["best"] - acc["first"] < LEARNED_RISE


def learned_and_kept(features: Features) -> bool:
    """The run learned and kept it: its val accuracy rose 5 points and ended with at least half of the
    rise (where it ended: its last epoch or the median of its last three, the higher, so one swing down
    in the last epoch is not read as the run losing what it learned; without an accuracy, a best loss
    under 40% of its first). An accuracy that spiked once and fell back to where it started (a run
    thrown about at an LR far too large) has nothing a lower LR could cost.
    The first logged epoch comes after a whole epoch of training: a run may have learned all it did in
    it. Its val_loss then sat well under what any model that ignores its inputs can reach at that
    accuracy (USED_ITS_INPUTS), and it kept that if it ended so too or at its first accuracy or above."""
    acc, m = features.accuracy, features.main()
    if acc:
        rise = acc["best"] - acc["first"]
        if not learned_in_first_epoch(acc):
            return acc["end"] - acc["first"] >= 0.5 * rise
        bound = acc.get("vs_constant")
        return bool(bound) and bound["best"] <= USED_ITS_INPUTS and (
            bound["end"] <= USED_ITS_INPUTS or acc["end"] >= acc["first"])
    return m is not None and m.first > 0 and m.raw_min <= 0.4 * m.first


def _catch_up_room(ctx, change: dict, why_best: str = "its best epochs were the swings' low points"
                   ) -> tuple[float, str]:
    factor, why, _ = _catch_up(ctx, change, why_best)
    return factor, why


def _catch_up(ctx, change: dict, why_best: str = "its best epochs were the swings' low points"
              ) -> tuple[float, str, float]:
    """_catch_up_room, and the share of the run's epochs the calmer run needs to get as far,
    k(t + 1)/n (0 where it judged nothing). What a k-times lower LR can still gain on a run that learned: it covers ground about k times
    slower, so where the run got 90% of its descent done by epoch t, the calmer run needs about
    k(t + 1) epochs to get as far. Beyond the run's epochs it ends before it gets there, and what the
    lower LR would calm (the swings, or a late rise) came after the run's best epochs: half the
    confidence from k(t + 1) = 3n (ramped from 1.5n). A run that learned little (its val accuracy never
    rose 5 points, or ended with under half of its rise; without one, a best loss above 40% of its
    first) has little to lose by the lower LR: no change."""
    f, m = ctx.features, ctx.features.main()
    new = change.get("lr")
    if m is None or len(m.raw) < 5 or not new or not np.isfinite(m.raw_min) or not learned_and_kept(f):
        return 1.0, "", 0.0
    acc = f.accuracy
    s, n = m.smooth, len(m.raw)
    k = ctx.config["lr"] / new
    if learned_in_first_epoch(acc):
        # learned in its first epoch (learned_and_kept): its descent was done by then, and what the
        # logged curve moves after it is the swings around its level
        t = 0
        learned_how = (f"in its first epoch: val_accuracy {pct(acc['first'])} after it, its val_loss well under "
                       f"what a model ignoring its inputs can reach at that accuracy")
    else:
        reached = np.nonzero(s <= m.min + 0.1 * max(s[0] - m.min, 0.0))[0]
        t = int(reached[0]) if reached.size else n - 1
        learned_how = (f"val_accuracy {pct(acc['first'])} -> {pct(acc['best'])}" if acc
                       else f"its best loss {pct(m.raw_min / m.first)} of its first")
    share = k * (t + 1) / n
    factor = 1.0 - 0.5 * ramp(share, 1.5, 3.0)
    return factor, (f"Less sure here: the run learned ({learned_how}) and had 90% of its descent by "
                    f"{f.at(t)}; at a {num(k)}x lower LR it would need about {int(round(k * (t + 1)))} epochs "
                    f"to get as far, and it had {n}: {why_best}."), share


def alternation(features: Features) -> float:
    """The share of a loss curve's epoch-to-epoch moves that reverse the move before (the larger of
    train and val): about half for noise, 1 for a loss that goes up and down every epoch in turn, the
    zig-zag of steps that overshoot the valley back and forth. 0 with fewer than 6 epochs."""
    best = 0.0
    for curve in (features.train, features.val):
        if curve is None:
            continue
        moves = np.diff(curve.raw[np.isfinite(curve.raw)])
        moves = moves[moves != 0]
        if len(moves) >= 5:
            best = max(best, float(np.mean(moves[1:] * moves[:-1] < 0)))
    return best


# Swings in a run that learned and kept it are as often the price of a fast LR as a fault: the lower
# LR calms them and slows the descent as much, and within the same epochs the second cost wins as often
# as the first. On the development runs of bench/devset (never a held-out part) a 3x or 10x lower LR came
# first for "unstable" on 64 such runs and helped 23 (36%; 14 of the 26 it was sure of); at an LR within
# or just above its optimizer's usual range 15 of 48, far above it (lr_is_high >= 0.9) 8 of 16; on runs
# that had learned nothing or lost it, 39 of 66. So 0.55 of the confidence for a learner, ramped back to
# all of it as the LR goes far past its range (lr_is_high 0.7 -> 1) or as the swings become a zig-zag
# (alternation 0.8 -> 0.95: the textbook overshoot; the dev runs' epoch swings reverse 20-80% of moves).
# Less so for the LR of a run that learned all it did in its first epoch at it, where the calmer run
# would spend much of the run catching up (_swings_room): parts 1-29 held 12 such runs of 12 or 20
# epochs far past their range (SGD's effective step 4.5-5, Adam 0.03-0.09), each with its val accuracy
# within 5 points of its best after epoch 1; a 3x or 10x lower LR helped one (8 were given it at 0.8).
SWINGS_OF_A_LEARNER = 0.55


def _swings_room(ctx, change: dict) -> tuple[float, str]:
    """_catch_up_room, times SWINGS_OF_A_LEARNER where the run learned and kept it."""
    factor, why, share = _catch_up(ctx, change)
    if not why:  # _catch_up judged nothing: too few points, or a run that did not learn
        return factor, why
    # a loss zig-zagging every epoch is a fault anyway; so is an LR far past its optimizer's range,
    # unless the run learned all it did in its first epoch at it and the calmer run would spend much
    # of the run getting as far: k times lower, it needs about k epochs for what this one learned in
    # one, and it can settle lower only in what is left (the LR read as the fault where k is a quarter
    # of the run or less, not at all from half; the dev runs: a 10x lower LR helped 1 of 12 such runs of
    # 12 or 20 epochs; our own suite's Adam lr 0.05 run of 30 epochs gained 7% at lr x0.1)
    far_lr = ramp(lr_is_high(ctx.config), 0.7, 1.0)
    if learned_in_first_epoch(ctx.features.accuracy):  # then share = k/n (its descent done by epoch 1)
        far_lr *= 1.0 - ramp(share, 0.25, 0.5)
    far = max(far_lr, ramp(alternation(ctx.features), 0.8, 0.95))
    if far < 1.0:
        factor *= SWINGS_OF_A_LEARNER + (1.0 - SWINGS_OF_A_LEARNER) * far
        why += " Swings around a descent that got this far are as often the price of a fast LR as a fault."
    return factor, why


def _still_gaining_room(ctx, change: dict) -> tuple[float, str]:
    """More epochs gain what the run was still gaining: where the raw best of its later part beat the
    best before it by little of its level (the second half over the first, or the last quarter over the
    rest at twice the weight), the smoothed end may slope down while the run already sits at its floor
    (noise around it, or the first signs of overfitting). Half the confidence at a gain of 10% or less,
    all of it from 40%, or where the second half's gain is 100 times the curve's swings (a smooth
    descent). (On the dev logger runs of parts 1-29, 'train longer' came first for 23 runs below 10%
    and helped 9; 128 at 10-25%, helped 67 (52%: a coin flip, under 0.5 now); 35 at 25-30%, 24; 83
    at 30-50%, 67.) A curve that rose in as many of its epochs as a flat one would gets a cap instead
    (_still_falling_cap)."""
    m = ctx.features.main()
    if m is None or len(m.raw) < 4:
        return 1.0, ""
    # a slow fall far above its own swings (a smooth descent: hundreds of them) is no floor either
    factor = 0.5 + 0.5 * max(ramp(m.late_gain, 0.1, 0.4), ramp(m.half_snr, 20.0, 100.0))
    name = ctx.features.main_name()
    return factor, (f"Less sure: over its later epochs the best {name} improved by only "
                    f"{pct(max(m.late_gain, 0.0))} of its level (its second half on its first, or twice its "
                    f"last quarter on the rest); the run may already sit near its floor.")


def rises_by_chance(ups: int, steps: int) -> float:
    """The sign test: the chance that a curve flat within its noise (each epoch up or down as a coin
    falls) rises in `ups` or fewer of `steps` epochs."""
    if steps <= 0:
        return 1.0
    return sum(math.comb(steps, k) for k in range(0, ups + 1)) / 2.0 ** steps


def _flat_within_swings(ctx) -> float:
    """How far the main curve's rises leave it indistinguishable from a flat curve in noise (0: a fall,
    1: flat as far as the signs tell). A curve still falling rises in few of its epochs; one at its
    floor rises in about half of them, whatever its minimum did, and its late best is then a low swing,
    not a descent. The sign test on its epochs after the first fifth: a fall where a flat curve would
    rise as rarely in under 5% of draws, flat from 20% (in 12 epochs: 2 rises of 9 are a fall, 3 are
    not). A second half that gained 100 times the curve's swings is a slow descent under them, whatever
    the signs."""
    m = ctx.features.main()
    if m is None or len(m.raw) < 4 or not m.up_tests:
        return 0.0
    chance = rises_by_chance(m.ups, m.up_tests)
    return ramp(chance, 0.05, 0.2) * (1.0 - ramp(m.half_snr, 20.0, 100.0))


def _still_falling_cap(ctx) -> tuple[float, str]:
    """'Train longer' is a coin flip (under 0.5) on a curve whose rises a flat one would show. On the dev
    logger runs of parts 1-31, of the runs it was sure of (before this cap) it helped 55 of 59 where the
    sign test read a fall (under 5%), 33 of 44 in between and 56 of 91 where a flat curve would rise
    as rarely in 20% of draws or more (31 of its 44 false alarms): a cap, not a factor, so
    that it still comes before cures that help less often (cosine, batch norm)."""
    flat = _flat_within_swings(ctx)
    if not flat:
        return 0.95, ""
    m = ctx.features.main()
    return 0.95 - (0.95 - 0.49) * flat, (
        f"Less sure: {ctx.features.main_name()} rose in {m.ups} of its {m.up_tests} "
        f"epochs after the first fifth, as often as a curve flat within its swings may: its late best may "
        f"be a low swing.")


def _steady_fall_room(ctx, change: dict) -> tuple[float, str]:
    """A larger LR speeds a loss that falls steadily but slowly: a steady fall gains, over the second
    half of the run, many times the curve's own swings (a slow smooth descent: hundreds). A best that
    moved by a few swings is noise around a floor, or a floor reached: half the confidence at 3 swings
    or fewer, all of it from 20. (Dev logger runs: 'raise the LR' helped all 25 runs above 200 swings,
    3 of 10 below 5.)"""
    m = ctx.features.main()
    if m is None or len(m.raw) < 4:
        return 1.0, ""
    factor = 0.5 + 0.5 * ramp(m.half_snr, 3.0, 20.0)
    name = ctx.features.main_name()
    return factor, (f"Less sure: the best {name} of the run's second half beat the first half's by "
                    f"{max(m.half_snr, 0.0):.1f} times the curve's own swings: not a steady fall.")


def _late_divergence_room(ctx, change: dict) -> tuple[float, str]:
    """A rise late in a run that had learned (not at its start, not to NaN, not a collapse at the
    untrained level nor a blow-up past it): the best epoch came before the rise, and a lower LR must
    first cover the same ground more slowly (_catch_up_room), at any LR: a run that learned at an LR
    above its optimizer's usual range learned at that speed (a recorded run at SGD lr 0.5, momentum
    0.9 lost 41% at lr 0.05). A divergence from the start or to NaN keeps its confidence."""
    facts = ctx.diagnosis.facts
    if any(facts.get(k) for k in ("early", "nonfinite", "collapsed", "blown_up", "above_untrained")):
        return 1.0, ""
    return _catch_up_room(ctx, change, "its best epoch came before the rise")


def _decay_present_no_dropout(ctx) -> bool:
    """A run that already has a weight-decay term and no dropout to speak of (under 0.4, where "add
    dropout" applies). The knowledge notes, in practice: "regularization terms are often included by
    default; consider dropout for large fully-connected layers": the decay the run already has is the
    default term, and the next regulariser is dropout, before a 10x stronger decay. A run without any
    decay gets the default term first (every overfitting run of our own suite: weight decay 0). On the
    development logger runs (plain parts 1-37, Lightning 1-37) where "raise the weight decay" came
    first over a decay already there, dropout helped 20 of the 32 plain runs with a problem, the
    stronger decay 10."""
    return ctx.config["weight_decay"] > 0 and ctx.config["dropout"] < 0.4


def _gap_room(ctx, change: dict) -> tuple[float, str]:
    """What a regulariser can still gain on the best val_loss: a regulariser narrows the generalisation
    gap, so it lowers the minimum when the model already fitted its training set much better than the
    val set at its best epoch (val_loss 3x train_loss there or more). Where the two were about level
    at the best epoch (under 1.5x), the minimum was set by what the data allows, not by memorising: the
    rise after it is what early stopping removes, and more regularisation mostly slows the fit down
    (half the confidence). Without a train curve the gap is unknown: no change."""
    gap = ctx.diagnosis.facts.get("gap_at_best")
    if gap is None:
        return 1.0, ""
    return 0.5 + 0.5 * ramp(gap, 1.5, 3.0), (
        f"Less sure here: at the best epoch val_loss was only {num(gap)}x train_loss, so the minimum was set "
        f"by what the data allows more than by memorising; early stopping keeps it.")


def _floor_room(ctx, change: dict) -> tuple[float, str]:
    """What a lower LR can still gain after an early val minimum: it reaches a lower minimum by fitting
    with less noise, which it can where the model goes on to memorise its training set. Where the train
    loss stayed well above zero (over 10% of the untrained level at the end: nothing memorised) and
    val_loss was still below the epoch's train_loss at the best epoch (under 0.8x), the minimum was the
    data's floor (label noise, overlapping classes), reached during the first descent: a lower LR mostly
    reaches the same floor more slowly (half the confidence, ramped back to 1x at a gap of 1 or a
    memorised training set)."""
    facts = ctx.diagnosis.facts
    gap = facts.get("gap_at_best")
    if gap is None:
        return 1.0, ""
    factor = 1.0 - 0.5 * (1.0 - ramp(gap, 0.8, 1.0)) * (1.0 - facts.get("memorised", 1.0))
    return factor, (
        f"Less sure here: at the best epoch val_loss was {num(gap)}x train_loss, below it, and the train loss "
        f"never went near zero: the minimum looks like the data's floor, which a lower LR mostly reaches "
        f"more slowly.")


def run_steps(features: Features) -> Optional[int]:
    """The optimizer steps the run took, as its step-level train loss shows them (the span of its step
    numbers); None for a run logged once an epoch, whose steps per epoch, if stated at all, may stand
    for anything (a tag of 1 for per-epoch points)."""
    steps = features.curves.train_steps
    if steps is not None and len(steps) > max(features.n, 1):
        return int(steps.steps[-1] - steps.steps[0] + 1)
    return None


def _decay_room(ctx, change: dict) -> tuple[float, str]:
    """What lowering the weight decay can free: the decay holds a fit back by shrinking the weights,
    lr x weight_decay a step (over 1 - momentum for SGD: decay_per_step), so over the run's steps it
    took about steps x that share off them (log-shrink). Where that is a few percent, the decay never
    weighed on the weights and the level the losses settled at is the model's or the LR's: none of the
    confidence at 1% of shrink over the run, all of it from 10%. Without the step count, no change;
    nor for an adaptive optimizer with L2 in its gradient (Adam, RMSprop), which divides the decay's
    gradient by the gradients' running scale: its shrink is not lr x weight_decay."""
    steps = run_steps(ctx.features)
    if not steps or ctx.optimizer not in ("sgd", "adamw"):
        return 1.0, ""
    shrink = decay_per_step(ctx.config) * steps
    return ramp(shrink, 0.01, 0.1), (
        f"Less sure here: at lr {num(ctx.config['lr'])} the weight decay took about {pct(min(shrink, 1.0))} off "
        f"the weights over the run's {steps} steps: too little to hold the fit back.")


def _settle_room(ctx, change: dict) -> tuple[float, str]:
    """What annealing a plateaued LR can gain on the val loss: the decay stills the steps' noise, and
    the train loss settles lower in the valley. val_loss follows it by what it shares with it: at g
    times the train loss at the end, the rest of its level (the generalisation gap) is not the noise's,
    and a fall of the train loss by some share of its level moves val_loss by about 1/g of that share:
    the confidence times 1/g (all of it where val_loss is at or below the train loss). Without both
    curves the gap is unknown: no change."""
    gap = ctx.diagnosis.facts.get("val_over_train")
    if gap is None or gap <= 1.0:
        return 1.0, ""
    return 1.0 / gap, (f"Less sure here: val_loss ended {num(gap)}x train_loss; annealing settles the train "
                       f"loss lower, and val_loss follows only by the part of its level it shares with it.")


def _early_overfit_at_upper_lr(ctx):
    """The val minimum came early, at an LR above the middle of its usual range (not a fine-tuning run:
    its own rule lowers the LR): in the first quarter of training, or in the first 40% after a jumpy
    descent (a tenth or more of the epochs on the way jumped up by over 10%: the steps overshoot)."""
    facts = ctx.diagnosis.facts
    at, ups = facts.get("best_at", 1.0), facts.get("ups_to_min", 0.0)
    early = at <= 0.25 or (at <= 0.4 and ups >= 0.1)
    return early and lr_upper(ctx.config) > 0 and not _fine_tuning(ctx)


# A val minimum in the first quarter of the run at an LR in the upper part of its usual range is as
# often the data's floor reached fast as a fit the LR spoiled; the rise after it is evidence of
# overfitting as it lasts: a rise shorter than early stopping's usual patience (~10 epochs) is as
# likely the val loss wandering at its floor. Calibrated on the development runs of bench/devset (never
# on a held-out part): there a 3x lower LR, the best single cure of such runs, beat the minimum by 2%
# in 5 of 22 runs with 8-19 epochs of rise after it and in 23 of 39 with 22-39 (dropout in 20 of the
# 61, 10x the weight decay in none: a large LR already regularises, Smith 2018), while the rule said
# 0.8 on most; on our own trainer's runs, with 20 epochs of rise or more, it helped every time.
# Every cure of overfitting gets the same factor, so they keep their order.
def early_minimum_factor(ctx) -> float:
    """0.3 after a rise of 5 epochs or less, 1 (no change) after 40 or more, linear between."""
    curve = ctx.features.val if ctx.features.val is not None else ctx.features.main()
    after = ctx.features.epoch(len(curve.raw) - 1) - ctx.diagnosis.facts.get("best_epoch", 0)
    return 0.3 + 0.7 * ramp(after, 5.0, 40.0)


EARLY_MINIMUM_WHY = ("Less sure here: the minimum came early at a large LR, and the rise after it was short: a "
                     "minimum like this is about as often the data's floor reached fast as a fit the LR spoiled.")


def _early_trouble(ctx):
    # no warm-up yet, and trouble from the start (a warm-up the loss already jumped in is not the fix)
    return (bool(ctx.diagnosis.facts.get("early")) and ctx.config["warmup_epochs"] == 0
            and ctx.config["epochs"] >= 2 and "warmup_jump" not in ctx.diagnosis.facts)


def _no_clip(ctx):
    return ctx.config["grad_clip"] is None


def _spiky(ctx):
    return _no_clip(ctx) and (ctx.features.grad_spikes or 0) > 5


def _fine_tuning(ctx):
    """A run that starts from another run's model (init_from_run) or freezes layers."""
    return bool(ctx.config.get("init_from_run")) or (ctx.config.get("freeze_layers") or 0) > 0


def _frozen(ctx):
    return (ctx.config.get("freeze_layers") or 0) > 0


RULES: list[Rule] = [
    # Divergence: the step size overshoots; lower it (x0.1 after a NaN, x0.3 otherwise).
    Rule("diverging.lower_lr", "diverging", _always, _lr_down_divergence,
         "The loss blew up: the learning rate is past the stable limit. Lower it (x0.1 after a NaN, "
         "x0.3 otherwise); the best LR is the largest that trains stably.", 0.9, room=_late_divergence_room),
    Rule("diverging.lower_weight_decay", "diverging",
         lambda c: bool(c.diagnosis.facts.get("collapsed")) and decay_per_step(c.config) >= 3e-3, _lower_wd_annealed,
         "The loss never left the untrained level at a large LR with strong weight decay: each step shrinks the "
         "weights by lr x weight_decay (SGD: divided by 1 - momentum), a share so large that the decay, "
         "not the gradient, sets the weights (they collapse towards zero and the output towards a constant). "
         "Large LRs regularise by themselves (Smith, 2018): weight decay off, or into the usual range.", 0.65,
         boost=lambda c: 0.3 * ramp(math.log10(decay_per_step(c.config)), math.log10(3e-3), -1.5)),
    Rule("diverging.add_warmup", "diverging", _early_trouble, _warmup,
         "The run diverged in its first steps: a linear warm-up over ~10% of training lets the same peak "
         "LR be reached stably (Deep Learning Tuning Playbook).", 0.55),
    Rule("diverging.clip_gradients", "diverging", _no_clip, _clip,
         "Gradient spikes drove the divergence: clip the gradient norm at about its 90th percentile "
         "(Deep Learning Tuning Playbook).", 0.45),
    Rule("diverging.clip_spikes", "diverging", lambda c: _spiky(c) and not c.diagnosis.facts.get("early"), _clip,
         "The loss was training well until rare gradient spikes threw it off: clipping fixes that without "
         "slowing the rest of training.", 0.7),
    # Instability: oscillating losses.
    Rule("unstable.lower_lr", "unstable", _always, _lr_down_unstable,
         "The loss oscillates from epoch to epoch: the steps overshoot the valley. A 3x lower LR "
         "damps the swings (10x when the LR is far above its optimizer's usual range).", 0.8,
         room=_swings_room),
    Rule("unstable.clip_gradients", "unstable", _spiky, _clip,
         "Rare large gradients cause the swings: clip the norm at its 90th percentile.", 0.6),
    Rule("unstable.grow_batch", "unstable", lambda c: c.config["batch_size"] <= 16, _grow_batch,
         "A tiny batch gives very noisy gradients; 4x larger batches average the noise out.", 0.55),
    Rule("unstable.add_warmup", "unstable", _early_trouble, _warmup,
         "The swings start at the very beginning: a short warm-up stabilises early training.", 0.4),
    Rule("unstable.sgd_momentum", "unstable", lambda c: c.plain_sgd and c.config["lr"] <= 0.01, _momentum,
         "Momentum (0.9) dampens the oscillations of plain SGD across ravines.", 0.4),
    # Overfitting: the model memorises; regularise it.
    Rule("overfitting.raise_weight_decay", "overfitting",
         lambda c: c.config["weight_decay"] < (0.5 if c.optimizer == "adamw" else 0.01), _raise_wd,
         "val_loss rises while train_loss falls: the model memorises. More weight decay (L2) shrinks the "
         "weights; small data sets and shallow nets want 1e-3 to 1e-2 (Smith, 2018).", 0.75,
         boost=lambda c: -0.15 * _decay_present_no_dropout(c), room=_gap_room),
    Rule("overfitting.lower_lr", "overfitting", _early_overfit_at_upper_lr, _lr_times(0.3),
         "val_loss reached its minimum early and then rose, at an LR in the upper part of its usual range: "
         "the model went from underfitting to overfitting in a few epochs. A larger LR moves training from "
         "underfitting towards overfitting (Smith, 2018); a 3x lower LR reaches a lower minimum.", 0.55,
         boost=lambda c: 0.3 * lr_upper(c.config), room=_floor_room),
    Rule("overfitting.add_dropout", "overfitting", lambda c: c.config["dropout"] < 0.4, _add_dropout,
         "Dropout keeps units from co-adapting and narrows the train/val gap.", 0.65,
         room=_gap_room),
    Rule("overfitting.augment", "overfitting", lambda c: not c.config["augment"], _set("augment", True),
         "More (augmented) data is the surest cure for memorising a small training set.", 0.55,
         room=_gap_room),
    Rule("overfitting.label_smoothing", "overfitting", lambda c: c.config["label_smoothing"] < 0.05,
         _set("label_smoothing", 0.1),
         "Label smoothing (0.1) stops the model from chasing over-confident predictions.", 0.4,
         room=_gap_room),
    Rule("overfitting.shrink_batch", "overfitting", lambda c: c.config["batch_size"] >= 256, _shrink_batch,
         "Large batches converge to sharp minima that generalise worse; a 4x smaller batch (LR scaled "
         "with it) adds regularising noise.", 0.5,
         room=_gap_room),
    Rule("overfitting.adam_to_sgd", "overfitting", lambda c: c.optimizer in ("adam", "adamw"), _adam_to_sgd,
         "Adam fits fast but generalises worse than SGD with momentum on many problems.", 0.35,
         room=_gap_room),
    # early stopping keeps the best epoch but never lowers the best val_loss: it ranks below the cures
    # that can, even where the gap halves their room (dropout 0.65 x 0.5; on the dev logger runs, with
    # the stronger decay ranked below dropout, it came first at 0.35 on 33 plain runs and helped none)
    Rule("overfitting.early_stop", "overfitting", lambda c: c.config["early_stopping_patience"] is None,
         _early_stop,
         "Stop when val_loss stops improving: the best epoch is kept and the remaining epochs are saved "
         "(the best val_loss itself does not improve).", 0.3),
    # Underfitting: too much regularisation or too small a step.
    Rule("underfitting.lower_weight_decay", "underfitting",
         lambda c: c.config["weight_decay"] >= (1e-3 if c.optimizer == "adamw" else 1e-4), _lower_wd,
         "Both losses level off high and close together: weight decay holds the model back. Lower it 10x, "
         "and from far above the usual range (1e-2 to 1e-5) straight into it (large LRs and other "
         "regularisation must be balanced, Smith 2018).", 0.45,
         # weight decay shrinks the weights by lr x wd a step: the more so the stronger it is (1e-4 and
         # less, the bottom of the usual range, rarely holds a fit back); at an LR far below its usual
         # range the step, not the decay, holds the fit back
         boost=lambda c: 0.15 * wd_above_bottom(c.config) + 0.25 * wd_strength(c.config) * (1.0 - lr_is_low(c.config)),
         room=_decay_room),
    Rule("underfitting.lower_dropout", "underfitting", lambda c: c.config["dropout"] >= 0.2, _lower_dropout,
         "Heavy dropout keeps the model from fitting even the training set (within the usual range, up to "
         "0.5, it rarely does: the train loss is read with units dropped, so it looks higher than the fit "
         "is).", 0.55,
         # 0.5 is the classic rate for hidden units. Dev logger runs: halving a dropout of 0.3-0.7 on runs
         # read as underfitting helped 1 of 7
         boost=lambda c: -0.25 * (1.0 - ramp(c.config["dropout"], 0.5, 0.8))),
    Rule("underfitting.lower_label_smoothing", "underfitting", lambda c: c.config["label_smoothing"] >= 0.1,
         _set("label_smoothing", 0.0), "Strong label smoothing caps how low the loss can go.", 0.45),
    Rule("underfitting.add_momentum", "underfitting", lambda c: c.plain_sgd and c.config["lr"] <= 0.1, _momentum,
         "Plain SGD without momentum makes slow progress; momentum 0.9 is the standard choice.", 0.55),
    Rule("underfitting.raise_lr", "underfitting", _always, _raise_lr_underfit,
         "The loss stalls high: a larger LR moves training from underfitting towards fitting (Smith, 2018); "
         "10x when the run learned nothing or the LR is far below its optimizer's usual range.", 0.45,
         boost=lambda c: 0.1 * lr_is_low(c.config)),
    # Not converged: still improving when it stopped.
    Rule("not_converged.add_momentum", "not_converged", lambda c: c.plain_sgd and c.config["lr"] <= 0.1,
         _momentum, "Plain SGD converges slowly; momentum 0.9 (about 10x the effective step) is the "
                    "standard fix: always use momentum with SGD.", 0.75,
         # from some momentum already, 0.9 multiplies the effective step lr/(1-m) less: less to expect;
         # and a new effective step near the top of SGD's usual range risks overshooting
         boost=lambda c: -0.4 * ramp(c.config["momentum"], 0.0, 0.5) - 0.3 * _step_headroom(c)),
    Rule("not_converged.sgd_to_adam", "not_converged",
         lambda c: c.optimizer == "sgd" and c.config["lr"] <= 0.01 and c.diagnosis.facts.get("late_share", 0) >= 0.2,
         _sgd_to_adam, "SGD with a small LR explores slowly; Adam converges faster for early exploration.", 0.5),
    Rule("not_converged.train_longer", "not_converged", lambda c: c.config["epochs"] < 10000 and _not_annealed(c),
         _longer,
         "The loss was still falling at the end: train longer. The factor comes from the curve's time "
         "constant (an exponential approach fitted to its late share): enough epochs for about 3 time "
         "constants, 95% of the descent (2x to 10x).", 0.7, room=_still_gaining_room, cap=_still_falling_cap),
    Rule("not_converged.raise_lr", "not_converged",
         lambda c: (c.diagnosis.facts.get("late_share", 0) >= 0.15 and c.config["scheduler"] == "constant")
         or lr_is_low(c.config) >= 0.5, _raise_lr_slow,
         "The loss falls steadily but slowly: a larger LR reaches the same loss in fewer epochs.", 0.55,
         boost=lambda c: 0.3 * lr_is_low(c.config), room=_steady_fall_room),
    Rule("not_converged.lower_weight_decay", "not_converged",
         lambda c: c.features.annealed and (c.config["weight_decay"] > _wd_top(c.config)
                                            or (lr_is_high(c.config) >= 0.5 and c.config["weight_decay"] > 0)),
         _lower_wd_annealed,
         "The loss kept falling only as the schedule annealed the LR towards zero: while the LR was large, "
         "weight decay (it shrinks the weights by lr x weight_decay a step) held the fit back. Large LRs "
         "regularise by themselves, so other regularisation must be reduced to balance (Smith, 2018): "
         "weight decay into the usual range (1e-2 to 1e-5), or off at an LR above the usual range.", 0.45,
         boost=lambda c: 0.35 * max(wd_strength(c.config), lr_is_high(c.config)) * (1.0 - lr_is_low(c.config))),
    # Plateau at a constant LR: anneal it.
    # A schedule for a plateau settles the train loss lower; whether the best val_loss follows by 2% is
    # another matter: on the dev logger runs (parts 1-29) the cosine came first for 117 plateaus and
    # helped 42; 30 of the 64 it gave 0.45-0.57 (plain 11 of 26, Lightning 19 of 38; 4 of the 10
    # above 0.5). So these stay suggestions (at most 0.49), ranked as before: what came first instead
    # when their confidence was scaled down (batch norm, a larger LR) helped less often
    Rule("plateau.cosine", "plateau", lambda c: c.config["scheduler"] == "constant", _schedule("cosine"),
         "The loss sits on a plateau at a constant LR: annealing it (cosine) settles into the valley.", 0.6,
         room=_settle_room, cap=0.49),
    Rule("plateau.one_cycle", "plateau", lambda c: c.config["scheduler"] == "constant", _schedule("onecycle"),
         "One cycle (Smith, 2018) rises then anneals the LR by orders of magnitude, escaping the plateau "
         "and settling lower.", 0.55,
         room=_settle_room, cap=0.48),
    Rule("plateau.warm_restarts", "plateau", lambda c: c.config["scheduler"] in ("constant", "step"),
         _schedule("cosine_restarts"), "Warm restarts (SGDR) jump out of a plateau and anneal again.", 0.45,
         room=_settle_room, cap=0.47),
]
# Batch normalisation: "BatchNorm always helps in learning as well as generalization" (the knowledge
# notes: "always use batch normalization", FC - BatchNorm - ReLU); a regulariser and a stabiliser.
RULES += [
    Rule("overfitting.batch_norm", "overfitting", _can_batch_norm, _set("batch_norm", True),
         "Batch normalisation regularises (each example's activations depend on its batch) and helps "
         "generalisation: turn it on.", 0.5,
         room=_gap_room),
    Rule("underfitting.batch_norm", "underfitting", _can_batch_norm, _set("batch_norm", True),
         "Batch normalisation keeps each layer's inputs normalised, so the same LR makes faster, steadier "
         "progress: turn it on.", 0.3),
    Rule("not_converged.batch_norm", "not_converged", _can_batch_norm, _set("batch_norm", True),
         "Batch normalisation speeds up training at the same LR: turn it on.", 0.45),
    Rule("unstable.batch_norm", "unstable", _can_batch_norm, _set("batch_norm", True),
         "Batch normalisation smooths the loss surface and steadies training: turn it on.", 0.4),
]
# Fine-tuning (workers/finetune.py): a pretrained start wants a lower LR; frozen layers that hold
# the fit back want unfreezing (their LRs stay lower through lr_layer_factor).
RULES += [
    Rule("overfitting.fine_tune_lower_lr", "overfitting", _fine_tuning, _lr_times(0.3),
         "A fine-tuned run starts near a good solution: a large LR overwrites what the pretrained layers "
         "learned and memorises the new data. Lower the LR 3x (fastai's fine_tune trains at low LRs).", 0.8),
    Rule("unstable.fine_tune_lower_lr", "unstable", _fine_tuning, _lr_times(0.3),
         "Fine-tuning at this LR swings the pretrained weights around: a 3x lower LR keeps them near "
         "the solution they start from.", 0.85),
    Rule("underfitting.unfreeze", "underfitting", _frozen, _set("freeze_layers", 0),
         "Both losses level off high with frozen layers: their features do not fit the new data. Unfreeze "
         "them; they still train at lower LRs (each earlier group gets the LR of the next / lr_layer_factor).",
         0.7),
    Rule("plateau.unfreeze", "plateau", _frozen, _set("freeze_layers", 0),
         "The loss has settled with frozen layers: unfreezing them (at lower, discriminative LRs) is the "
         "second stage of fine-tuning.", 0.65),
]
REGISTRY = {rule.id: rule for rule in RULES}

# Explorations: knowledge-based next experiments for a run with no confident fix (healthy, or only
# weak notes). They are not recommendations (advise does not return them): the autopilot spends its
# remaining rounds on them. Confidences stay low, below most weak notes' fixes: the run's own
# curves are better evidence than a prior.


def _anneal(ctx):
    """SGD: one cycle (Smith, 2018: a large LR regularises, then anneals by orders of magnitude). A
    constant LR that trains stably serves as the cycle's base, and the base is 1/3 to 1/4 of the
    max (Smith, CLR 2015): the cycle peaks at 3x the LR, unless that leaves the usual stable range.
    Adaptive optimizers need decay less ("with Adam you may not need LR decay"): a cosine anneal."""
    if ctx.optimizer != "sgd":
        return {"scheduler": "cosine"}
    peak = _round(ctx.config["lr"] * 3)
    if lr_is_high({**ctx.config, "lr": peak}) >= 0.5:
        return {"scheduler": "onecycle"}
    return {"scheduler": "onecycle", "lr": peak}


def _best_at_end(ctx):
    m = ctx.features.main()
    return m is not None and len(m.raw) >= 3 and m.raw_argmin >= len(m.raw) - 1 - max(1, len(m.raw) // 10)


def _momentum_safe(ctx):
    # momentum 0.9 multiplies the effective step 10x: only where that stays in the usual range
    return ctx.plain_sgd and lr_is_high({**ctx.config, "momentum": 0.9}) < 0.5


EXPLORATIONS: list[Rule] = [
    Rule("explore.sgd_momentum", "healthy", _momentum_safe, _momentum,
         "Always use momentum with SGD: 0.9 is the standard value (it damps oscillations and speeds "
         "progress along ravines).", 0.3,
         # momentum multiplies the step: most to expect where the step is small
         boost=lambda c: 0.1 * lr_is_low(c.config) - 0.05),
    Rule("explore.anneal_lr", "healthy", lambda c: c.config["scheduler"] == "constant", _anneal,
         "A constant LR stops short of the valley floor: annealing it is the state of the art and usually "
         "settles lower. SGD: one cycle peaking at 3x the LR (the stable LR as the cycle's base, Smith); "
         "adaptive optimizers: cosine.", 0.1),
    # a generic prior, so below what a healthy run's own curve shows (a weak note's fix, more epochs
    # for a minimum at the end): on the dev logger runs it helped 22 of the 280 healthy runs at a
    # constant LR it came first on (8%)
    Rule("explore.adam_to_sgd", "healthy", lambda c: c.optimizer in ("adam", "adamw"), _adam_to_sgd,
         "Adam for the first tests, SGD with momentum for the best result: SGD+momentum usually "
         "generalises better once the problem trains.", 0.22),
    Rule("explore.lower_weight_decay", "healthy",
         lambda c: c.config["weight_decay"] > _wd_top(c.config)
         or (lr_is_high(c.config) >= 0.5 and wd_above_bottom(c.config) > 0),
         lambda c: {"weight_decay": 0.0 if lr_is_high(c.config) >= 0.5 else _round(_wd_top(c.config) / 10)},
         "The weight decay is above the usual range (1e-2 to 1e-5, Smith 2018; 10x that for AdamW), or the "
         "LR is above its usual range (large LRs regularise by themselves: other regularisation must be "
         "reduced to balance, Smith; weight decay off): the curves show no problem, but so much "
         "regularisation often costs a little.", 0.3,
         # weight decay shrinks the weights by lr x wd a step: it holds the fit back most where the step
         # is not small (at an LR far below its range the step, not the decay, is what holds it back)
         boost=lambda c: 0.1 * (1.0 - lr_is_low(c.config)) - 0.05),
    Rule("explore.raise_lr", "healthy",
         lambda c: _best_at_end(c) and c.features.annealed and c.config["weight_decay"] <= _wd_top(c.config)
         and lr_is_high({**c.config, "lr": c.config["lr"] * 3}) < 0.5,
         _lr_times(3),
         "val_loss was still at its minimum when the schedule had annealed the LR to ~0: the run never "
         "reached the flat part of its curve, and the weight decay is in the usual range. The best LR is "
         "the largest that trains stably (Smith; fastai's lr_find): try 3x.", 0.24),
    Rule("explore.train_longer", "healthy",
         lambda c: _best_at_end(c) and c.config["epochs"] < 10000 and _not_annealed(c),
         _explore_longer,
         "val_loss reached its minimum at the last epochs: more epochs may still lower it. The factor comes "
         "from the curve's time constant: enough epochs for about 3 time constants (2x to 10x).", 0.2),
]


@dataclass
class Recommendation:
    rule: str
    diagnosis: str
    change: dict
    rationale: str
    confidence: float

    def as_dict(self):
        return {"rule": self.rule, "diagnosis": self.diagnosis, "change": self.change,
                "rationale": self.rationale, "confidence": round(float(self.confidence), 3)}


def _valid(config: dict, change: dict) -> Optional[dict]:
    """Drop no-op keys; keep the change consistent with the validator's cross-field checks."""
    change = {k: v for k, v in change.items() if config.get(k) != v}
    if not change:
        return None
    new = {**config, **change}
    if new["nesterov"] and (new["optimizer"] != "sgd" or new["momentum"] <= 0):
        change["nesterov"] = False
    if new["warmup_epochs"] >= new["epochs"]:
        return None
    if "lr" in change and not (0 < change["lr"] <= 100):
        return None
    return change


def explorations(features: Features, raw_config: dict) -> list[Recommendation]:
    """The applicable EXPLORATIONS for this run, best first (see above)."""
    config = read_config(raw_config)
    ctx = Context(config, features, Diagnosis("healthy", 1.0, "", [], {}), frozenset(design_config(raw_config)))
    out = []
    for rule in EXPLORATIONS:
        if rule.when(ctx):
            change = _valid(config, rule.change(ctx))
            if change is not None:
                conf = rule.confidence + (rule.boost(ctx) if rule.boost else 0.0)
                out.append(Recommendation(rule.id, "healthy", change, rule.rationale, conf))
    return sorted(out, key=lambda r: -r.confidence)


def recommend(features: Features, diagnoses: list[Diagnosis], raw_config: dict) -> list[Recommendation]:
    config = read_config(raw_config)
    keys = frozenset(design_config(raw_config))
    weak_cap = 0.45
    by_change: dict[str, Recommendation] = {}
    main = next((d for d in diagnoses if d.id != "healthy"), None)
    for diag in diagnoses:
        if diag.id == "healthy":
            continue
        finding = diag.severity >= 0.5
        weight = 1.0 if diag is main else 0.85  # the fixes of the main problem come first
        for rule in RULES:
            if rule.diagnosis != diag.id:
                continue
            ctx = Context(config, features, diag, keys)
            if not rule.when(ctx):
                continue
            change = _valid(config, rule.change(ctx))
            if change is None:
                continue
            conf, rationale = rule.assess(ctx, change)
            if diag.id == "overfitting" and _early_overfit_at_upper_lr(ctx):
                factor = early_minimum_factor(ctx)
                conf *= factor
                if factor < 1.0:
                    rationale = f"{rationale} {EARLY_MINIMUM_WHY}"
            conf *= weight
            if not finding:
                conf = min(weak_cap, conf * diag.severity)
            cap, why = rule.cap(ctx) if callable(rule.cap) else (rule.cap, "")
            if conf > cap and why:
                rationale = f"{rationale} {why}"
            conf = min(cap, conf)
            rec = Recommendation(rule.id, diag.id, change, rationale, conf)
            key = repr(sorted(change.items()))
            if key not in by_change or by_change[key].confidence < conf:
                by_change[key] = rec
    recs = sorted(by_change.values(), key=lambda r: -r.confidence)
    seen, out = set(), []
    for r in recs:
        if r.rule not in seen:
            seen.add(r.rule)
            out.append(r)
    return out
