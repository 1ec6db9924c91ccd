"""Regenerate the labelled advise suite (tests/data/advise_suite/*.json) with the project's trainer.

    .venv/bin/python bench/make_advise_suite.py            # all candidates
    .venv/bin/python bench/make_advise_suite.py --only overfitting

Each candidate is a config meant to show one problem. It is trained (workers.engine.fit,
CPU, one thread), stored as an advise input plus its label and metadata, and KEPT ONLY IF
the label is confirmed by retraining with the same seed:
- an unhealthy label counts when one of its standard fixes (below, independent of the rules
  engine) improves the best val_loss by 2% or more;
- a healthy label counts when none of the usual changes (LR x0.3, LR x3, epochs x2, more
  weight decay) improves it by 10% or more (well tuned: nothing obvious left to fix).
Trainings are cached in var/advise_suite_cache.json (keyed by the full config), which
bench/bench_rules.py reuses.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

SUITE_DIR = ROOT / "tests" / "data" / "advise_suite"
CACHE = ROOT / "var" / "advise_suite_cache.json"
IMPROVED = 0.02  # a fix counts when best val_loss improves by 2% or more
HEALTHY_SLACK = 0.10  # a healthy run: no usual change improves it by 10% or more

# (label, name, config). Several data sets, models and optimizers per label.
CANDIDATES = [
    # diverging: the LR is far past the stable limit
    ("diverging", "digits_mlp_sgd_lr3", dict(dataset="digits", optimizer="sgd", lr=3.0, momentum=0.9, epochs=10)),
    ("diverging", "wine_mlp_adam_lr1", dict(dataset="wine", optimizer="adam", lr=1.0, epochs=30, seed=1)),
    ("diverging", "cancer_mlp_sgd_lr8", dict(dataset="breast_cancer", optimizer="sgd", lr=8.0, momentum=0.9, epochs=20)),
    ("diverging", "spirals_mlp_rmsprop_lr05", dict(dataset="spirals", optimizer="rmsprop", lr=0.5, epochs=20, seed=2)),
    ("diverging", "moons_mlp_sgd_lr20", dict(dataset="moons", optimizer="sgd", lr=20.0, epochs=15, depth=3)),
    ("diverging", "digits_cnn_adam_lr05", dict(dataset="digits", model="cnn", optimizer="adam", lr=0.5, epochs=6, width=16)),
    ("diverging", "classif_mlp_adamw_lr2", dict(dataset="classification", optimizer="adamw", lr=2.0, epochs=15, seed=3)),
    ("diverging", "digits_mlp_sgd_nan", dict(dataset="digits", optimizer="sgd", lr=40.0, momentum=0.9, epochs=10, seed=4)),
    # unstable: the LR is high enough to make the losses oscillate
    ("unstable", "digits_mlp_adam_lr003", dict(dataset="digits", optimizer="adam", lr=0.03, epochs=20)),
    ("unstable", "spirals_mlp_adam_lr005", dict(dataset="spirals", optimizer="adam", lr=0.05, epochs=40, width=128)),
    ("unstable", "moons_mlp_sgd_b4", dict(dataset="moons", optimizer="sgd", lr=0.8, momentum=0.9, batch_size=8, epochs=20)),
    ("unstable", "cancer_mlp_rmsprop", dict(dataset="breast_cancer", optimizer="rmsprop", lr=0.02, epochs=40, seed=1)),
    ("unstable", "classif_mlp_sgd_lr1", dict(dataset="classification", optimizer="sgd", lr=1.0, momentum=0.9, epochs=25)),
    ("unstable", "digits_cnn_sgd_lr05", dict(dataset="digits", model="cnn", optimizer="sgd", lr=0.5, momentum=0.9, epochs=10, width=16)),
    ("unstable", "wine_mlp_adam_lr01", dict(dataset="wine", optimizer="adam", lr=0.1, epochs=40, batch_size=8, seed=2)),
    ("unstable", "classif_mlp_adam_lr003", dict(dataset="classification", optimizer="adam", lr=0.03, epochs=30, seed=5)),
    ("unstable", "digits_mlp_sgd_lr03", dict(dataset="digits", optimizer="sgd", lr=0.3, momentum=0.9, epochs=20, seed=1)),
    ("unstable", "digits_mlp_adam_lr002", dict(dataset="digits", optimizer="adam", lr=0.02, epochs=25, seed=2)),
    ("unstable", "moons_mlp_adam_lr005", dict(dataset="moons", optimizer="adam", lr=0.05, batch_size=16, epochs=30)),
    ("unstable", "spirals_mlp_sgd_lr03", dict(dataset="spirals", optimizer="sgd", lr=0.3, momentum=0.9, width=128, epochs=40)),
    ("unstable", "classif_mlp_rmsprop_lr001", dict(dataset="classification", optimizer="rmsprop", lr=0.01, epochs=25)),
    ("unstable", "cancer_mlp_sgd_b16", dict(dataset="breast_cancer", optimizer="sgd", lr=0.5, momentum=0.9, batch_size=16, epochs=30)),
    ("unstable", "digits_cnn_adam_lr001", dict(dataset="digits", model="cnn", optimizer="adam", lr=0.01, epochs=10, width=16)),
    ("unstable", "moons_mlp_adam_lr003_b8", dict(dataset="moons", optimizer="adam", lr=0.03, batch_size=8, epochs=25, seed=1)),
    ("unstable", "spirals_mlp_adam_lr002", dict(dataset="spirals", optimizer="adam", lr=0.02, epochs=40, seed=3)),
    ("unstable", "cancer_mlp_adam_lr003", dict(dataset="breast_cancer", optimizer="adam", lr=0.03, epochs=30)),
    ("unstable", "classif_mlp_adam_lr005", dict(dataset="classification", optimizer="adam", lr=0.05, epochs=25, seed=2)),
    ("unstable", "wine_mlp_sgd_b4", dict(dataset="wine", optimizer="sgd", lr=0.1, momentum=0.9, batch_size=4, epochs=30)),
    ("unstable", "digits_mlp_rmsprop_lr001", dict(dataset="digits", optimizer="rmsprop", lr=0.01, epochs=20)),
    # overfitting: a big model, little data, long training, no regularisation
    ("overfitting", "digits_mlp_subset", dict(dataset="digits", optimizer="adam", lr=0.001, width=256, train_subset=300, epochs=80)),
    ("overfitting", "cancer_mlp_wide", dict(dataset="breast_cancer", optimizer="adam", lr=0.003, width=256, depth=3, epochs=120)),
    ("overfitting", "classif_mlp_subset", dict(dataset="classification", optimizer="adam", lr=0.002, width=256, depth=3, train_subset=300, epochs=80)),
    ("overfitting", "moons_mlp_subset", dict(dataset="moons", optimizer="adam", lr=0.003, width=256, depth=3, train_subset=80, epochs=200)),
    ("overfitting", "spirals_mlp_subset", dict(dataset="spirals", optimizer="adam", lr=0.003, width=256, depth=3, train_subset=150, epochs=250)),
    ("overfitting", "digits_cnn_subset", dict(dataset="digits", model="cnn", optimizer="adam", lr=0.002, width=32, train_subset=200, epochs=60)),
    ("overfitting", "classif_mlp_sgd", dict(dataset="classification", optimizer="sgd", lr=0.05, momentum=0.9, width=512, depth=2, train_subset=400, epochs=100, seed=1)),
    ("overfitting", "wine_mlp_subset", dict(dataset="wine", optimizer="adam", lr=0.003, width=256, depth=3, train_subset=40, epochs=150, seed=3)),
    ("overfitting", "cancer_mlp_sgd_wide", dict(dataset="breast_cancer", optimizer="sgd", lr=0.05, momentum=0.9, width=512, depth=3, epochs=150, seed=2)),
    ("overfitting", "digits_mlp_sgd_subset", dict(dataset="digits", optimizer="sgd", lr=0.05, momentum=0.9, width=512, train_subset=200, epochs=100)),
    # underfitting: regularisation far too strong
    ("underfitting", "spirals_mlp_wd", dict(dataset="spirals", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.05, epochs=30)),
    ("underfitting", "digits_mlp_wd", dict(dataset="digits", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.1, epochs=20)),
    ("underfitting", "moons_mlp_dropout", dict(dataset="moons", optimizer="adam", lr=0.003, dropout=0.8, epochs=40)),
    ("underfitting", "classif_mlp_adam_wd", dict(dataset="classification", optimizer="adam", lr=0.003, weight_decay=0.1, epochs=30)),
    ("underfitting", "cancer_mlp_adamw_wd", dict(dataset="breast_cancer", optimizer="adamw", lr=0.01, weight_decay=5.0, epochs=40)),
    ("underfitting", "digits_cnn_wd", dict(dataset="digits", model="cnn", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.08, epochs=10, width=16)),
    ("underfitting", "wine_mlp_dropout", dict(dataset="wine", optimizer="sgd", lr=0.05, momentum=0.9, dropout=0.85, epochs=60, seed=1)),
    ("underfitting", "spirals_mlp_rmsprop_wd", dict(dataset="spirals", optimizer="rmsprop", lr=0.003, weight_decay=0.05, epochs=40, seed=2)),
    ("underfitting", "digits_mlp_dropout", dict(dataset="digits", optimizer="adam", lr=0.001, dropout=0.85, epochs=20)),
    ("underfitting", "classif_mlp_sgd_wd", dict(dataset="classification", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.05, epochs=20)),
    ("underfitting", "moons_mlp_adam_wd", dict(dataset="moons", optimizer="adam", lr=0.01, weight_decay=0.3, epochs=30)),
    ("underfitting", "cancer_mlp_sgd_wd", dict(dataset="breast_cancer", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.3, epochs=30)),
    # not converged: too small a step for the epochs given
    ("not_converged", "digits_mlp_sgd_slow", dict(dataset="digits", optimizer="sgd", lr=0.002, epochs=15)),
    ("not_converged", "cancer_mlp_sgd_slow", dict(dataset="breast_cancer", optimizer="sgd", lr=0.002, epochs=20)),
    ("not_converged", "spirals_mlp_adam_slow", dict(dataset="spirals", optimizer="adam", lr=0.0003, epochs=20, seed=1)),
    ("not_converged", "wine_mlp_sgd_slow", dict(dataset="wine", optimizer="sgd", lr=0.003, epochs=40)),
    ("not_converged", "moons_mlp_adagrad_slow", dict(dataset="moons", optimizer="adagrad", lr=0.003, epochs=20)),
    ("not_converged", "digits_cnn_sgd_slow", dict(dataset="digits", model="cnn", optimizer="sgd", lr=0.003, epochs=5, width=16)),
    ("not_converged", "classif_mlp_sgd_slow", dict(dataset="classification", optimizer="sgd", lr=0.003, epochs=15, seed=2)),
    ("not_converged", "spirals_mlp_sgd_mom_short", dict(dataset="spirals", optimizer="sgd", lr=0.01, momentum=0.9, epochs=15, width=128)),
    ("not_converged", "moons_mlp_sgd_slow", dict(dataset="moons", optimizer="sgd", lr=0.005, epochs=20, seed=3)),
    ("not_converged", "spirals_mlp_adam_short", dict(dataset="spirals", optimizer="adam", lr=0.003, width=128, epochs=25)),
    ("not_converged", "digits_mlp_sgd_slow_short", dict(dataset="digits", optimizer="sgd", lr=0.005, epochs=10, seed=1)),
    ("not_converged", "classif_mlp_adam_slow", dict(dataset="classification", optimizer="adam", lr=0.0001, epochs=15)),
    ("not_converged", "moons_mlp_sgd_short", dict(dataset="moons", optimizer="sgd", lr=0.01, epochs=10, seed=2)),
    ("not_converged", "cancer_mlp_adam_slow", dict(dataset="breast_cancer", optimizer="adam", lr=0.0001, epochs=15)),
    ("not_converged", "wine_mlp_rmsprop_slow", dict(dataset="wine", optimizer="rmsprop", lr=0.0001, epochs=20)),
    # healthy: sensible settings, trained to convergence
    ("healthy", "digits_mlp_sgd_cosine", dict(dataset="digits", optimizer="sgd", lr=0.05, momentum=0.9, scheduler="cosine", weight_decay=0.0005, epochs=30)),
    ("healthy", "moons_mlp_adam", dict(dataset="moons", optimizer="adam", lr=0.003, epochs=60, weight_decay=0.0001)),
    ("healthy", "spirals_mlp_adam_cosine", dict(dataset="spirals", optimizer="adam", lr=0.01, width=128, depth=3, scheduler="cosine", epochs=100)),
    ("healthy", "cancer_mlp_sgd_es", dict(dataset="breast_cancer", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.001, epochs=60)),
    ("healthy", "classif_mlp_adamw_cosine", dict(dataset="classification", optimizer="adamw", lr=0.003, weight_decay=0.05, dropout=0.2, scheduler="cosine", epochs=40)),
    ("healthy", "wine_mlp_adam", dict(dataset="wine", optimizer="adam", lr=0.003, weight_decay=0.001, epochs=60, seed=1)),
    ("healthy", "digits_cnn_sgd_onecycle", dict(dataset="digits", model="cnn", optimizer="sgd", lr=0.1, momentum=0.9, scheduler="onecycle", epochs=10, width=16)),
    ("healthy", "spirals_mlp_adam", dict(dataset="spirals", optimizer="adam", lr=0.01, width=128, epochs=60, weight_decay=0.0001)),
    ("healthy", "digits_mlp_adam_wd", dict(dataset="digits", optimizer="adam", lr=0.001, weight_decay=0.001, epochs=30)),
    ("healthy", "classif_mlp_sgd_cosine", dict(dataset="classification", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.001, dropout=0.2, scheduler="cosine", epochs=40)),
    ("healthy", "digits_cnn_adam", dict(dataset="digits", model="cnn", optimizer="adam", lr=0.002, weight_decay=0.0001, epochs=15, width=16)),
    ("healthy", "cancer_mlp_adam", dict(dataset="breast_cancer", optimizer="adam", lr=0.001, weight_decay=0.001, epochs=40, seed=2)),
    ("healthy", "wine_mlp_sgd_cosine", dict(dataset="wine", optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=0.001, scheduler="cosine", epochs=60)),
    ("healthy", "moons_mlp_adam_wd", dict(dataset="moons", optimizer="adam", lr=0.003, weight_decay=0.001, epochs=60, seed=3)),
    ("healthy", "cancer_mlp_adamw", dict(dataset="breast_cancer", optimizer="adamw", lr=0.001, weight_decay=0.05, epochs=30)),
    ("healthy", "classif_mlp_adam", dict(dataset="classification", optimizer="adam", lr=0.001, weight_decay=0.001, dropout=0.2, epochs=30, seed=1)),
    # healthy with early stopping (patience 5), as a careful user would run them
    ("healthy", "moons_mlp_adam_es", dict(dataset="moons", optimizer="adam", lr=0.003, epochs=60, early_stopping_patience=5)),
    ("healthy", "cancer_mlp_adamw_es", dict(dataset="breast_cancer", optimizer="adamw", lr=0.001, weight_decay=0.05, epochs=40, early_stopping_patience=5)),
    ("healthy", "digits_cnn_adam_es", dict(dataset="digits", model="cnn", optimizer="adam", lr=0.002, weight_decay=0.0001, epochs=20, width=16, early_stopping_patience=3)),
    ("healthy", "moons_mlp_sgd_cosine_es", dict(dataset="moons", optimizer="sgd", lr=0.1, momentum=0.9, scheduler="cosine", epochs=60, seed=2, early_stopping_patience=5)),
    ("healthy", "digits_mlp_adam_es", dict(dataset="digits", optimizer="adam", lr=0.001, weight_decay=0.001, dropout=0.2, epochs=40, early_stopping_patience=5)),
    ("healthy", "spirals_mlp_sgd_es", dict(dataset="spirals", optimizer="sgd", lr=0.1, momentum=0.9, width=128, weight_decay=0.0005, epochs=80, early_stopping_patience=8)),
    ("healthy", "wine_mlp_adam_es", dict(dataset="wine", optimizer="adam", lr=0.001, weight_decay=0.001, epochs=60, early_stopping_patience=5)),
    ("healthy", "cancer_mlp_sgd_cosine", dict(dataset="breast_cancer", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.001, scheduler="cosine", epochs=30)),
    ("healthy", "digits_mlp_sgd_cosine_short", dict(dataset="digits", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.001, dropout=0.1, scheduler="cosine", epochs=15)),
    ("healthy", "classif_mlp_rmsprop", dict(dataset="classification", optimizer="rmsprop", lr=0.001, weight_decay=0.001, dropout=0.2, epochs=30)),
    ("healthy", "moons_mlp_sgd_cosine", dict(dataset="moons", optimizer="sgd", lr=0.1, momentum=0.9, scheduler="cosine", epochs=60, seed=2)),
]

# Held out: never looked at while the engine was written; `--heldout` writes them to
# tests/data/advise_suite/heldout/ and `bench_rules.py --heldout` measures on them.
HELDOUT = [
    ("diverging", "h_wine_mlp_sgd_lr10", dict(dataset="wine", optimizer="sgd", lr=10.0, momentum=0.5, epochs=15, seed=7)),
    ("diverging", "h_classif_cnn_free_rmsprop", dict(dataset="classification", optimizer="rmsprop", lr=1.0, epochs=10, seed=8)),
    ("diverging", "h_digits_mlp_adagrad_lr5", dict(dataset="digits", optimizer="adagrad", lr=5.0, epochs=10, seed=9)),
    ("unstable", "h_digits_mlp_adamw_lr003", dict(dataset="digits", optimizer="adamw", lr=0.03, epochs=20, seed=7)),
    ("unstable", "h_spirals_mlp_rmsprop_lr002", dict(dataset="spirals", optimizer="rmsprop", lr=0.02, width=128, epochs=30, seed=8)),
    ("unstable", "h_moons_mlp_sgd_lr1", dict(dataset="moons", optimizer="sgd", lr=1.0, momentum=0.5, batch_size=8, epochs=20, seed=9)),
    ("overfitting", "h_cancer_mlp_adam_deep", dict(dataset="breast_cancer", optimizer="adam", lr=0.002, width=512, depth=4, epochs=100, seed=7)),
    ("overfitting", "h_digits_mlp_adamw_subset", dict(dataset="digits", optimizer="adamw", lr=0.002, width=512, train_subset=250, epochs=80, seed=8)),
    ("overfitting", "h_moons_mlp_sgd_subset", dict(dataset="moons", optimizer="sgd", lr=0.1, momentum=0.9, width=512, depth=3, train_subset=60, epochs=200, seed=9)),
    ("underfitting", "h_wine_mlp_adam_wd", dict(dataset="wine", optimizer="adam", lr=0.003, weight_decay=0.5, epochs=40, seed=7)),
    ("underfitting", "h_classif_mlp_dropout", dict(dataset="classification", optimizer="adam", lr=0.002, dropout=0.8, depth=3, epochs=25, seed=8)),
    ("underfitting", "h_digits_mlp_rmsprop_wd", dict(dataset="digits", optimizer="rmsprop", lr=0.001, weight_decay=0.2, epochs=20, seed=9)),
    ("not_converged", "h_spirals_mlp_sgd_slow", dict(dataset="spirals", optimizer="sgd", lr=0.02, momentum=0.9, width=128, epochs=20, seed=7)),
    ("not_converged", "h_classif_mlp_adagrad_slow", dict(dataset="classification", optimizer="adagrad", lr=0.002, epochs=15, seed=8)),
    ("not_converged", "h_digits_cnn_adam_slow", dict(dataset="digits", model="cnn", optimizer="adam", lr=0.0001, epochs=6, width=16, seed=9)),
    # second held-out batch (made after the first was measured)
    ("unstable", "h_cancer_mlp_rmsprop_lr001", dict(dataset="breast_cancer", optimizer="rmsprop", lr=0.01, batch_size=16, epochs=30, seed=10)),
    ("unstable", "h_classif_mlp_adamw_lr004", dict(dataset="classification", optimizer="adamw", lr=0.04, epochs=25, seed=11)),
    ("unstable", "h_digits_cnn_adam_lr002", dict(dataset="digits", model="cnn", optimizer="adam", lr=0.02, width=16, epochs=10, seed=12)),
    ("unstable", "h_moons_mlp_adam_lr002_b4", dict(dataset="moons", optimizer="adam", lr=0.02, batch_size=4, epochs=20, seed=13)),
    ("overfitting", "h_classif_mlp_adam_wide", dict(dataset="classification", optimizer="adam", lr=0.003, width=512, depth=3, train_subset=250, epochs=100, seed=10)),
    ("overfitting", "h_spirals_mlp_adamw_subset", dict(dataset="spirals", optimizer="adamw", lr=0.005, width=256, depth=3, train_subset=120, epochs=200, seed=11)),
    ("overfitting", "h_wine_mlp_sgd_wide", dict(dataset="wine", optimizer="sgd", lr=0.05, momentum=0.9, width=512, depth=3, train_subset=50, epochs=150, seed=12)),
    ("overfitting", "h_cancer_mlp_rmsprop_wide", dict(dataset="breast_cancer", optimizer="rmsprop", lr=0.001, width=512, depth=3, epochs=100, seed=13)),
    ("healthy", "h_spirals_mlp_adam_es", dict(dataset="spirals", optimizer="adam", lr=0.005, width=128, depth=3, weight_decay=0.0005, epochs=120, early_stopping_patience=10, seed=10)),
    ("healthy", "h_wine_mlp_sgd_es", dict(dataset="wine", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.001, epochs=60, early_stopping_patience=5, seed=11)),
    ("healthy", "h_digits_cnn_sgd_cosine", dict(dataset="digits", model="cnn", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.0005, scheduler="cosine", width=16, epochs=12, seed=12)),
    ("healthy", "h_digits_mlp_sgd_es", dict(dataset="digits", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.001, dropout=0.2, epochs=40, early_stopping_patience=5, seed=7)),
    ("healthy", "h_classif_mlp_adamw_es", dict(dataset="classification", optimizer="adamw", lr=0.002, weight_decay=0.05, dropout=0.2, epochs=40, early_stopping_patience=5, seed=8)),
    ("healthy", "h_moons_mlp_adam_cosine", dict(dataset="moons", optimizer="adam", lr=0.005, weight_decay=0.001, scheduler="cosine", epochs=40, seed=9)),
    ("healthy", "h_cancer_mlp_sgd_es", dict(dataset="breast_cancer", optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=0.001, epochs=40, early_stopping_patience=5, seed=7)),
]


# The standard fixes that confirm a label (independent of the rules engine).
def label_fixes(label: str, cfg: dict) -> list[tuple[str, dict]]:
    lr, wd = cfg["lr"], cfg["weight_decay"]
    if label == "diverging":
        return [("lr x0.1", {"lr": lr * 0.1}), ("lr x0.01", {"lr": lr * 0.01})]
    if label == "unstable":
        return [("lr x0.3", {"lr": lr * 0.3}), ("lr x0.1", {"lr": lr * 0.1})]
    if label == "overfitting":
        return [("weight decay up", {"weight_decay": max(wd * 10, 0.05 if cfg["optimizer"] == "adamw" else 1e-3)}),
                ("dropout 0.3", {"dropout": 0.3})]
    if label == "underfitting":
        fixes = [("weight decay /10", {"weight_decay": wd / 10})] if wd > 0 else []
        if cfg["dropout"] >= 0.2:
            fixes.append(("dropout /2", {"dropout": cfg["dropout"] / 2}))
        return fixes
    if label == "not_converged":
        return [("epochs x3", {"epochs": cfg["epochs"] * 3})]
    return [("lr x0.3", {"lr": lr * 0.3}), ("lr x3", {"lr": lr * 3}), ("epochs x2", {"epochs": cfg["epochs"] * 2}),
            ("weight decay up", {"weight_decay": max(wd * 10, 1e-3)})]


def _key(cfg: dict) -> str:
    return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


class Trainer:
    """Trains configs with the project's engine, caching each result by its full config."""

    def __init__(self, cache_path: Path = CACHE):
        self.cache_path = cache_path
        self.cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
        self.trained = 0
        self.seconds = 0.0

    def train(self, cfg: dict, keep_history=False) -> dict:
        from tracking.config import validate_config

        cfg = validate_config(cfg)
        key = _key(cfg)
        hit = self.cache.get(key)
        if hit is not None and (not keep_history or "run_input" in hit):
            return hit
        import torch
        from workers.engine import fit

        torch.set_num_threads(1)
        t0 = time.perf_counter()
        res = fit(cfg, device="cpu")
        self.seconds += time.perf_counter() - t0
        self.trained += 1
        out = {"best_val_loss": score(res), "status": res.status, "seconds": res.seconds}
        if keep_history:
            out["run_input"] = run_input(cfg, res)
        self.cache[key] = out
        return out

    def save(self):
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        self.cache_path.write_text(json.dumps(self.cache))


def score(res) -> float:
    """Best val_loss; a run that never produced a finite one scores the loss of an untrained model."""
    if res.best_val_loss is not None and math.isfinite(res.best_val_loss):
        return float(res.best_val_loss)
    finite = [v for _, v in res.history.get("train_loss", []) if math.isfinite(v)]
    return float(finite[0]) if finite else 1e3


def _num(x):
    return float(f"{x:.6g}") if math.isfinite(x) else str(x)


def run_input(cfg: dict, res) -> dict:
    status = {"succeeded": "finished", "stopped": "finished"}.get(res.status, "failed")
    metrics = {k: [[int(s), _num(v)] for s, v in pts] for k, pts in res.history.items() if pts}
    return {"config": cfg, "metrics": metrics, "steps_per_epoch": res.steps_per_epoch, "status": status}


def shape_check(label: str, run: dict):
    """Plain sanity checks, independent of the rules engine, that the run shows what its label says
    (a candidate that blew up is not 'unstable'; a healthy run does not end far above its best)."""
    def finite(name):
        return [v for _, v in run["metrics"].get(name, []) if isinstance(v, (int, float)) and math.isfinite(v)]
    train, val = finite("train_loss"), finite("val_loss")
    init = train[0] if train else None
    failed = run["status"] == "failed"
    if not val or not init:
        return label == "diverging", "no val_loss"
    best, last = min(val), val[-1]
    best_at = val.index(best) + 1
    if label == "diverging":
        return True, ""
    if failed or max(train) > 5 * init:
        return False, "blew up"
    if best < 0.02 * init:
        return False, "val_loss near zero (relative changes are noise)"
    if label in ("unstable", "overfitting", "healthy") and best > 0.6 * init:
        return False, "never learned"
    if label == "healthy" and sum(val[-3:]) / len(val[-3:]) > 1.15 * best:  # small val sets wobble by ~10%
        return False, "val_loss ends >15% above its best"
    if label == "not_converged" and best_at < 0.9 * len(val):
        return False, "best val_loss not in the last 10% of epochs"
    if label == "not_converged" and len(val) >= 5 and (val[-5] - last) / val[-5] < 0.05:
        return False, "stagnated (last 5 val points fell < 5%, TheDeepChecker)"
    late = val[len(val) // 5:]
    swings = sum(b > 1.05 * a for a, b in zip(late, late[1:])) / max(1, len(late) - 1)
    if label == "unstable" and swings < 0.2:
        return False, "val_loss rose >5% in fewer than 20% of epochs (AUTOTRAINER oscillation)"
    epoch_train = finite("train_loss_epoch")
    if label == "overfitting" and not (last >= 1.1 * best or epoch_train[-1] <= last / 3):
        return False, "neither val_loss 10% above its best (Prechelt GL10) nor train_loss < val_loss/3"
    if label == "underfitting":
        q = epoch_train[-max(2, len(epoch_train) // 4)]
        if (q - epoch_train[-1]) / q >= 0.05 or epoch_train[-1] < 0.1 * init:
            return False, "train_loss not stagnating at >= 10% of its initial value"
    return True, ""


def improvement(parent: float, child: float) -> float:
    return (parent - child) / abs(parent) if parent else 0.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="only candidates with this label")
    ap.add_argument("--heldout", action="store_true", help="the held-out candidates, into SUITE/heldout/")
    args = ap.parse_args(argv)
    candidates, out_dir = (HELDOUT, SUITE_DIR / "heldout") if args.heldout else (CANDIDATES, SUITE_DIR)
    from tracking.config import validate_config

    trainer = Trainer()
    out_dir.mkdir(parents=True, exist_ok=True)
    kept, dropped = 0, 0
    for label, name, raw in candidates:
        if args.only and label != args.only:
            continue
        cfg = validate_config(raw)
        base = trainer.train(cfg, keep_history=True)
        checks = []
        for fix_name, change in label_fixes(label, cfg):
            child = trainer.train({**cfg, **change})
            checks.append((fix_name, improvement(base["best_val_loss"], child["best_val_loss"])))
        if label == "healthy":
            ok = all(gain < HEALTHY_SLACK for _, gain in checks)
        else:
            ok = any(gain >= IMPROVED for _, gain in checks)
        shape_ok, why = shape_check(label, base["run_input"])
        if not shape_ok:
            ok, checks = False, checks + [(why, 0.0)]
        desc = ", ".join(f"{n}: {g:+.1%}" for n, g in checks)
        print(f"{'KEEP' if ok else 'DROP'} {label:13s} {name:28s} best val_loss {base['best_val_loss']:.4g} "
              f"({base['status']}); {desc}", flush=True)
        path = out_dir / f"{label}__{name}.json"
        if ok:
            case = dict(base["run_input"], label=label, name=name,
                        meta={"dataset": cfg["dataset"], "model": cfg["model"], "optimizer": cfg["optimizer"],
                              "best_val_loss": base["best_val_loss"], "trainer_status": base["status"],
                              "label_checks": {n: round(g, 4) for n, g in checks}})
            path.write_text(json.dumps(case, separators=(",", ":")))
            kept += 1
        else:
            path.unlink(missing_ok=True)
            dropped += 1
        trainer.save()
    print(f"suite: {kept} cases kept, {dropped} dropped, {trainer.trained} trainings in {trainer.seconds:.0f}s")


if __name__ == "__main__":
    main()
