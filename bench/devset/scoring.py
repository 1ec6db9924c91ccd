"""Counterfactual scoring of the engine's top change on a set of runs (pure Python, no I/O).

A run "has a problem" when some single change of the vocabulary (the candidates the source
can express: LR x0.1 ... dropout down) improves its best val_loss by HELP (2%) or more; it is
"tuned/healthy" otherwise. The engine's top change is scored the same way: applied, retrained
(or looked up), and it "helped" when best val_loss improved by HELP or more. A change the
source cannot express (e.g. an optimizer switch on LCBench) is "n/a": counted apart and never
counted as helped.

Figures per part (dev, held-out):
- hit rate: runs with a problem whose top change helped (no recommendation = a miss);
- false alarms: tuned runs given a change with confidence >= CONFIDENT that did not help;
- precision: share of confident top changes (any run) that helped;
- reliability: confidence bin -> count, share that helped;
- baselines on the same runs: a random single change of the vocabulary (mean over DRAWS seeded
  draws) and the best single fixed change (the one that helps most runs with a problem, picked on
  the part itself, so an optimistic baseline).
"""
from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from typing import Optional

HELP = 0.02
CONFIDENT = 0.5
DRAWS = 10
BINS = (0.0, 0.25, 0.5, 0.75, 1.0)


def improvement(parent: float, child: float) -> float:
    """Relative decrease of best val_loss, clipped at -100% (a change that diverges)."""
    if child != child or child == float("inf"):  # nan / inf: as bad as it gets
        return -1.0
    return max(-1.0, (parent - child) / abs(parent)) if parent else 0.0


@dataclass
class Case:
    """One run: its best val_loss, each candidate change's best val_loss (None: not expressible),
    the engine's top recommendation (None: no recommendation) and its best val_loss (None: n/a)."""

    source: str
    part: str  # "dev" or "held-out"
    name: str
    regime: str
    base: float
    candidates: dict[str, Optional[float]]
    rec: Optional[dict] = None  # {"rule", "change", "confidence", "diagnosis"}
    rec_best: Optional[float] = None
    diagnosis: str = ""
    notes: dict = field(default_factory=dict)

    def gain(self, child: Optional[float]) -> Optional[float]:
        return None if child is None else improvement(self.base, child)

    @property
    def candidate_gains(self) -> dict[str, float]:
        return {k: self.gain(v) for k, v in self.candidates.items() if v is not None}

    @property
    def problem(self) -> bool:
        return any(g >= HELP for g in self.candidate_gains.values())

    @property
    def oracle(self) -> tuple[str, float]:
        gains = self.candidate_gains
        if not gains:
            return "(none)", 0.0
        best = max(gains, key=gains.get)
        return best, gains[best]

    @property
    def confidence(self) -> float:
        return float(self.rec["confidence"]) if self.rec else 0.0

    @property
    def status(self) -> str:
        """'none' (no recommendation), 'n/a' (not expressible here), 'helped' or 'no help'."""
        if not self.rec:
            return "none"
        if self.rec_best is None:
            return "n/a"
        return "helped" if self.gain(self.rec_best) >= HELP else "no help"

    @property
    def helped(self) -> bool:
        return self.status == "helped"

    @property
    def engine_gain(self) -> float:
        """The top change's improvement; 0 for no recommendation or an n/a change (nothing applied)."""
        return self.gain(self.rec_best) if self.status in ("helped", "no help") else 0.0


def _share(num: int, den: int) -> Optional[float]:
    return num / den if den else None


def reliability(cases: list[Case], bins=BINS) -> list[dict]:
    """Confidence bin -> how many top changes, how many helped (no recommendation is left out)."""
    rows = []
    for i, (lo, hi) in enumerate(zip(bins[:-1], bins[1:])):
        last = i == len(bins) - 2
        inside = [c for c in cases if c.rec and lo <= c.confidence and (c.confidence < hi or last and c.confidence <= hi)]
        rows.append({"bin": (lo, hi), "count": len(inside), "helped": sum(c.helped for c in inside),
                     "n/a": sum(c.status == "n/a" for c in inside),
                     "share": _share(sum(c.helped for c in inside), len(inside))})
    return rows


def random_baseline(cases: list[Case], draws: int = DRAWS, seed: int = 0) -> dict:
    """One random expressible candidate per run, DRAWS seeded draws: mean hit rate on runs with a
    problem and mean improvement there."""
    problems = [c for c in cases if c.problem]
    hits, gains = [], []
    for d in range(draws):
        rng = random.Random(seed * 1000 + d)
        h, g = 0, []
        for c in problems:
            options = sorted(c.candidate_gains.items())
            name, gain = rng.choice(options)
            h += gain >= HELP
            g.append(gain)
        hits.append(_share(h, len(problems)) or 0.0)
        gains.append(statistics.mean(g) if g else 0.0)
    return {"hit_rate": statistics.mean(hits) if problems else None,
            "mean_gain": statistics.mean(gains) if problems else None, "draws": draws}


def best_fixed_baseline(cases: list[Case]) -> dict:
    """The single candidate that helps the most runs with a problem (ties: higher mean gain); not
    expressible on a run counts as no help there."""
    problems = [c for c in cases if c.problem]
    names = sorted({k for c in problems for k in c.candidates})
    if not problems or not names:
        return {"name": None, "hit_rate": None, "mean_gain": None}

    def stats(name):
        gains = [c.candidate_gains.get(name, 0.0) for c in problems]
        return sum(g >= HELP for g in gains), statistics.mean(gains)

    best = max(names, key=stats)
    hits, mean_gain = stats(best)
    return {"name": best, "hit_rate": hits / len(problems), "mean_gain": mean_gain}


def summarise(cases: list[Case]) -> dict:
    """Every figure of one part."""
    problems = [c for c in cases if c.problem]
    tuned = [c for c in cases if not c.problem]
    confident = [c for c in cases if c.rec and c.confidence >= CONFIDENT]
    alarms = [c for c in tuned if c.rec and c.confidence >= CONFIDENT and not c.helped]
    oracle = [c.oracle[1] for c in problems]
    return {
        "runs": len(cases), "problems": len(problems), "tuned": len(tuned),
        "hits": sum(c.helped for c in problems), "hit_rate": _share(sum(c.helped for c in problems), len(problems)),
        "no_rec_on_problems": sum(c.status == "none" for c in problems),
        "na_on_problems": sum(c.status == "n/a" for c in problems),
        "na_all": sum(c.status == "n/a" for c in cases),
        "false_alarms": len(alarms), "false_alarm_rate": _share(len(alarms), len(tuned)),
        "confident": len(confident), "confident_helped": sum(c.helped for c in confident),
        "precision": _share(sum(c.helped for c in confident), len(confident)),
        "engine_mean_gain": statistics.mean(c.engine_gain for c in problems) if problems else None,
        "oracle_mean_gain": statistics.mean(oracle) if oracle else None,
        "random": random_baseline(cases), "best_fixed": best_fixed_baseline(cases),
        "reliability": reliability(cases),
    }


def pct(x: Optional[float]) -> str:
    return "  -  " if x is None else f"{x:.0%}"


def report(title: str, cases: list[Case]) -> list[str]:
    """The printed block of one source and part."""
    s = summarise(cases)
    rnd, fixed = s["random"], s["best_fixed"]
    lines = [f"== {title}: {s['runs']} runs, {s['problems']} with a problem, {s['tuned']} tuned/healthy",
             f"  hit rate on runs with a problem: {pct(s['hit_rate'])} ({s['hits']}/{s['problems']}; "
             f"no recommendation {s['no_rec_on_problems']}, change not applicable here {s['na_on_problems']})",
             f"    beside: random single change {pct(rnd['hit_rate'])} (mean of {rnd['draws']} draws), "
             f"best fixed change {pct(fixed['hit_rate'])} ({fixed['name']})",
             f"    mean improvement on them: engine {pct(s['engine_mean_gain'])}, random {pct(rnd['mean_gain'])}, "
             f"best fixed {pct(fixed['mean_gain'])}, oracle (best candidate per run) {pct(s['oracle_mean_gain'])}",
             f"  false alarms on tuned/healthy runs (confidence >= {CONFIDENT} and no help): "
             f"{pct(s['false_alarm_rate'])} ({s['false_alarms']}/{s['tuned']})",
             f"  confident changes (>= {CONFIDENT}) that helped: {pct(s['precision'])} "
             f"({s['confident_helped']}/{s['confident']}); not applicable changes in all: {s['na_all']}",
             "  reliability (top change's confidence -> runs, share that helped, n/a):"]
    for row in s["reliability"]:
        lo, hi = row["bin"]
        lines.append(f"    [{lo:.2f}, {hi:.2f}{']' if hi >= 1 else ')'}  {row['count']:4d}  {pct(row['share']):>5s}  "
                     f"n/a {row['n/a']}")
    return lines
