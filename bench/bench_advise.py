"""Speed of `advise` in the engine (tracking.rules.advise on an in-memory run input, as the command,
the page and the email call it), on long step series:

- 200,000 points: train_loss per step (200 epochs x 1,000 steps) and val_loss per epoch;
- 600,000 points: train_loss, lr and grad_norm per step (three per-step metrics of 200,000).

Every point the engine reads is checked (tracking.rules.inputs: every point of the loss curves; of
a long lr or grad_norm series, which the engine only summarises, 2,000 evenly spaced points), then
the curves are summarised.
Prints the median and the spread of 15 calls each, the share spent reading the input, and a
one-line summary last (targets: <= 50 ms on 200k points, <= 30 ms on 600k points).

    .venv/bin/python bench/bench_advise.py
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from itertools import chain
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from tracking.rules import advise, read_run_input  # noqa: E402

N, SPE, REPEATS = 200_000, 1000, 15


def run_input(all_step_metrics: bool) -> dict:
    rng = np.random.default_rng(0)
    steps = np.arange(N)
    loss = 0.1 + 2.2 * np.exp(-steps / 40_000) * (1 + 0.1 * rng.standard_normal(N))
    metrics = {"train_loss": [[int(s), float(v)] for s, v in zip(steps, loss)],
               "val_loss": [[e, float(0.15 + 2.2 * math.exp(-e * SPE / 40_000))] for e in range(1, N // SPE + 1)]}
    if all_step_metrics:
        metrics["lr"] = [[int(s), 0.05 * (1 + math.cos(math.pi * s / N))] for s in steps]
        metrics["grad_norm"] = [[int(s), float(v)] for s, v in zip(steps, 1 + rng.random(N))]
    return {"config": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "epochs": N // SPE, "scheduler": "cosine"},
            "metrics": metrics, "steps_per_epoch": SPE, "status": "finished"}


def timed(fn, arg) -> list[float]:
    fn(arg)  # warm up
    out = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn(arg)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main():
    rows = []
    for label, every in (("200,000 points (train_loss per step, val_loss per epoch)", False),
                         ("600,000 points (train_loss, lr, grad_norm per step)", True)):
        run = run_input(every)
        total = timed(advise, run)
        reading = timed(read_run_input, run)
        med, read = statistics.median(total), statistics.median(reading)
        rows.append(med)
        print(f"{label}: advise {med:.1f} ms median (min {min(total):.1f}, max {max(total):.1f}; "
              f"{REPEATS} calls), of which reading and checking every point {read:.1f} ms")
    # the machine's own speed: one C-level pass converting the 200,000 train_loss points to floats (the
    # floor of reading any of them), so figures measured under load can be scaled
    points = run_input(False)["metrics"]["train_loss"]
    floor = statistics.median(timed(lambda p: np.fromiter(chain.from_iterable(p), float, 2 * len(p)), points))
    print(f"reference: converting the 200,000 train_loss points with np.fromiter alone takes {floor:.1f} ms here"
          f" (advise = {rows[0] / floor:.1f}x that on 200k points, {rows[1] / floor:.1f}x on 600k)")
    load = os.getloadavg()[0]
    print(f"load average while measuring: {load:.1f} on {os.cpu_count()} cores")
    print(f"SUMMARY advise: {rows[0]:.0f} ms on 200k points (target <=50 ms), {rows[1]:.0f} ms on 600k points "
          f"(target <=30 ms), load {load:.1f}")


if __name__ == "__main__":
    main()
