"""LCBench runs through the YAHPO Gym surrogate (lcbench/model.onnx of slds-lmu/yahpo_data).

LCBench (Zimmer et al., 2021) trained MLPs with SGD and cosine annealing for 50 epochs on OpenML
tasks. YAHPO Gym's ONNX surrogate answers, for a task and a config, per epoch: time, val accuracy
(%), val cross-entropy, val balanced accuracy, test cross-entropy, test balanced accuracy.
Surrogate epoch 1 is the untrained net; epochs 2..51 are read here as the run's epochs 1..50.

The model, its encoding and config space are NOT in this repository (encoding.json lists tasks kept
for judging the engine). Get the folder `lcbench/` of https://github.com/slds-lmu/yahpo_data
(Apache-2.0) and pass its path (`--yahpo DIR` or YAHPO_LCBENCH_DIR).

Only the 24 development tasks below are ever queried. HELD_OUT (8 of them, a fixed rule: every
third task in ascending order, starting with the third) is never tuned on.

What the advisor sees, as an LCBench run logged by its trainer would show it: `val_loss`
(cross-entropy) and `val_accuracy` (fraction) per epoch 1..50; the config (optimizer sgd, lr,
momentum, weight_decay, batch_size, epochs 50, scheduler cosine, dropout = LCBench's max_dropout,
num_layers, max_units); and, unless `with_lr=False`, `lr` as the cosine schedule's value at the start
of each epoch, one point per epoch with steps_per_epoch 1 (LCBench's step counts are not known here).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np

from .scoring import HELP, Case, improvement

DEV_TASKS = (34539, 126025, 126026, 126029, 146212, 167149, 167161, 167168, 167181, 167185, 167190, 167201,
             168329, 168330, 168331, 168335, 168868, 189354, 189865, 189866, 189873, 189905, 189906, 189909)
HELD_OUT = tuple(sorted(DEV_TASKS)[2::3])
EPOCHS = 50
CONT = ("epoch", "batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout")
WD_OFF = 1e-5  # the surrogate's lowest weight decay stands for "no weight decay"

N_RANDOM = 6  # random configs per task
N_TUNED = 3  # tuned configs per task
TUNE_POOL = 256  # random configs a tuned run is picked from before the greedy polish


def model_dir(arg: Optional[str] = None) -> Optional[Path]:
    """The folder holding model.onnx, encoding.json and config_space.json, or None if not given."""
    where = arg or os.environ.get("YAHPO_LCBENCH_DIR")
    return Path(where) if where else None


class Surrogate:
    """The ONNX surrogate on one thread; answers only for the 24 development tasks."""

    def __init__(self, folder: Path):
        import onnxruntime as ort

        missing = [n for n in ("model.onnx", "encoding.json", "config_space.json") if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: missing {', '.join(missing)} (the lcbench folder of slds-lmu/yahpo_data)")
        encoding = json.loads((folder / "encoding.json").read_text())["OpenML_task_id"]
        self.codes = {t: int(encoding[str(t)]) for t in DEV_TASKS}  # nothing else is read from it
        space = json.loads((folder / "config_space.json").read_text())["hyperparameters"]
        self.bounds = {h["name"]: (h["lower"], h["upper"]) for h in space if "lower" in h}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), sess_options=opts)
        self.queries = 0

    def curves(self, task: int, configs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Per config, val cross-entropy and val accuracy (fraction) over epochs 1..50, shape (n, 50)."""
        if task not in self.codes:
            raise ValueError(f"task {task} is not a development task")
        epochs = np.arange(2, EPOCHS + 2, dtype=np.float32)  # surrogate epoch 1 = the untrained net
        rows = np.array([[e] + [cfg[k] for k in CONT[1:]] for cfg in configs for e in epochs], dtype=np.float32)
        cat = np.full((len(rows), 1), self.codes[task], dtype=np.int32)
        out = self.session.run(None, {"x_cat": cat, "x_cont": rows})[0].reshape(len(configs), EPOCHS, -1)
        self.queries += len(configs)
        return out[:, :, 2].astype(float), out[:, :, 1].astype(float) / 100.0

    def untrained(self, task: int, cfg: dict) -> float:
        """Val cross-entropy of the untrained net (surrogate epoch 1)."""
        row = np.array([[1.0] + [cfg[k] for k in CONT[1:]]], dtype=np.float32)
        cat = np.full((1, 1), self.codes[task], dtype=np.int32)
        return float(self.session.run(None, {"x_cat": cat, "x_cont": row})[0][0, 2])

    def best(self, task: int, configs: list[dict]) -> list[float]:
        ce, _ = self.curves(task, configs)
        return [float(np.min(row)) for row in ce]

    def sample(self, rng: np.random.Generator) -> dict:
        """A random config of the search space (log scale where LCBench's space is log)."""
        b = self.bounds

        def log_uniform(k):
            return float(math.exp(rng.uniform(math.log(b[k][0]), math.log(b[k][1]))))

        return {"batch_size": int(round(log_uniform("batch_size"))), "learning_rate": log_uniform("learning_rate"),
                "momentum": float(rng.uniform(*b["momentum"])), "weight_decay": float(rng.uniform(*b["weight_decay"])),
                "num_layers": int(rng.integers(b["num_layers"][0], b["num_layers"][1] + 1)),
                "max_units": int(round(log_uniform("max_units"))), "max_dropout": float(rng.uniform(*b["max_dropout"]))}


def engine_config(cfg: dict) -> dict:
    return {"optimizer": "sgd", "lr": cfg["learning_rate"], "momentum": cfg["momentum"],
            "weight_decay": cfg["weight_decay"], "batch_size": cfg["batch_size"], "epochs": EPOCHS,
            "scheduler": "cosine", "dropout": cfg["max_dropout"], "num_layers": cfg["num_layers"],
            "max_units": cfg["max_units"]}


def run_input(cfg: dict, ce: np.ndarray, acc: np.ndarray, with_lr: bool = True) -> dict:
    """The advise run input an LCBench run would give (see the module docstring)."""
    metrics = {"val_loss": [[e + 1, float(v)] for e, v in enumerate(ce)],
               "val_accuracy": [[e + 1, float(v)] for e, v in enumerate(acc)]}
    if with_lr:
        lr = cfg["learning_rate"]
        metrics["lr"] = [[e, 0.5 * lr * (1 + math.cos(math.pi * e / EPOCHS))] for e in range(EPOCHS)]
    return {"config": engine_config(cfg), "metrics": metrics, "steps_per_epoch": 1 if with_lr else None,
            "status": "finished"}


KEYS = {"lr": "learning_rate", "momentum": "momentum", "weight_decay": "weight_decay", "batch_size": "batch_size",
        "dropout": "max_dropout"}
SAME = {"optimizer": "sgd", "scheduler": "cosine", "nesterov": False, "epochs": EPOCHS}  # LCBench's own values


def outside(bounds: dict, cfg: dict) -> list[str]:
    """The inputs of cfg outside the surrogate's ranges (config_space.json)."""
    return [k for k in CONT[1:] if not bounds[k][0] * (1 - 1e-9) <= cfg[k] <= bounds[k][1] * (1 + 1e-9)]


def apply_change(bounds: dict, cfg: dict, change: dict) -> tuple[Optional[dict], Optional[int], str]:
    """(new surrogate config, early-stopping patience or None, why not) for an engine change.
    The config is None when the change cannot be expressed on LCBench (why says what)."""
    new, patience = dict(cfg), None
    for key, value in change.items():
        if key in KEYS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None, None, f"{key}={value!r}"
            if key == "weight_decay" and value == 0:
                value = WD_OFF
            new[KEYS[key]] = int(value) if key == "batch_size" else float(value)
        elif key == "early_stopping_patience" and isinstance(value, int) and value >= 1:
            patience = value
        elif key in SAME and value == SAME[key]:
            continue
        else:
            return None, None, f"{key}={value!r}"
    bad = outside(bounds, new)
    if bad:
        return None, None, "outside LCBench's range: " + ", ".join(f"{k}={new[k]:.3g}" for k in bad)
    return new, patience, ""


def early_stopped_best(ce: np.ndarray, patience: int) -> float:
    """Best val_loss of the same run stopped after `patience` epochs without improvement."""
    best, since = math.inf, 0
    for v in ce:
        if v < best:
            best, since = v, 0
        else:
            since += 1
            if since >= patience:
                break
    return float(best)


def candidate_changes(cfg: dict) -> dict[str, dict]:
    """The vocabulary of single changes, in the engine's keys (the label and the baselines use these)."""
    lr, wd, mom, bs, d = (cfg["learning_rate"], cfg["weight_decay"], cfg["momentum"], cfg["batch_size"],
                          cfg["max_dropout"])
    return {
        "lr x0.1": {"lr": lr * 0.1}, "lr x0.3": {"lr": lr * 0.3}, "lr x3": {"lr": lr * 3}, "lr x10": {"lr": lr * 10},
        "weight decay x10": {"weight_decay": wd * 10}, "weight decay /10": {"weight_decay": wd / 10},
        "weight decay off": {"weight_decay": 0.0}, "momentum 0.9": {"momentum": 0.9},
        "batch /4": {"batch_size": max(1, bs // 4)}, "batch x4": {"batch_size": bs * 4},
        "dropout up": {"dropout": 0.3 if d < 0.2 else min(0.9, d + 0.2)},
        "dropout down": {"dropout": 0.0 if d <= 0.2 else d / 2},
    }


def evaluate(surrogate: Surrogate, task: int, cfg: dict, changes: list[dict]) -> list[Optional[float]]:
    """Best val_loss of each change applied to cfg (None: not expressible; the base if unchanged)."""
    mapped = [apply_change(surrogate.bounds, cfg, ch) for ch in changes]
    todo = [m[0] for m in mapped if m[0] is not None]
    ces = surrogate.curves(task, todo)[0] if todo else []
    out, i = [], 0
    for new, patience, _ in mapped:
        if new is None:
            out.append(None)
            continue
        ce = ces[i]
        i += 1
        out.append(early_stopped_best(ce, patience) if patience else float(np.min(ce)))
    return out


def tuned_config(surrogate: Surrogate, task: int, rng: np.random.Generator) -> dict:
    """Best of TUNE_POOL random configs, then the best single candidate change while it helps
    (>= HELP): a run no single change of the vocabulary improves."""
    pool = [surrogate.sample(rng) for _ in range(TUNE_POOL)]
    bests = surrogate.best(task, pool)
    cfg, best = pool[int(np.argmin(bests))], float(np.min(bests))
    for _ in range(30):
        changes = list(candidate_changes(cfg).values())
        results = evaluate(surrogate, task, cfg, changes)
        scored = [(r, ch) for r, ch in zip(results, changes) if r is not None]
        r, ch = min(scored, key=lambda x: x[0])
        if improvement(best, r) < HELP:
            break
        cfg, best = apply_change(surrogate.bounds, cfg, ch)[0], r
    return cfg


REGIMES = {  # constructed on a random config of the task
    "lr very high": {"learning_rate": 0.1, "momentum": 0.95},
    "lr very low": {"learning_rate": 1.5e-4, "momentum": 0.3},
    "weight decay high": {"weight_decay": 0.1},
    "weight decay zero": {"weight_decay": WD_OFF},
    "momentum low": {"momentum": 0.1},
    "dropout high": {"max_dropout": 0.9},
}


def task_configs(surrogate: Surrogate, task: int, seed: int = 0) -> list[tuple[str, str, dict]]:
    """(name, regime, config) of every run of a task: random, constructed regimes, tuned."""
    rng = np.random.default_rng([seed, task])
    runs = [(f"{task}/random{i}", "random", surrogate.sample(rng)) for i in range(N_RANDOM)]
    for regime, fixed in REGIMES.items():
        runs.append((f"{task}/{regime.replace(' ', '_')}", regime, {**surrogate.sample(rng), **fixed}))
    runs += [(f"{task}/tuned{i}", "tuned", tuned_config(surrogate, task, rng)) for i in range(N_TUNED)]
    return runs


def cases(surrogate: Surrogate, advise, with_lr: bool = True, seed: int = 0, tasks=DEV_TASKS) -> list[Case]:
    """Every run of the given tasks scored: the engine's top change and each candidate looked up."""
    out = []
    for task in tasks:
        part = "held-out" if task in HELD_OUT else "dev"
        for name, regime, cfg in task_configs(surrogate, task, seed):
            ce, acc = surrogate.curves(task, [cfg])
            base = float(np.min(ce[0]))
            answer = advise(run_input(cfg, ce[0], acc[0], with_lr))
            cand = candidate_changes(cfg)
            results = evaluate(surrogate, task, cfg, list(cand.values()))
            rec = answer["recommendations"][0] if answer["recommendations"] else None
            rec_best, why = None, ""
            if rec:
                new, _, why = apply_change(surrogate.bounds, cfg, rec["change"])
                rec_best = evaluate(surrogate, task, cfg, [rec["change"]])[0] if new is not None else None
            out.append(Case(source="lcbench", part=part, name=name, regime=regime, base=base,
                            candidates=dict(zip(cand, results)), rec=rec, rec_best=rec_best,
                            diagnosis=answer["diagnoses"][0]["id"] if answer["diagnoses"] else "",
                            notes={"why_na": why, "best_epoch": int(np.argmin(ce[0])) + 1,
                                   "untrained": surrogate.untrained(task, cfg)}))
    return out
