"""The rules engine on runs from elsewhere, each scored by a counterfactual (issue 11).

    .venv/bin/python bench/bench_devset.py --yahpo /path/to/yahpo_data/lcbench   # or YAHPO_LCBENCH_DIR
    .venv/bin/python bench/bench_devset.py --source lcbench --cases              # one line per run too

For each run: the engine's top recommendation (`tracking.rules.advise`) is applied to the config and
the run is looked up again (LCBench surrogate) or retrained with the same seed (logger runs); it
"helped" when best val_loss improved by 2% or more. A run "has a problem" when some single change of
the vocabulary (LR x0.1/x0.3/x3/x10, weight decay x10, /10, off, momentum 0.9, batch /4, x4, dropout
up, down) helps; otherwise it is tuned/healthy. Figures per source and part (dev, held-out: never
tuned on): hit rate, false alarms, share of confident changes that helped, a reliability table,
beside a random single change and the best single fixed change on the same runs (bench/devset/scoring.py).

Sources:
- lcbench: YAHPO Gym's LCBench surrogate (bench/devset/lcbench.py says what the advisor sees). Needs
  the `lcbench` folder of https://github.com/slds-lmu/yahpo_data (model.onnx, encoding.json,
  config_space.json; Apache-2.0), kept outside this repository; skipped with a message without it.
- lightning, hf, plain: runs logged to a real MLflow store (SQLite in a temp dir) by PyTorch
  Lightning's MLFlowLogger, transformers.Trainer's MLflow callback and a plain mlflow.log_metric
  script, read with tracking.mlflow_io.read_run as `advise --mlflow-run` does; the counterfactual
  retrains with the same library and seed (bench/devset/loggers.py; cached in var/devset_cache_<library>.json).

`--part dev` measures (and trains) the development parts only: what to run while changing the engine.
`--train-only` fills the logger sources' retraining cache (every run and every candidate change) without
logging or advising a run, so a held-out part can be trained ahead of its measurement without being seen.

Our own trainer's suite stays in bench/bench_rules.py (its figures are printed by that script).
The last line is a one-line summary.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devset import scoring  # noqa: E402


def print_cases(cases):
    for c in cases:
        rec = c.rec or {}
        gain = c.gain(c.rec_best)
        oracle = c.oracle
        print(f"  {c.part:8s} {c.name:34s} {c.regime:18s} {'problem' if c.problem else 'tuned':7s} "
              f"{c.diagnosis:14s} {rec.get('rule', '(none)'):34s} conf {c.confidence:4.2f} "
              f"{c.status:7s} {'' if gain is None else f'{gain:+6.1%}':>7s}  oracle {oracle[0]} {oracle[1]:+.1%}"
              + (f"  [{c.notes['why_na']}]" if c.notes.get("why_na") else ""))


def run_lcbench(args, advise):
    from devset import lcbench

    folder = lcbench.model_dir(args.yahpo)
    if folder is None:
        print("lcbench: skipped: give --yahpo DIR or YAHPO_LCBENCH_DIR (the lcbench folder of "
              "https://github.com/slds-lmu/yahpo_data)")
        return None
    surrogate = lcbench.Surrogate(folder)
    t0 = time.perf_counter()
    tasks = [t for t in lcbench.DEV_TASKS if ("held-out" if t in lcbench.HELD_OUT else "dev") in parts(args)]
    cases = lcbench.cases(surrogate, advise, with_lr=not args.no_lr, tasks=tasks)
    print(f"lcbench: {len(cases)} runs on {len(tasks)} of the 24 tasks ({len(lcbench.HELD_OUT)} held out: "
          f"{', '.join(map(str, lcbench.HELD_OUT))}), {surrogate.queries} surrogate curves, "
          f"{time.perf_counter() - t0:.1f}s; the advisor sees val_loss, val_accuracy"
          + (" and the cosine lr per epoch" if not args.no_lr else " (no lr series)"))
    return cases


def parts(args) -> tuple:
    return ("dev", "held-out") if args.part == "all" else (args.part,)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yahpo", help="the lcbench folder of slds-lmu/yahpo_data (default: $YAHPO_LCBENCH_DIR)")
    parser.add_argument("--source", choices=("all", "lcbench", "loggers"), default="all")
    parser.add_argument("--library", action="append", choices=("lightning", "hf", "plain"),
                        help="loggers: only this library (repeatable)")
    parser.add_argument("--cases", action="store_true", help="print one line per run")
    parser.add_argument("--no-lr", action="store_true", help="LCBench: give the advisor no lr series")
    parser.add_argument("--part", choices=("dev", "held-out", "all"), default="all",
                        help="which part of each source to measure (default all; dev while changing the engine)")
    parser.add_argument("--train-only", action="store_true",
                        help="loggers: fill the retraining cache of the selected runs; nothing is logged or advised")
    args = parser.parse_args(argv)
    if args.train_only:
        from devset import loggers

        t0 = time.perf_counter()
        libraries = tuple(args.library or loggers.LIBRARIES)
        loggers.run(None, libraries=libraries, parts=parts(args), only_train=True)
        print(f"SUMMARY devset: trained the {args.part} part(s) of {', '.join(libraries)} in "
              f"{time.perf_counter() - t0:.0f}s; nothing advised")
        return

    from tracking.rules import advise

    t0 = time.perf_counter()
    sources = {}
    if args.source in ("all", "lcbench"):
        sources["lcbench"] = run_lcbench(args, advise)
    if args.source in ("all", "loggers"):
        from devset import loggers

        libraries = tuple(args.library or loggers.LIBRARIES)
        found = loggers.run(advise, libraries=libraries, parts=parts(args))
        for library in libraries:
            sources[library] = [c for c in found if c.source == library]

    summary = []
    for source, cases in sources.items():
        if not cases:
            summary.append(f"{source} skipped")
            continue
        if args.cases:
            print_cases(cases)
        for part in parts(args):
            part_cases = [c for c in cases if c.part == part]
            if not part_cases:
                continue
            print()
            print("\n".join(scoring.report(f"{source} {part}", part_cases)))
            s = scoring.summarise(part_cases)
            summary.append(f"{source} {part}: hits {scoring.pct(s['hit_rate'])} (random "
                           f"{scoring.pct(s['random']['hit_rate'])}, fixed {scoring.pct(s['best_fixed']['hit_rate'])}), "
                           f"false alarms {scoring.pct(s['false_alarm_rate'])}, confident helped "
                           f"{scoring.pct(s['precision'])}")
    print()
    print("our own trainer's suite: .venv/bin/python bench/bench_rules.py (and --heldout); figures in the README")
    print(f"total {time.perf_counter() - t0:.0f}s")
    print("SUMMARY devset: " + "; ".join(summary) + " (targets on held-out: hits >= 75%, false alarms <= 10%)")


if __name__ == "__main__":
    main()
