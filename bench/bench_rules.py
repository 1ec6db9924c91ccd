"""Benchmark of the rules engine on the labelled suite (tests/data/advise_suite).

For each unhealthy case: apply the engine's first recommendation, retrain with the same
seed (workers.engine.fit, CPU, one thread) and measure the change of best val_loss. Side by
side with the oracle (the best of a fixed set of single changes), a random single change
from that set (its expectation) and the best fixed single change over all cases. Healthy
cases measure false alarms (any recommendation with confidence >= 0.5). Then the advise
time on a run with 200,000 step points. The last line is a one-line summary.

Trainings are cached by config in var/advise_suite_cache.json (shared with
bench/make_advise_suite.py); delete it to retrain everything.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from make_advise_suite import SUITE_DIR, Trainer  # noqa: E402

HIT = 0.02


def fixed_changes(cfg: dict) -> dict[str, dict]:
    """The fixed set of single changes (the oracle picks the best of them per case)."""
    wd, opt = cfg["weight_decay"], cfg["optimizer"]
    changes = {
        "lr x0.1": {"lr": cfg["lr"] * 0.1},
        "lr x0.3": {"lr": cfg["lr"] * 0.3},
        "lr x3": {"lr": min(100.0, cfg["lr"] * 3)},
        "weight decay up": {"weight_decay": max(wd * 10, 0.05 if opt == "adamw" else 1e-3)},
        "weight decay down": {"weight_decay": wd / 10},
        "dropout": {"dropout": 0.3 if cfg["dropout"] < 0.2 else min(0.9, cfg["dropout"] + 0.2)},
        "batch /4": {"batch_size": max(1, cfg["batch_size"] // 4)},
        "batch x4": {"batch_size": cfg["batch_size"] * 4},
        "epochs x3": {"epochs": cfg["epochs"] * 3},
        "optimizer switch": ({"optimizer": "adam", "lr": 0.001, "momentum": 0.0, "nesterov": False} if opt == "sgd"
                             else {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}),
        "momentum 0.9": {"momentum": 0.9} if opt in ("sgd", "rmsprop") else {},
        "cosine": {"scheduler": "cosine"},
        "one-cycle": {"scheduler": "onecycle"},
        "warm-up": {"warmup_epochs": float(max(1, round(0.1 * cfg["epochs"])))
                    if cfg["epochs"] > 1 else 0.0},
    }
    return changes


def improvement(parent: float, child: float) -> float:
    """Relative decrease of best val_loss, clipped at -100% (a fix that diverges)."""
    return max(-1.0, (parent - child) / abs(parent)) if parent else 0.0


def advise_time(advise, all_step_metrics=False) -> float:
    """Median ms of advise on 200 epochs x 1,000 steps: train_loss per step (and, with
    all_step_metrics, lr and grad_norm per step too: 600,000 points) plus val_loss per epoch."""
    import numpy as np

    rng = np.random.default_rng(0)
    n, spe = 200_000, 1000
    steps = np.arange(n)
    loss = 0.1 + 2.2 * np.exp(-steps / 40_000) * (1 + 0.1 * rng.standard_normal(n))
    metrics = {"train_loss": [[int(s), float(v)] for s, v in zip(steps, loss)],
               "val_loss": [[e, float(0.15 + 2.2 * math.exp(-e * spe / 40_000))] for e in range(1, 201)]}
    if all_step_metrics:
        metrics["lr"] = [[int(s), 0.05 * (1 + math.cos(math.pi * s / n))] for s in steps]
        metrics["grad_norm"] = [[int(s), float(v)] for s, v in zip(steps, 1 + rng.random(n))]
    run = {"config": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "epochs": 200, "scheduler": "cosine"},
           "metrics": metrics, "steps_per_epoch": spe, "status": "finished"}
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        advise(run)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main():
    from tracking.config import apply_change, validate_config
    from tracking.rules import advise

    heldout = "--heldout" in sys.argv[1:]
    suite = SUITE_DIR / "heldout" if heldout else SUITE_DIR
    print(f"suite: {suite.relative_to(SUITE_DIR.parent.parent.parent)}"
          + (" (held out: never used while writing the engine)" if heldout else ""))
    trainer = Trainer()
    cases = [json.loads(p.read_text()) for p in sorted(suite.glob("*.json"))]
    rows, healthy_alarms, healthy_n = [], 0, 0
    t0 = time.perf_counter()
    for case in cases:
        run = {k: case[k] for k in ("config", "metrics", "steps_per_epoch", "status")}
        answer = advise(run)
        cfg = validate_config(case["config"])
        if case["label"] == "healthy":
            healthy_n += 1
            alarm = any(r["confidence"] >= 0.5 for r in answer["recommendations"])
            healthy_alarms += alarm
            print(f"  healthy       {case['name']:28s} {'FALSE ALARM' if alarm else 'quiet'}", flush=True)
            continue
        parent = trainer.train(cfg)["best_val_loss"]
        recs = answer["recommendations"]
        if recs:
            rec = recs[0]
            engine = improvement(parent, trainer.train(apply_change(cfg, rec["change"]))["best_val_loss"])
        else:
            rec, engine = {"rule": "(none)", "change": {}}, 0.0
        fixed = {}
        for name, change in fixed_changes(cfg).items():
            try:
                child_cfg = apply_change(cfg, change)
            except ValueError:
                fixed[name] = 0.0
                continue
            fixed[name] = 0.0 if child_cfg == cfg else improvement(parent, trainer.train(child_cfg)["best_val_loss"])
        trainer.save()
        oracle_name = max(fixed, key=fixed.get)
        rows.append({"label": case["label"], "name": case["name"], "engine": engine, "fixed": fixed,
                     "oracle": fixed[oracle_name]})
        print(f"  {case['label']:13s} {case['name']:28s} engine {rec['rule']:32s} {engine:+7.1%}   "
              f"oracle {oracle_name:16s} {fixed[oracle_name]:+7.1%}", flush=True)
    trainer.save()

    n = len(rows)
    hit = sum(r["engine"] >= HIT for r in rows) / n
    engine_mean = statistics.mean(r["engine"] for r in rows)
    oracle_mean = statistics.mean(r["oracle"] for r in rows)
    names = list(rows[0]["fixed"])
    rand_hit = statistics.mean(statistics.mean(r["fixed"][k] >= HIT for k in names) for r in rows)
    rand_mean = statistics.mean(statistics.mean(r["fixed"][k] for k in names) for r in rows)
    best_fixed = max(names, key=lambda k: statistics.mean(r["fixed"][k] for r in rows))
    bf_hit = sum(r["fixed"][best_fixed] >= HIT for r in rows) / n
    bf_mean = statistics.mean(r["fixed"][best_fixed] for r in rows)
    false_alarms = healthy_alarms / max(1, healthy_n)
    ms = advise_time(advise)
    ms_all = advise_time(advise, all_step_metrics=True)

    print()
    print(f"{'':34s}{'hit rate':>10s}{'mean improvement':>18s}{'share of oracle':>17s}")
    for label, h, m in (("rules engine (first recommendation)", hit, engine_mean),
                        ("random single change (expected)", rand_hit, rand_mean),
                        (f"best fixed change ({best_fixed})", bf_hit, bf_mean),
                        ("oracle (best change per case)", sum(r["oracle"] >= HIT for r in rows) / n, oracle_mean)):
        print(f"{label:34s}{h:>10.0%}{m:>18.1%}{m / oracle_mean:>17.0%}")
    print("per label hit rate: " + ", ".join(
        f"{lab} {sum(r['engine'] >= HIT for r in rows if r['label'] == lab)}/{sum(r['label'] == lab for r in rows)}"
        for lab in sorted({r['label'] for r in rows})))
    print(f"false alarms on healthy runs: {healthy_alarms}/{healthy_n} ({false_alarms:.0%})")
    print(f"advise on 200,000 step points: {ms:.1f} ms (median of 15); with lr and grad_norm per step too "
          f"(600,000 points): {ms_all:.1f} ms")
    print(f"trainings this time: {trainer.trained} ({trainer.seconds:.0f}s); total bench {time.perf_counter() - t0:.0f}s")
    print(f"SUMMARY rules{' (held out)' if heldout else ''}: hit rate {hit:.0%} on {n} unhealthy runs (target >=85%), {engine_mean / oracle_mean:.0%} of oracle "
          f"improvement (target >=70%; random {rand_mean / oracle_mean:.0%}, best fixed {bf_mean / oracle_mean:.0%}), "
          f"false alarms {false_alarms:.0%} (target <=10%), advise {ms:.0f} ms on 200k points (target <=50 ms)")


if __name__ == "__main__":
    main()
