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

from .features import Features, ramp

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


def _diverging(f: Features):
    c = f.curves
    if c.nonfinite_step is not None:
        where = f"epoch {c.nonfinite_epoch}" if c.nonfinite_epoch else f"step {int(c.nonfinite_step)}"
        steps_before = ""
        if c.nonfinite_metric == "train_loss" and c.train_steps is not None:
            steps_before = f" after {int(np.isfinite(c.train_steps.values).sum())} finite steps"
        ep = c.nonfinite_epoch or f.epoch(len(c.epochs) - 1)
        return Diagnosis("diverging", 1.0, f"{c.nonfinite_metric} became non-finite (NaN/inf) at {where}"
                         f"{steps_before}", [ep, ep],
                         {"nonfinite": True, "early": (c.nonfinite_epoch or 1) <= 1, "ratio": math.inf})
    best = None
    for name, sh in (("train_loss", f.train), ("val_loss", f.val)):
        if sh is None or len(sh.raw) < 3:
            continue
        ratio = (sh.last + f.floor) / (sh.min + f.floor)
        above_start = (sh.last - f.curves.initial_loss) / (abs(f.curves.initial_loss) + f.floor)
        sev = max(ramp(math.log(ratio), math.log(1.3), math.log(2.2)),
                  ramp(above_start, -0.05, 0.3) if sh.argmin < len(sh.raw) - 1 and ratio > 1.15 else 0.0)
        if name == "val_loss" and f.train is not None and f.train.rise_from_min < 0.1:
            sev *= 0.3  # val rising while train keeps falling is overfitting, not divergence
        if best is None or sev > best[0]:
            best = (sev, name, sh, ratio)
    blow = f.step_blowup or 0.0
    if blow >= 3 and (best is None or best[0] < 0.6):
        return Diagnosis("diverging", ramp(blow, 3, 10) * 0.9,
                         f"train_loss blew up to {num(blow)}x its initial value", [f.epoch(0), f.epoch(f.n - 1)],
                         {"nonfinite": False, "early": True, "ratio": blow})
    if best is None or best[0] <= 0:
        return None
    sev, name, sh, ratio = best
    e0, e1 = f.epoch(sh.argmin), f.epoch(len(sh.raw) - 1)
    return Diagnosis("diverging", sev, f"{name} rose to {num(ratio)}x its minimum ({num(sh.min)} at epoch {e0})"
                     f" by epoch {e1}, ending at {pct(sh.last / (abs(f.curves.initial_loss) + f.floor))} of its"
                     f" initial value", [e0, e1], {"nonfinite": False, "early": sh.argmin <= len(sh.raw) // 5,
                                                  "ratio": ratio})


def _unstable(f: Features):
    cands = []
    if f.val is not None and len(f.val.raw) >= 5:
        cands.append((max(ramp(f.val.jitter, 0.06, 0.2), ramp(f.val.big_ups, 0.1, 0.3)), "val_loss", f.val))
    if f.train is not None and len(f.train.raw) >= 5:
        cands.append((max(ramp(f.train.jitter, 0.04, 0.15), ramp(f.train.big_ups, 0.08, 0.25)), "train_loss", f.train))
    spikes = f.grad_spikes or 0.0
    if not cands:
        return None
    sev, name, sh = max(cands, key=lambda c: c[0])
    if sev <= 0:
        return None
    return Diagnosis("unstable", sev, f"{name} oscillates: epoch-to-epoch swings of {pct(sh.jitter)} around its trend,"
                     f" {pct(sh.big_ups)} of epochs jumped up by more than 10%"
                     + (f"; grad_norm p99 is {num(spikes)}x its median" if spikes > 5 else ""),
                     [f.epoch(len(sh.raw) // 5), f.epoch(len(sh.raw) - 1)], {"grad_spikes": spikes})


def _overfitting(f: Features):
    v = f.val
    if v is None or len(v.raw) < 4:
        return None
    rise = v.rise_from_min
    after = len(v.raw) - 1 - v.argmin
    if after < 2 or rise <= 0.03:
        return None
    t_fall = None
    if f.train is not None:
        t_at = f.train.smooth[v.argmin]
        t_fall = (t_at - f.train.last) / (abs(t_at) + f.floor)
        if t_fall < -0.1:
            return None  # train rising too: not overfitting
    sev = ramp(rise, 0.05, 0.25) * (0.5 + 0.5 * ramp(t_fall, 0.0, 0.3) if t_fall is not None else 0.85)
    e0, e1 = f.epoch(v.argmin), f.epoch(len(v.raw) - 1)
    train_part = f" while train_loss fell {pct(t_fall)}" if t_fall is not None else ""
    return Diagnosis("overfitting", sev, f"val_loss rose {pct(rise)} from its minimum {num(v.min)} at epoch {e0}"
                     f"{train_part} (by epoch {e1})", [e0, e1],
                     {"rise": rise, "best_epoch": e0, "after_share": after / len(v.raw), "t_fall": t_fall})


def _not_converged(f: Features):
    m = f.main()
    if m is None:
        return None
    n = len(m.raw)
    name = "val_loss" if f.val is not None else "train_loss"
    if n < 3:
        drop = (m.raw[0] - m.raw[-1]) / (abs(m.raw[0]) + f.floor)
        sev = ramp(drop, 0.03, 0.15)
        share = drop
    else:
        at_end = m.argmin >= n - 1 - max(1, n // 10)
        share = m.late_share
        sev = ramp(share, 0.04, 0.2) if at_end else 0.0
    if sev <= 0:
        return None
    in_progress = f.status == "running" and (f.planned_epochs is None or n < f.planned_epochs)
    if in_progress:
        sev *= 0.3
    q = max(0, n - 1 - max(1, n // 4))
    ev = (f"{name} was still falling at the end: the last quarter of training made {pct(share)} of its"
          f" total descent, minimum at the last epochs ({num(m.raw_min)})")
    if in_progress:
        ev += " (run in progress)"
    return Diagnosis("not_converged", sev, ev, [f.epoch(q), f.epoch(n - 1)], {"late_share": share})


def _underfitting(f: Features):
    t = f.train or f.val
    if t is None or len(t.raw) < 3:
        return None
    init = f.curves.initial_loss
    if not np.isfinite(init) or init <= 0:
        return None
    level = t.last / init
    flat = 1.0 - ramp(t.late_share, 0.03, 0.12)
    reg = regularisation(f.config)
    gap_note, val_below = "", 0.0
    if f.train is not None and f.val is not None:
        val_below = (f.train.last - f.val.last) / (abs(f.train.last) + f.floor)
        gap_note = f"; val_loss {num(f.val.last)} vs train_loss {num(f.train.last)}"
        if val_below < -0.15:  # a wide generalisation gap is not underfitting
            flat *= ramp(val_below, -0.4, -0.15)
    evidence = max(reg, ramp(val_below, 0.0, 0.15))
    sev = ramp(level, 0.2, 0.55) * flat * (0.4 + 0.6 * evidence)
    if sev <= 0:
        return None
    name = "train_loss" if f.train is not None else "val_loss"
    ev = (f"{name} levelled off at {pct(level)} of its initial value ({num(t.last)} from {num(init)})"
          f"{gap_note}")
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
    return Diagnosis("plateau", sev, f"{name} has been flat (within 5% of its descent) since epoch"
                     f" {f.epoch(t.flat_since)}, {pct(flat_share)} of training, at a constant learning rate",
                     [f.epoch(t.flat_since), f.epoch(len(t.raw) - 1)], {"flat_share": flat_share})


DETECTORS = (_diverging, _unstable, _overfitting, _underfitting, _not_converged, _plateau)
# When two findings are as severe, the one listed first is the more fundamental problem.
PRIORITY = {"diverging": 5, "unstable": 4, "overfitting": 3, "underfitting": 2, "not_converged": 1, "plateau": 0}


def diagnose(f: Features) -> list[Diagnosis]:
    found = [d for d in (detect(f) for detect in DETECTORS) if d is not None and d.severity > 0.05]
    if any(d.id == "diverging" and d.severity >= FINDING for d in found):
        found = [d for d in found if d.id != "unstable" or d.severity > 0.9]
    found.sort(key=lambda d: (-round(d.severity, 1), -PRIORITY[d.id]))
    findings = [d for d in found if d.severity >= FINDING]
    if findings:
        return found
    m = f.main()
    name = "val_loss" if f.val is not None else "train_loss"
    if m is not None:
        ev = (f"{name} fell from {num(m.first)} to {num(m.last)} and settled (minimum {num(m.raw_min)}"
              f" at epoch {f.epoch(m.raw_argmin)}); no problem found")
        epochs = [f.epoch(0), f.epoch(len(m.raw) - 1)]
    else:
        ev, epochs = "too few points to find a problem", [1, 1]
    strongest = max((d.severity for d in found), default=0.0)
    healthy = Diagnosis("healthy", round(1.0 - strongest, 3), ev, epochs, {})
    return [healthy] + found
