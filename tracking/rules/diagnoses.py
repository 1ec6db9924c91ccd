"""Diagnoses: what went wrong with a run, with a severity in [0, 1], evidence in words
and numbers, and the epochs it covers. Each detector is a small function of the
Features; `diagnose` runs them all and orders them, most severe first.

A diagnosis of severity 0.5 or more is a finding; weaker ones are notes. A run
with no finding is `healthy` (listed first, the notes after it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .features import Features, lr_shares, ramp, swings_at_low_lr

FINDING = 0.5
HEAVY_WD = {"adamw": 0.05}  # decoupled weight decay is used at ~10-100x the L2 values


@dataclass
class Diagnosis:
    id: str
    severity: float
    evidence: str
    epochs: list  # [first, last] epoch the evidence covers
    facts: dict  # numbers the rules read (not part of the contract answer)

    def as_dict(self):
        return {"id": self.id, "severity": round(float(self.severity), 3), "evidence": self.evidence,
                "epochs": [int(e) for e in self.epochs]}


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def num(x: float) -> str:
    return f"{x:.3g}"


def share(x: float) -> str:
    """A share of a level: "45%", or "3.2e+04x" when it is far above it."""
    return pct(x) if abs(x) < 10 else f"{num(x)}x"


def config_number(config: dict, key: str, default: float) -> float:
    v = config.get(key, default)
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return default
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return default
    return float(v)


def regularisation(config: dict) -> float:
    """How strongly the config regularises, 0..1 (weight decay, dropout, label smoothing)."""
    opt = str(config.get("optimizer", "sgd")).lower()
    wd = config_number(config, "weight_decay", 0.0) / (10.0 if opt == "adamw" else 1.0)
    wd_score = ramp(math.log10(wd), -3.3, -1.7) if wd > 0 else 0.0
    return max(wd_score, ramp(config_number(config, "dropout", 0.0), 0.25, 0.6),
               ramp(config_number(config, "label_smoothing", 0.0), 0.1, 0.3))


def _log_lr(config: dict):
    """(optimizer, log10 of its effective LR) or None: for SGD the step lr/(1-momentum)."""
    opt = str(config.get("optimizer", "sgd")).lower()
    lr = config_number(config, "lr", 0.0)
    if lr <= 0:
        return None
    if opt == "sgd":
        lr /= max(1e-3, 1.0 - min(0.999, config_number(config, "momentum", 0.0)))
    return opt, math.log10(lr)


def _log(x: float, base: float = math.e) -> float:
    """log of a ratio of losses; -inf where it is not positive (a loss that went below zero, e.g. a
    negative log-likelihood of a density: the ratios this engine reads mean nothing there)."""
    return math.log(x, base) if x > 0 and math.isfinite(x) else (math.inf if x == math.inf else -math.inf)


def lr_is_high(config: dict) -> float:
    """0..1: how far the LR is above the usual stable range of its optimizer (prior knowledge:
    SGD's effective step lr/(1-momentum) rarely trains above ~1, Adam-like ones above ~0.01)."""
    found = _log_lr(config)
    if found is None:
        return 0.0
    opt, x = found
    if opt == "sgd":
        return ramp(x, math.log10(0.5), math.log10(3.0))
    if opt == "adagrad":
        return ramp(x, -1.0, -0.3)
    return ramp(x, -2.0, -1.3)


def lr_is_low(config: dict) -> float:
    """0..1: how far the LR is below the usual range of its optimizer (SGD: an effective step
    under ~0.01; Adam-like: under ~1e-4)."""
    found = _log_lr(config)
    if found is None:
        return 0.0
    opt, x = found
    if opt == "sgd":
        return 1.0 - ramp(x, -2.5, -1.5)
    if opt == "adagrad":
        return 1.0 - ramp(x, -3.0, -2.0)
    return 1.0 - ramp(x, -4.0, -3.3)


def _logged_before_any_update(f: Features) -> bool:
    """The first finite train step loss was logged before any update (step 0; 1 for a logger counting
    from 1): the untrained loss itself, as our trainer logs it."""
    steps = f.curves.train_steps
    if steps is None:
        return False
    finite = np.isfinite(steps.values)
    return bool(finite.any() and steps.steps[int(np.argmax(finite))] <= 1)


def _collapsed(f: Features):
    """The loss never left the untrained level, with a learning rate known to be too large:
    training collapsed (dead units, saturated outputs) rather than diverging visibly."""
    m = f.main()
    init = f.curves.initial_loss
    if m is None or not np.isfinite(init) or init <= 0 or len(m.raw) < 2:
        return None
    never_beat = _never_beat_constant(f)
    if not f.untrained_known and accuracy_kept_rising(f) and never_beat <= 0:
        return None  # compared with a first epoch only, and the accuracy kept rising: it learned
    acc = f.accuracy
    if acc and acc["best"] - acc["first"] >= 0.1 and acc["best_index"] > max(1, acc["n"] // 10):
        # the val accuracy climbed 10 points or more after the start: the units did not die, the model
        # learned; a loss still high against ln C is what the data allows at this LR (a hard problem)
        return None
    if not f.classes and not _logged_before_any_update(f):
        # the first logged step came after some updates (Lightning's log_every_n_steps, the Trainer's
        # logging_steps), maybe far below the untrained level: measure from the first epoch too
        init = max(init, float(m.raw[np.isfinite(m.raw)][0]))
    best = m.raw_min / init
    high = lr_is_high(f.config)
    sev = ramp(best, 0.5, 0.75) * high
    # short of a finding from the loss's level, the bound may make one alone
    no_fit = sev < FINDING and never_beat * high > sev
    if no_fit:
        sev = never_beat * high
    if sev <= 0:
        return None
    if no_fit:
        ev = (f"val_loss never beat a prediction that ignores its inputs (at best"
              f" {num(acc['vs_constant']['best'])}x the least cross-entropy of one at that val_accuracy), and"
              f" val_accuracy never settled above its start's {pct(acc['start'])} (its second half's mean"
              f" {pct(acc['late_mean'])})")
    else:
        ev = f"the loss never fell below {pct(best)} of its untrained value ({num(init)})"
    return Diagnosis("diverging", sev, f"{ev}: training collapsed at a learning rate that is high for"
                     f" {f.config.get('optimizer', 'this optimizer')}",
                     [f.epoch(0), f.epoch(len(m.raw) - 1)],
                     {"nonfinite": False, "early": True, "ratio": 3.0, "collapsed": True, "no_fit": no_fit})


def _never_beat_constant(f: Features) -> float:
    """0..1: val_loss never went below the least cross-entropy a prediction that ignores its inputs
    has at the accuracy of that epoch (vs_constant: at or above 0.98 of that bound in every epoch, none
    of it below 0.9), and the val accuracy never settled above where it started (its second half's mean
    within 3 points of the accuracy's "start", none of it from 8). A swing of a few points of accuracy
    (a constant prediction flipping between classes, a small val set) is no learning then, however late
    its best epoch came."""
    acc = f.accuracy
    bound = acc.get("vs_constant") if acc else None
    if bound is None or not np.isfinite(bound["best"]):
        return 0.0
    return ramp(bound["best"], 0.9, 0.98) * (1.0 - ramp(acc["late_mean"] - acc["start"], 0.03, 0.08))


def loss_scale(f: Features) -> float:
    """The curves' own scale: the smallest of the untrained/chance level (ln C, or the loss before the
    first update) and the first logged epochs' train and val losses (a first logged point that blew up
    is no scale, nor an "untrained" loss read off a step that already blew up); NaN when there is none."""
    levels = [float(f.untrained)] if f.untrained_known and np.isfinite(f.untrained) else []
    levels += [float(sh.raw[np.isfinite(sh.raw)][0]) for sh in (f.train, f.val)
               if sh is not None and np.isfinite(sh.raw).any()]
    levels = [x for x in levels if x > 0]
    return min(levels) if levels else math.nan


def headroom(f: Features) -> float:
    """0..1: the room the best val_loss (train_loss without a val curve) leaves above zero, on the
    curves' own scale (loss_scale): 0 for a best under 1% of it, 1 from 5%; and the room the best
    val_accuracy leaves below 100% (0 at no error, 1 from a 1% error). A best that close to zero
    is a near-perfect fit of the val set: what a change could still gain there is a sliver of a tiny
    number, as likely lost as won, whatever happened after the best epoch."""
    m = f.main()
    scale = loss_scale(f)
    room = 1.0
    if m is not None and np.isfinite(scale) and scale > 0 and np.isfinite(m.raw_min):
        room = ramp(m.raw_min / scale, 0.01, 0.05)
    if f.accuracy:
        # a val set classified without a single error: what loss is left is the confidence of a few
        # examples, which a change is as likely to lose as to win
        room = min(room, ramp(1.0 - f.accuracy["best"], 0.0, 0.01))
    return room


def level_name(f: Features, first: float) -> str:
    """How the evidence names the untrained level it compares with."""
    if f.extra.get("uniform_prediction"):
        return f"the uniform prediction's ln {f.classes} = {num(f.untrained)} (val_accuracy steady at 1/{f.classes})"
    if f.classes:
        return f"the chance level ln {f.classes} = {num(f.untrained)}"
    if f.untrained_known:
        return f"the untrained level {num(f.untrained)}"
    return f"its first epoch's {num(first)}"


def accuracy_kept_rising(f: Features) -> bool:
    """val_accuracy improved over the run and its best came after the first tenth: the model
    learned, whatever its val cross-entropy did (a rising CE with a rising accuracy is overconfidence)."""
    acc = f.accuracy
    return bool(acc) and acc["best"] - acc["first"] >= 0.02 and acc["best_index"] > max(1, acc["n"] // 10)


def _learning_failed(f: Features):
    """The main curve shows the run learned nothing: its best stayed at the untrained/chance level
    (or, with only the first epoch to compare with, at its first epochs, the best epoch at the start
    of a run that went on), or it ended above that level: worse than guessing. A run whose train
    loss fell far below that level, or whose val_accuracy kept rising, did learn: its val rise is
    overfitting, read by that detector."""
    m = f.val if f.val is not None else f.train
    name = f.main_name()
    u = f.untrained
    if m is None or len(m.raw) < 3 or not np.isfinite(u) or u <= 0:
        return None
    n = len(m.raw)
    if not f.untrained_known:  # compare the curve with its own first epoch
        u = float(m.raw[np.isfinite(m.raw)][0])
        if u <= 0:
            return None
    train_fits = (f.train is not None and f.val is not None
                  and f.train.last <= 0.5 * (u if f.untrained_known else f.train.first))
    if train_fits or accuracy_kept_rising(f):
        return None
    raw_last = float(m.raw[np.isfinite(m.raw)][-1])
    best_e, last_e = f.epoch(m.raw_argmin), f.epoch(n - 1)
    best_at, last_at = f.at(m.raw_argmin), f.at(n - 1)
    known = f.untrained_known
    worse = ramp(min(m.last, raw_last) / u, 1.02, 1.25) if known else ramp(min(m.last, raw_last) / u, 1.05, 1.5)
    first = float(m.raw[np.isfinite(m.raw)][0])
    if m.raw_argmin >= n - 1 - max(1, n // 10) and m.raw_min < 0.99 * first:
        # still falling to its minimum at the end: a curve that keeps falling is not diverging, whatever
        # level it sits at (above a stated chance level, the stated number of classes is the doubt)
        worse = 0.0
    if known:
        never = ramp(m.raw_min / u, 0.85, 0.97)
    else:  # the first epoch is not the untrained level: the best epoch at the start is the finding
        early = 1.0 - ramp(m.raw_argmin / n, 0.05, 0.2)
        never = early * ramp(n, 5, 10) * ramp(m.raw_min / u, 0.9, 0.98) * 0.8
        acc = f.accuracy
        if acc is not None and f.val is not None:
            # or the val accuracy never moved off its first value while the loss barely left its first
            # epoch's level and stays flat: the predictions stayed where they started (a curve still
            # making a real share of its small descent at the end is slow, read as not converged)
            still = 1.0 - ramp(acc["best"] - acc["first"], 0.005, 0.02)
            flat = 1.0 - ramp(m.late_share, 0.05, 0.12)
            never = max(never, still * flat * ramp(n, 5, 10) * ramp(m.raw_min / u, 0.9, 0.97))
    if worse <= 0 and never <= 0:
        return None
    level = level_name(f, u)
    if worse >= never:
        return Diagnosis("diverging", worse, f"{name} ended at {num(raw_last)} ({last_at}), above {level}:"
                         f" worse than the untrained model (its best was {num(m.raw_min)} at {best_at})",
                         [best_e, last_e], {"nonfinite": False, "early": m.raw_argmin <= n // 5, "ratio": 3.0,
                                            "above_untrained": True})
    if lr_is_high(f.config) >= 0.5:
        return Diagnosis("diverging", never, f"{name} never fell clearly below {level} (best {num(m.raw_min)} at"
                         f" {best_at}): training collapsed at a learning rate that is high for"
                         f" {f.config.get('optimizer', 'this optimizer')}", [best_e, last_e],
                         {"nonfinite": False, "early": True, "ratio": 3.0, "collapsed": True})
    return Diagnosis("underfitting", never, f"{name} never fell clearly below {level}: its best {num(m.raw_min)} was"
                     f" at {best_at} of {last_e} epochs; the run failed to learn", [best_e, last_e],
                     {"level": m.raw_min / u, "failed_to_learn": True})


def _first_epoch_blowup(f: Features):
    """The loss blew up in the first epoch and the run never recovered: the first epoch's loss is
    10x or more above every later one (100x without an accuracy to tell), and val_accuracy never rose
    above its first value (it stayed at chance). Learning brings a loss down gradually; a first epoch
    orders of magnitude above the rest is the mark of steps that overshot (the weights blew up, then
    saturated near a constant prediction), when the loss stays where it landed. A spike that the run
    recovered from, learning afterwards, is not a divergence."""
    acc = f.accuracy
    # it learned: the accuracy rose, or is near perfect (never the chance level, short of a 90% class)
    learned = acc is not None and (acc["best"] - acc["first"] >= 0.05 or acc["last"] >= 0.9)
    if learned:
        return None
    need = 10.0 if acc is not None else 100.0
    val = f.curves.val[np.isfinite(f.curves.val)] if f.curves.val is not None else None
    if val is not None and val.size >= 4:
        # the val curve learned nothing after the first epoch: it blew up there too, or never went
        # below its first value
        if not (val[0] >= need * float(val[1:].max()) or float(val[1:].min()) >= 0.98 * val[0]):
            return None
    for name, curve in (("train_loss", f.curves.train), ("val_loss", f.curves.val)):
        if curve is None:
            continue
        finite = curve[np.isfinite(curve)]
        if finite.size < 4 or finite[0] <= 0:
            continue
        later = float(finite[1:].max())
        # and it never came down afterwards (a first epoch that averages a fast descent is followed by
        # a curve still falling by orders of magnitude)
        stuck = finite[-1] >= 0.5 * float(np.median(finite[1:]))
        if later > 0 and finite[0] / later >= need and stuck:
            ratio = float(finite[0] / later)
            ev = (f"{name} blew up to {num(finite[0])} in the first epoch ({num(ratio)}x every later value) and the"
                  f" run never recovered: it ended at {num(float(finite[-1]))}")
            if acc is not None:
                ev += f", val_accuracy stayed near {pct(acc['first'])} (best {pct(acc['best'])})"
            return Diagnosis("diverging", 1.0, ev, [f.epoch(0), f.epoch(len(curve) - 1)],
                             {"nonfinite": False, "early": True, "ratio": ratio, "blown_up": True})
    return None


def _lost_share(sh, initial: float, floor: float) -> float:
    """The share of its descent (from its first value, or the untrained loss when that is higher) a
    smoothed curve gave back by its end."""
    top = max(sh.first, initial) if np.isfinite(initial) else sh.first
    return (sh.last - sh.min) / (top - sh.min + floor)


def _diverging_curve(f: Features):
    c = f.curves
    blown = _first_epoch_blowup(f) if c.nonfinite_step is None else None
    if blown is not None:
        return blown
    if c.nonfinite_step is not None:
        where = f"epoch {c.nonfinite_epoch}" if c.nonfinite_epoch else f"step {int(c.nonfinite_step)}"
        steps_before = ""
        if c.nonfinite_metric == "train_loss" and c.train_steps is not None:
            # the points logged before the first non-finite one (finite ones after it are not "before")
            steps_before = f" after {int(np.argmin(np.isfinite(c.train_steps.values)))} finite steps"
        ep = c.nonfinite_epoch or f.epoch(len(c.epochs) - 1)
        return Diagnosis("diverging", 1.0, f"{c.nonfinite_metric} became non-finite (NaN/inf) at {where}"
                         f"{steps_before}", [ep, ep],
                         {"nonfinite": True, "early": (c.nonfinite_epoch or 1) <= 1, "ratio": math.inf})
    best = None
    for name, sh in (("train_loss", f.train), ("val_loss", f.val)):
        if sh is None or len(sh.raw) < 2:
            continue
        ratio = (sh.last + f.floor) / (sh.min + f.floor)
        above_start = (sh.last - f.curves.initial_loss) / (abs(f.curves.initial_loss) + f.floor)
        # the share of what the run had learned that the rise gave back: a loss that jumps from near
        # zero to a few times that is a large ratio and a small loss of progress (a memorised training
        # set knocked about by a step), while a divergence gives back most of the descent
        lost = _lost_share(sh, f.curves.initial_loss, f.floor)
        sev = max(ramp(_log(ratio), math.log(1.3), math.log(2.2)) * ramp(lost, 0.2, 0.5),
                  ramp(above_start, -0.05, 0.3) if sh.argmin < len(sh.raw) - 1 and ratio > 1.15 else 0.0)
        if (name == "val_loss" and f.train is not None
                and (f.train.rise_from_min < 0.1 or _lost_share(f.train, f.curves.initial_loss, f.floor) < 0.15)):
            # val rising while train keeps falling (or keeps all but a sliver of its descent: a train
            # loss near zero bumped up by a step is a large relative rise) is overfitting, not divergence
            sev *= 0.3
        if name == "val_loss" and f.train is None and accuracy_kept_rising(f):
            sev *= 0.3  # val cross-entropy drifting up while accuracy improves: overconfidence
        if name == "val_loss" and f.train is None and above_start <= 0:
            # Only val_loss to go by: a rise that stays below the untrained loss reads as
            # overfitting (val cross-entropy grows without bound as the model grows overconfident);
            # a divergence takes the loss past where it started.
            sev *= 0.3
        untrained = max(f.curves.initial_loss, f.untrained if f.untrained_known else -math.inf)
        if sh.last <= 1.1 * untrained and sh.jitter < 0.05:
            # a smooth return to (not beyond) the untrained loss or the chance level ln C (a model whose
            # weights were pulled to zero predicts uniformly): strong weight decay, not a divergence
            sev *= 1.0 - 0.7 * regularisation(f.config)
        if best is None or sev > best[0]:
            best = (sev, name, sh, ratio)
    blow = f.step_blowup or 0.0
    if blow >= 3 and (best is None or best[0] < 0.6):
        m = f.main()
        level = (m.last / (abs(c.initial_loss) + f.floor)) if m is not None else 1.0
        # blew up and never recovered (stuck near the untrained loss): diverged; recovered: an early spike
        sev = ramp(blow, 3, 10) * (0.5 + 0.5 * ramp(level, 0.4, 0.8))
        return Diagnosis("diverging", sev,
                         f"train_loss blew up to {num(blow)}x its initial value ({num(c.initial_loss)}) and ended at"
                         f" {pct(level)} of it", [f.epoch(0), f.epoch(f.n - 1)],
                         {"nonfinite": False, "early": True, "ratio": blow})
    if best is None or best[0] <= 0:
        return None
    sev, name, sh, ratio = best
    e0, e1 = f.epoch(sh.raw_argmin), f.epoch(len(sh.raw) - 1)
    last = float(sh.raw[np.isfinite(sh.raw)][-1])
    return Diagnosis("diverging", sev, f"{name} rose from its minimum {num(sh.raw_min)} at {f.at(sh.raw_argmin)} to"
                     f" {num(last)} at {f.at(len(sh.raw) - 1)} ({num(last / sh.raw_min) if sh.raw_min > 0 else 'inf'}x),"
                     f" ending at {share(last / (abs(f.curves.initial_loss) + f.floor))} of its initial value", [e0, e1],
                     {"nonfinite": False, "early": sh.argmin <= len(sh.raw) // 5, "ratio": ratio})


def _unstable(f: Features):
    cands = []
    if f.val is not None and len(f.val.raw) >= 5:
        # a val curve on a small val set is noisier than an epoch mean of train losses
        # swings around the trend count only where the curve goes up at times (a fast monotone
        # descent leaves residuals around a short curve's smoothing, but does not oscillate)
        cands.append((max(ramp(f.val.jitter, 0.08, 0.25) * ramp(f.val.up_share, 0.1, 0.3),
                          ramp(f.val.big_ups, 0.15, 0.4)), "val_loss", f.val))
    if f.train is not None and len(f.train.raw) >= 5:
        t_sev = max(ramp(f.train.jitter, 0.04, 0.15) * ramp(f.train.up_share, 0.1, 0.3),
                    ramp(f.train.big_ups, 0.08, 0.25))
        spe = f.curves.steps_per_epoch
        if f.step_noise is not None and spe:
            # an epoch mean of `spe` noisy steps jitters by about step_noise / sqrt(spe) by sampling
            # alone (a small data set has few steps an epoch): only jitter beyond that is instability
            sampling = f.step_noise / math.sqrt(spe)
            t_sev *= ramp(f.train.jitter / (sampling + 1e-12), 1.2, 2.0)
        if f.val is not None and len(f.val.raw) >= 5:
            # a smooth val curve that ends near its best: the train swings did not hurt what was learned
            v_calm = 1.0 - max(ramp(f.val.jitter, 0.04, 0.12), ramp(f.val.big_ups, 0.1, 0.3))
            t_sev *= 1.0 - 0.6 * v_calm * (1.0 - ramp(f.val.rise_from_min, 0.03, 0.1))
        cands.append((t_sev, "train_loss", f.train))
    spikes = f.grad_spikes or 0.0
    if not cands:
        return None
    # swings that matter are large beside the progress the curve made: a wiggle of a few hundredths
    # on a loss that fell by 2 is noise around a near-finished descent, however large it is beside
    # the small level it wiggles at (a visible oscillation on the plot: 5% of the descent or more).
    # A val curve is measured on a fixed, often small, val set: a few hard examples changing sides
    # make it swing by more than an epoch mean of train losses does. Its oscillation costs the run what
    # it learned when it is a sizeable share of the descent (5% or more, certain from 30%); smaller
    # val swings around a long descent are that noise, and a lower LR trades progress for a
    # smoothness the best epoch did not need.
    cands = [(sev * (ramp(sh.swing, 0.05, 0.3) if name == "val_loss" else ramp(sh.swing, 0.02, 0.05)), name, sh)
             for sev, name, sh in cands]
    # Steps that overshoot swing less as the LR falls (their size is the LR's): a schedule that took the
    # LR to a quarter of its peak or less damps them to about that share. Swings as large there as at
    # half the peak or more are not the steps' doing (the sampling noise of a few batches a logged
    # point, a small val set's hard examples): none of the finding from 1.2x the high-LR swings,
    # all of it at 0.6x or less.
    undamped = {}
    for sev, name, sh in cands:
        ratio = swings_at_low_lr(sh, lr_shares(f.curves, len(sh.raw)), f.floor)
        if ratio is not None:
            undamped[name] = ratio
    cands = [(sev * (1.0 - ramp(undamped.get(name, 0.0), 0.6, 1.2)), name, sh) for sev, name, sh in cands]
    _, name, sh = max(cands, key=lambda c: c[0])
    sev = 1.0 - float(np.prod([1.0 - c[0] for c in cands]))  # both curves swinging corroborate each other
    if sev <= 0:
        return None
    boosted = min(1.0, sev * (1.0 + 0.5 * lr_is_high(f.config)))  # swings at an LR known to be high
    sev = boosted if sev >= FINDING else min(boosted, FINDING - 0.01)  # a prior never makes a finding
    if f.train is not None and f.val is not None:
        tiny = 0.05 * f.floor
        if (f.val.last + tiny) / (f.train.last + tiny) >= 10:
            # a model that memorised its training set: val_loss swings with a few confidently wrong
            # examples, and spikes of a near-zero train loss are benign; the gap is the problem
            sev *= 0.6
    return Diagnosis("unstable", sev, f"{name} oscillates: epoch-to-epoch swings of {pct(sh.jitter)} around its trend,"
                     f" {pct(sh.big_ups)} of epochs jumped up by more than 10%"
                     + (f"; grad_norm p99 is {num(spikes)}x its median" if spikes > 5 else ""),
                     [f.epoch(len(sh.raw) // 5), f.epoch(len(sh.raw) - 1)], {"grad_spikes": spikes})


def over_train(f: Features, val: float, train: float) -> float:
    """val_loss over train_loss (the generalisation gap as a ratio), both nudged by a sliver of the
    loss scale (0.1% of the initial loss) so that a train loss at zero gives a large finite ratio."""
    tiny = 0.05 * f.floor
    return float((val + tiny) / (max(train, 0.0) + tiny))


def _overfitting(f: Features):
    v = f.val
    if v is None or len(v.raw) < 4:
        return None
    rise = v.rise_from_min
    after = len(v.raw) - 1 - v.argmin
    if after < 2 or rise <= 0.03:
        return _memorising(f)
    t_fall, gap, memorised = None, None, 0.0
    if f.train is not None:
        t_at = f.train.smooth[v.argmin]
        t_fall = (t_at - f.train.last) / (abs(t_at) + f.floor)
        if t_fall < -0.1:
            return None  # train rising too: not overfitting
        gap = _log(over_train(f, v.last, f.train.last), 10)  # val over train, in decades
        u = f.untrained if np.isfinite(f.untrained) and f.untrained > 0 else abs(f.train.first) + f.floor
        # train loss near zero: the training set is memorised
        memorised = ramp(-_log(max(f.train.last, 1e-12) / u, 10), 1.0, 2.0)
    # measured on the val rise and the train/val gap (a train loss already near zero cannot fall much more)
    if t_fall is None:
        factor = 0.85 * (0.5 if accuracy_kept_rising(f) else 1.0)
    else:
        factor = 0.5 + 0.5 * max(ramp(t_fall, 0.0, 0.3), ramp(gap, 0.3, 1.0))
    sev = ramp(rise, 0.05, 0.25) * factor
    sev = max(sev, 0.9 * memorised * ramp(gap or 0.0, 0.5, 1.0) * ramp(rise, 0.02, 0.08))
    if f.train is not None and len(f.train.raw) >= 5:  # a jumpy train curve: the rise may be instability
        jumpy = max(ramp(f.train.jitter, 0.04, 0.15), ramp(f.train.big_ups, 0.08, 0.25)) * (1.0 - memorised)
        sev *= 1.0 - 0.5 * jumpy * (1.0 + lr_is_high(f.config)) / 2 - 0.25 * jumpy
    e0, e1 = f.epoch(v.raw_argmin), f.epoch(len(v.raw) - 1)
    last = float(v.raw[np.isfinite(v.raw)][-1])
    train_part = ""
    if f.train is not None:
        t_then = float(f.train.raw[min(v.raw_argmin, len(f.train.raw) - 1)])
        t_now = float(f.train.raw[np.isfinite(f.train.raw)][-1])
        verb = "fell" if t_now < t_then else "went"
        train_part = f" while train_loss {verb} from {num(t_then)} to {num(t_now)}"
    return Diagnosis("overfitting", sev, f"val_loss rose from its minimum {num(v.raw_min)} at {f.at(v.raw_argmin)} to"
                     f" {num(last)} at {f.at(len(v.raw) - 1)}{train_part}", [e0, e1],
                     {"rise": rise, "best_epoch": e0, "after_share": after / len(v.raw), "t_fall": t_fall,
                      "memorised": memorised, **_minimum_facts(f)})


def _minimum_facts(f: Features) -> dict:
    """Where the val minimum lies (its share of the run, the best epoch's index + 1 over the epochs) and
    how jumpy the way there was: the share of epochs, up to twice the minimum's, whose val_loss jumped
    up by more than 10% of its level (steps that overshoot the valley)."""
    v = f.val
    i, n = v.raw_argmin, len(v.raw)
    window = v.raw[: min(n, 2 * i + 3)]
    with np.errstate(invalid="ignore"):
        ups = np.diff(window) / (np.abs(v.smooth[1:len(window)]) + f.floor) > 0.10
    facts = {"best_at": (i + 1) / n, "ups_to_min": float(ups.mean()) if ups.size else 0.0}
    if f.train is not None and len(f.train.smooth) == n:
        # the generalisation gap at the best epoch: val_loss over train_loss there (the smoothed curves)
        facts["gap_at_best"] = over_train(f, v.smooth[v.argmin], f.train.smooth[v.argmin])
    return facts


def _memorising(f: Features):
    """Overfitting without a rising val_loss: val stopped improving while train_loss kept falling
    by a large factor (the train/val gap keeps widening)."""
    v, t = f.val, f.train
    if t is None or len(v.raw) < 6:
        return None
    near_best = np.nonzero(v.smooth <= v.min + 0.05 * (abs(v.min) + f.floor))[0]
    start = min(int(near_best[0]), len(v.raw) - 3)
    stalled_share = 1.0 - start / len(v.raw)
    t_ratio = (t.smooth[start] + 1e-3 * f.floor) / (t.last + 1e-3 * f.floor)
    v_gain = (v.smooth[start] - v.last) / (abs(v.smooth[start]) + f.floor)
    tiny = 0.05 * f.floor  # 0.1% of the initial loss
    gap = (v.last + tiny) / (t.last + tiny)
    memorised = t.last / (abs(f.curves.initial_loss) + f.floor)  # train loss as a share of the untrained one
    if v_gain > 0.05 or gap < 2:
        return None
    # train_loss kept falling after val stopped, or was already ~0 (memorised) while val stayed far above it
    falling = ramp(_log(t_ratio, 2), 0.6, 2.0) if t_ratio >= 1.5 else 0.0
    at_zero = ramp(-_log(memorised + 1e-12, 10), 2.0, 3.0) * ramp(_log(gap, 10), 1.5, 2.5)
    sev = 0.8 * max(falling, at_zero) * ramp(stalled_share, 0.15, 0.4) * ramp(_log(gap, 10), 0.3, 1.0)
    if sev <= 0:
        return None
    e0, e1 = f.epoch(start), f.epoch(len(v.raw) - 1)
    t_then = float(t.raw[min(start, len(t.raw) - 1)])
    t_now = float(t.raw[np.isfinite(t.raw)][-1])
    v_now = float(v.raw[np.isfinite(v.raw)][-1])
    train_part = (f"train_loss fell from {num(t_then)} to {num(t_now)}" if t_now < t_then
                  else f"train_loss stayed near {num(t_now)}")
    return Diagnosis("overfitting", sev, f"{_stalled_words(f, start)} while {train_part}; val_loss {num(v_now)} is"
                     f" {num(v_now / t_now) if t_now > 0 else 'inf'}x train_loss", [e0, e1],
                     {"rise": 0.0, "best_epoch": e0, "after_share": stalled_share, "t_fall": 1 - 1 / t_ratio,
                      **_minimum_facts(f)})


def _stalled_words(f: Features, start: int) -> str:
    """How val_loss stalled, as its raw points show it: "has stayed within 5% of its best (B at epoch
    E) since epoch S" when every point from S on is that close (5%, 10% or 20%), else where it stopped
    improving and where it ended (the smoothed curve found the stall; the raw points may swing above)."""
    v = f.val
    after = v.raw[start:][np.isfinite(v.raw[start:])]
    best, best_epoch = float(v.raw_min), f.epoch(v.raw_argmin)
    above = (float(after.max()) - best) / (abs(best) + 1e-12) if after.size else math.inf
    for pct in (5, 10, 20):
        if above <= pct / 100:
            return (f"val_loss has stayed within {pct}% of its best ({num(best)} at epoch {best_epoch}) since"
                    f" epoch {f.epoch(start)}")
    last_index = int(np.nonzero(np.isfinite(v.raw))[0][-1])
    return (f"val_loss stopped improving at epoch {best_epoch} ({num(best)}) and ended at"
            f" {num(float(v.raw[last_index]))} at epoch {f.epoch(last_index)}")


def _not_converged(f: Features):
    m = f.main()
    if m is None:
        return None
    n = len(m.raw)
    name = f.main_name()
    if n < 3:
        drop = (m.raw[0] - m.raw[-1]) / (abs(m.raw[0]) + f.floor)
        sev = ramp(drop, 0.03, 0.15)
        share = drop
    else:
        at_end = m.argmin >= n - 1 - max(1, n // 10)
        share = m.late_share
        q = max(0, n - 1 - max(2, n // 4))
        late_drop = (m.smooth[q] - m.last) / (abs(m.last) + f.floor)  # still falling, relative to its level
        rate = late_drop / (n - 1 - q)  # per epoch
        # still making a real share of its progress at the end, or falling fast relative to its level
        sev = max(ramp(share, 0.03, 0.12), min(ramp(rate * n, 0.15, 0.4), ramp(share, 0.01, 0.04))) if at_end else 0.0
    if sev <= 0:
        return None
    in_progress = f.status == "running" and (f.planned_epochs is None or n < f.planned_epochs)
    if in_progress:
        sev *= 0.3
    if f.annealed and not in_progress:
        # the LR was annealed near zero at the end: a flattening end is the schedule's doing; only an
        # end still falling clearly at a near-zero LR shows the run stopped short (its LR too small
        # to get there: the fix is a larger step, not more epochs, see rules)
        sev *= ramp(share, 0.08, 0.2)
    q = max(0, n - 1 - max(1, n // 4))
    ev = (f"{name} was still falling at the end: the last quarter of training made {pct(share)} of its"
          f" total descent, minimum {num(m.raw_min)} at {f.at(m.raw_argmin)}")
    if in_progress:
        ev += " (run in progress)"
    return Diagnosis("not_converged", sev, ev, [f.epoch(q), f.epoch(n - 1)],
                     {"late_share": share, "annealed": f.annealed})


def _underfitting(f: Features):
    """The fit is held back: read from the curves (the loss levelled off high above zero, train and
    val together with no generalisation gap, or val below train, or both pulled smoothly back up
    towards the untrained level). The level is only read against a known untrained level (ln C or
    the loss before the first update). The config's regularisation strengthens a sign the curves
    show, never makes one."""
    t = f.train or f.val
    if t is None or len(t.raw) < 3:
        return None
    init = f.untrained if f.untrained_known else f.curves.initial_loss
    if not np.isfinite(init) or init <= 0:
        return None
    level = t.last / init
    level_known = f.untrained_known
    flat = 1.0 - ramp(t.late_share, 0.03, 0.12)
    if level_known and f.val is not None and f.train is not None:
        # train_loss still creeping down, but val_loss levelled off near the untrained level: held back
        v_flat = 1.0 - ramp(f.val.late_share, 0.03, 0.12)
        flat = max(flat, v_flat * ramp(f.val.last / init, 0.7, 0.85))
    reg = regularisation(f.config)
    gap_note, together, pulled = "", 0.0, 0.0
    smooth_rise = False
    if f.train is not None and f.val is not None:
        val_below = (f.train.last - f.val.last) / (abs(f.train.last) + f.floor)
        # train and val level off together (val at most 5% above train; 15% or more: a gap)
        together = ramp(val_below, -0.15, -0.05)
        gap_note = (f"; val_loss {num(float(f.val.raw[np.isfinite(f.val.raw)][-1]))} vs train_loss"
                    f" {num(float(f.train.raw[np.isfinite(f.train.raw)][-1]))} at the end")
        if val_below < -0.15:  # a wide generalisation gap is not underfitting
            flat *= ramp(val_below, -0.4, -0.15)
        # both losses pulled smoothly back up from an early minimum, staying below the untrained
        # level: the weights decayed back towards zero (a divergence is jumpy or goes past it)
        smooth_rise = f.train.jitter < 0.03 and f.train.last <= 1.1 * init
        if smooth_rise:
            pulled = ramp(f.train.rise_from_min, 0.05, 0.15) * ramp(f.val.rise_from_min, 0.03, 0.1)
    strong = max(together, pulled)
    # Without a known untrained level the level is read against the first logged epoch, which comes
    # after training began (a mean over an epoch that started at the untrained level, or a point after
    # it): an upper bound on the true level. A level near 1 cannot tell a fit held back from one made
    # in the first epoch: only train and val ending together (or pulled back up) make it a sign. A
    # level well under 1 is a fall the run made: it ended at that share of its untrained level or lower,
    # so "together at a quarter of the untrained level" (read from a known level) is not read from it.
    if not level_known and not strong:
        level = 0.0
    evidence = max(strong, ramp(level, 0.7, 0.9))
    refit = 1.0 - ramp(t.rise_from_min, 0.1, 0.3) * (0.0 if smooth_rise else 1.0)
    low_together = strong * ramp(level, 0.08, 0.25) if level_known else 0.0
    sev = flat * refit * max(ramp(level, 0.2, 0.55) * (0.4 + 0.6 * evidence), low_together)
    sev *= 1.0 - ramp(level, 1.05, 1.3)  # a loss that ended above its untrained level diverged
    if sev >= 0.2:
        sev = min(1.0, sev * (1.0 + reg))  # strong regularisation in the config explains what the curves show
    if sev <= 0:
        return None
    name = "train_loss" if f.train is not None else "val_loss"
    t_now = float(t.raw[np.isfinite(t.raw)][-1])
    ev = (f"{name} levelled off at {pct(t_now / init)} of {'its untrained level' if level_known else 'its first epoch'}"
          f" ({num(t_now)} from {num(init)}){gap_note}")
    if pulled >= 0.5:
        ev += "; both losses rose smoothly back from an early minimum"
    if reg > 0.3:
        ev += "; the config regularises strongly"
    return Diagnosis("underfitting", sev, ev, [f.epoch(t.flat_since), f.epoch(len(t.raw) - 1)],
                     {"level": level, "reg": reg})


def _plateau(f: Features):
    t = f.train or f.val
    if t is None or len(t.raw) < 8:
        return None
    sched = str(f.config.get("scheduler", "constant")).lower()
    constant = f.lr_constant if f.lr_constant is not None else sched == "constant"
    if not constant:
        return None
    flat_share = 1.0 - t.flat_since / len(t.raw)
    init = f.curves.initial_loss if np.isfinite(f.curves.initial_loss) else t.first
    level = t.last / (abs(init) + f.floor)
    noisy = max(ramp(f.step_noise or 0.0, 0.15, 0.5), ramp(t.jitter, 0.02, 0.08))
    sev = ramp(flat_share, 0.35, 0.7) * ramp(level, 0.05, 0.3) * (0.35 + 0.45 * noisy)
    if sev <= 0:
        return None
    name = "train_loss" if f.train is not None else "val_loss"
    facts = {"flat_share": flat_share}
    if f.train is not None and f.val is not None:
        # the generalisation gap where the plateau ends: val_loss over train_loss (the smoothed curves)
        facts["val_over_train"] = over_train(f, f.val.smooth[-1], f.train.smooth[-1])
    return Diagnosis("plateau", sev, f"{name} has been flat (within 5% of its descent) since epoch"
                     f" {f.epoch(t.flat_since)}, {pct(flat_share)} of training, at a constant learning rate",
                     [f.epoch(t.flat_since), f.epoch(len(t.raw) - 1)], facts)


def calibrated_ce(accuracy: float, classes: int) -> float:
    """The cross-entropy of a calibrated classifier right with probability `accuracy` (its wrong
    mass spread over the other classes): a val_loss far above it, at that val accuracy, means the
    predictions are held near uniform."""
    a = min(max(accuracy, 1e-6), 1 - 1e-6)
    return float(-a * math.log(a) - (1 - a) * math.log((1 - a) / max(1, classes - 1)))


def _held_back(f: Features):
    """val_accuracy rose while val_loss barely fell and stays far above the cross-entropy a calibrated
    classifier has at that accuracy: the model ranks the classes right but its predictions stay near
    uniform; strong regularisation (weight decay, dropout) or a step too small keeps the logits small.
    Read from the curves alone (the number of classes from the config, else the first val_loss)."""
    v, acc = f.val, f.accuracy
    if v is None or acc is None or len(v.raw) < 5:
        return None
    first = float(v.raw[np.isfinite(v.raw)][0])
    if not first > 0:
        return None
    classes = f.classes or max(2, int(math.exp(min(first, 7.0)) + 0.5))
    fall = (first - v.raw_min) / first
    gain = acc["best"] - acc["first"]
    floor = calibrated_ce(acc["best"], classes)
    excess = v.raw_min / floor if floor > 0 else 1.0
    sev = ramp(excess, 1.3, 2.0) * ramp(gain, 0.05, 0.15) * (1.0 - ramp(fall, 0.1, 0.25))
    if sev <= 0:
        return None
    return Diagnosis("underfitting", sev, f"val_accuracy rose from {pct(acc['first'])} to {pct(acc['best'])} while"
                     f" val_loss stayed near its first epoch's {num(first)} (best {num(v.raw_min)} at"
                     f" {f.at(v.raw_argmin)}), {num(excess)}x the {num(floor)} of a calibrated classifier at that"
                     f" accuracy: the predictions are held near uniform", [f.epoch(0), f.epoch(len(v.raw) - 1)],
                     {"level": 1.0, "held_back": True, "reg": regularisation(f.config)})


def _underfitting_or_failed(f: Features):
    """Underfitting read from the level the loss settled at, or a run that failed to learn at all."""
    found = [d for d in (_underfitting(f), _failed_to_learn(f), _held_back(f)) if d is not None]
    return max(found, key=lambda d: d.severity) if found else None


def _failed_to_learn(f: Features):
    d = _learning_failed(f)
    return d if d is not None and d.id == "underfitting" else None


def _diverging_or_worse(f: Features):
    """The most severe of a visible divergence, a collapse and a run worse than untrained; a finding
    that names its cause comes before a loss that only never beat a constant prediction."""
    found = [d for d in (_diverging_curve(f), _collapsed(f), _learning_failed(f))
             if d is not None and d.id == "diverging"]
    named = [d for d in found if not d.facts.get("no_fit") and d.severity >= FINDING]
    return max(named or found, key=lambda d: d.severity) if found else None


DETECTORS = (_diverging_or_worse, _unstable, _overfitting, _underfitting_or_failed, _not_converged, _plateau)
# When two findings are as severe, the one listed first is the more fundamental problem.
PRIORITY = {"diverging": 5, "unstable": 4, "overfitting": 3, "underfitting": 2, "not_converged": 1, "plateau": 0}


def _schedule_evidence(f: Features, found: list[Diagnosis]) -> None:
    """Add how the loss responded to warm-up and LR decay to the evidence it explains."""
    resp = f.extra.get("lr_response") or {}
    jump = resp.get("warmup_jump", 0)
    for d in found:
        if d.id in ("diverging", "unstable") and jump >= 1.5:
            d.evidence += (f"; the loss jumped {num(jump)}x while the LR rose to {num(resp['peak_lr'])}"
                           f" (step {resp['peak_step']}): the peak LR is too high even with warm-up")
            d.facts["warmup_jump"] = jump
        if d.id in ("plateau", "not_converged", "underfitting") and resp.get("decay_gain", 0) >= 0.1:
            d.evidence += (f"; the loss fell {pct(resp['decay_gain'])} right after the LR decayed at step"
                           f" {resp['decay_step']}: it responds to annealing")
            d.facts["decay_gain"] = resp["decay_gain"]


def _above_untrained(f: Features, found: list[Diagnosis]) -> None:
    """A val_loss that ends above the untrained/chance level while train_loss fits: the model is
    worse than guessing on new data (overconfident on what it memorised). Overfitting, and severe."""
    v = f.val
    if v is None or not f.untrained_known or not np.isfinite(f.untrained) or f.untrained <= 0:
        return
    last = float(v.raw[np.isfinite(v.raw)][-1]) if np.isfinite(v.raw).any() else math.nan
    worse = ramp(min(v.last, last) / f.untrained, 1.02, 1.25)
    for d in found:
        if d.id == "overfitting" and worse > 0:
            d.severity = max(d.severity, worse)
            d.evidence += f"; val_loss {num(last)} is above {level_name(f, f.untrained)}: worse than guessing"


def diagnose(f: Features) -> list[Diagnosis]:
    found = [d for d in (detect(f) for detect in DETECTORS) if d is not None and d.severity > 0.05]
    _above_untrained(f, found)
    _schedule_evidence(f, found)
    div = next((d for d in found if d.id == "diverging"), None)
    if div is not None and div.facts.get("no_fit"):
        # a loss that never beat a constant prediction names no cause: a finding that does (swings,
        # a rise) stays the main problem, and its cures come first
        top = max((d.severity for d in found if d is not div), default=0.0)
        if top >= FINDING:
            div.severity = min(div.severity, top - 0.1)
    if div is not None and div.severity >= FINDING and not div.facts.get("no_fit"):
        # a run that blew up or collapsed: its oscillation or slow progress is a symptom, not the cause
        for d in found:
            if d.id in ("unstable", "not_converged", "plateau", "underfitting"):
                d.severity = min(d.severity, div.severity - 0.15)
        found = [d for d in found if d.severity > 0.05]
    failed = next((d for d in found if d.facts.get("failed_to_learn") or d.facts.get("above_untrained")), None)
    if failed is not None:
        # a run that learned nothing (or ended worse than untrained) has not "not converged"
        found = [d for d in found if d.id not in ("not_converged", "plateau")]
    found.sort(key=lambda d: (-round(d.severity, 1), -PRIORITY[d.id]))
    findings = [d for d in found if d.severity >= FINDING]
    if findings:
        return found
    m = f.main()
    name = f.main_name()
    if m is not None:
        finite = m.raw[np.isfinite(m.raw)]
        first, last = float(finite[0]), float(finite[-1])
        verb = "fell" if last < first else "rose" if last > first else "stayed"
        ev = (f"{name} {verb} from {num(first)} to {num(last)} (minimum {num(m.raw_min)}"
              f" at {f.at(m.raw_argmin)}); no problem found")
        epochs = [f.epoch(0), f.epoch(len(m.raw) - 1)]
    else:
        ev, epochs = "too few points to find a problem", [1, 1]
    strongest = max((d.severity for d in found), default=0.0)
    resp = f.extra.get("lr_response") or {}
    if resp.get("decay_gain", 0) >= 0.1:
        ev += f"; the loss fell {pct(resp['decay_gain'])} when the LR decayed at step {resp['decay_step']}"
    healthy = Diagnosis("healthy", round(1.0 - strongest, 3), ev, epochs, {})
    return [healthy] + found
