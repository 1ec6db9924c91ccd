"""Runs logged by other people's loggers into a real MLflow store, read back the way
`manage.py advise --mlflow-run` reads them (tracking.mlflow_io.read_run), and scored by retraining.

Three generators train the same small MLP on small scikit-learn data sets, each with its library's
usual habits:
- `lightning`: a LightningModule with `self.log("train_loss", on_step=True, on_epoch=True)` (MLflow
  gets `train_loss_step`, `train_loss_epoch`), `val_loss`, `val_acc`, `LearningRateMonitor` (`lr-SGD`,
  `lr-Adam`), `save_hyperparameters()` (params lr, momentum, weight_decay, batch_size, ...), MLFlowLogger;
  no `steps_per_epoch` tag. Lightning also logs its `epoch` metric.
- `hf`: transformers.Trainer with `report_to=["mlflow"]` on a tiny PreTrainedModel built from a config
  (no download; HF_HUB_OFFLINE=1): metrics `loss`, `grad_norm`, `learning_rate`, `epoch`, `eval_loss`,
  `eval_accuracy`; params are TrainingArguments' names (learning_rate, num_train_epochs, optim ...).
  AdamW and a linear decay, the Trainer's defaults.
- `plain`: a PyTorch loop calling `mlflow.log_metric` once an epoch for `loss`, `acc`, `val_loss`,
  `val_acc` (step = epoch) and `mlflow.log_params` for lr, batch_size, epochs, optimizer, momentum,
  weight_decay, dropout.

Regimes, each provoked on purpose and checked by retraining (the label comes from the retrainings,
not from the regime's name): healthy, diverging (LR far too high), overfitting (a wide net on a small
training set for long), underfitting (weight decay far too strong), lr_low (LR far too low).
Data sets (name, split seed) by part, DEV_DATA and HELD_OUT_DATA. A held-out part is trained with
--train-only, measured once, then examined and moved to dev; the next engine change is measured on fresh
data. Dev: digits/0, breast_cancer/0, wine/1, make_classification/1 (examined on 1 Dec), iris/2, moons/2,
breast_cancer/3 (measured at 03:45 UTC on 2 Dec), make_circles/4, make_gaussian_quantiles/4, make_blobs/5
(06:08), make_hastie_10_2/6, a 5-class make_classification/7, a make_classification/8 with 10% flipped
labels (06:30), a make_classification/9 with classes close together, a 2-class make_gaussian_quantiles/10,
a 3-blob make_blobs/11 (06:57); Lightning and transformers.Trainer, slower per step, use all but
breast_cancer, wine and the plain-only ones (make_blobs/5, flipped/8, make_blobs/11, clusters/14,
quantiles4/17, blobs2/20); a 2-class make_classification/12 with redundant features, a 5-blob make_blobs/13 and a
4-class one-cluster make_classification/14 (measured at 07:10 UTC on 2 Dec); a 3-class
make_classification/15 with imbalanced classes (60/30/10%), make_moons/16 with less noise and a 4-class
make_gaussian_quantiles/17 (08:50 UTC); a 6-class make_classification/18, a make_circles/19 with the
circles close together and a 2-blob make_blobs/20 with wide blobs (09:06 UTC); a 4-class
make_classification/21 with classes far apart, a make_moons/22 with much noise and a 3-class
make_gaussian_quantiles/23 in 3 features (plain only) (09:17 UTC); a 3-class make_classification/24 with
5 informative features of 30 and 5% flipped labels, a 6-blob make_blobs/25 and a make_circles/26 with
much noise (plain only) (13:53 UTC); a 4-blob make_blobs/27 in 3 features, a 2-class
make_classification/28 with 20% flipped labels and a 5-class make_gaussian_quantiles/29 in 8 features
(plain only) (14:04 UTC); a 4-class make_classification/30 with 7 informative and 3 redundant
features of 14, classes close together (class_sep 0.8), a make_moons/31 with moderate noise and an
8-blob make_blobs/32 in 6 features (plain only) (23:00 UTC); an 8-class make_classification/33 with
10 informative features of 20, a make_circles/34 with moderate noise and a 3-blob make_blobs/35 in 10
features with wide blobs (plain only) (03:10 UTC on 3 Dec); a 3-class make_classification/36 with 4
informative and 4 repeated features of 12, a make_moons/37 with noise 0.26 and a 4-class
make_gaussian_quantiles/38 in 7 features (plain only) (03:20 UTC); a 5-class make_classification/39
with 8 informative features of 16 and 3% flipped labels, a make_circles/40 with noise 0.18 and
factor 0.55 and a 5-blob make_blobs/41 in 8 features (plain only) (03:32 UTC); a 2-class
make_classification/42 with 6 informative features of 10 and classes close together (class_sep
0.7), a make_moons/43 with noise 0.18 and a 3-class make_gaussian_quantiles/44 in 4 features (plain
only) (04:00 UTC, the same engine as the thirteenth); a 4-class make_classification/45 with 5
informative and 2 redundant features of 9, a make_circles/46 with noise 0.12 and factor 0.65 and a
4-blob make_blobs/47 in 12 features (plain only) (06:24 UTC, the same engine's answers); the sixteenth,
larger (five data sets for plain, three for the slower libraries): a 3-class make_classification/48
with 6 informative features of 11 and 2% flipped labels, a make_moons/49 with noise 0.24, a
make_circles/50 with noise 0.22 and factor 0.45, a 3-class make_gaussian_quantiles/51 in 9 features
and a 7-blob make_blobs/52 in 7 features (plain only) (06:33 UTC, the same engine's answers); the
seventeenth, as large: a 3-class make_classification/53 with 7 informative and 2 redundant features of
14, a make_moons/54 with noise 0.3, a make_circles/55 with noise 0.16 and factor 0.6, a 2-class
make_gaussian_quantiles/56 in 6 features and a 4-blob make_blobs/57 in 5 features (plain only)
(06:51 UTC, engine 8f45c0c); the eighteenth, as large: a 5-class make_classification/58 with 6
informative features of 10 and class_sep 1.3, a make_moons/59 with noise 0.21, a make_circles/60 with
noise 0.14 and factor 0.5, a 3-class make_gaussian_quantiles/61 in 5 features and a 3-blob
make_blobs/62 in 9 features (plain only) (07:01 UTC, the same engine); the nineteenth, as large: a
4-class make_classification/63 with 5 informative and 3 redundant features of 13 and class_sep 0.9, a
make_moons/64 with noise 0.27, a make_circles/65 with noise 0.17 and factor 0.4, a 2-class
make_gaussian_quantiles/66 in 8 features and a 5-blob make_blobs/67 in 6 features (plain only)
(09:16 UTC, engine 3e02d4f); the twentieth, as large: a 3-class make_classification/68 with 8
informative features of 16 and class_sep 1.2, a make_moons/69 with noise 0.23, a make_circles/70 with
noise 0.19 and factor 0.55, a 3-class make_gaussian_quantiles/71 in 7 features and a 6-blob
make_blobs/72 in 4 features (plain only) (11:33 UTC, engine 06f409f); the twenty-first, as large: a
4-class make_classification/73 with 9 informative features of 18 and class_sep 1.0, a make_moons/74
with noise 0.28, a make_circles/75 with noise 0.13 and factor 0.45, a 2-class
make_gaussian_quantiles/76 in 10 features and a 5-blob make_blobs/77 in 9 features (plain only)
(12:00 UTC, engine 97347f9); the twenty-second, as large: a 5-class make_classification/78 with 12
informative features of 20 and class_sep 1.1, a make_moons/79 with noise 0.2, a make_circles/80 with
noise 0.21 and factor 0.5, a 4-class make_gaussian_quantiles/81 in 6 features and a 4-blob
make_blobs/82 in 7 features (plain only) (12:43 UTC, engine 025430c); the twenty-third, as large: a
3-class make_classification/83 with 10 informative features of 15 and 4% flipped labels, a
make_moons/84 with noise 0.25, a make_circles/85 with noise 0.2 and factor 0.58, a 2-class
make_gaussian_quantiles/86 in 3 features and a 3-blob make_blobs/87 in 5 features (plain only)
(14:45 UTC, engine 12b3b3e); the twenty-fourth, as large: a 6-class make_classification/88 with 8
informative features of 14, class_sep 1.2 and 3% flipped labels, a make_moons/89 with noise 0.22, a
make_circles/90 with noise 0.18 and factor 0.52, a 4-class make_gaussian_quantiles/91 in 5 features
and a 5-blob make_blobs/92 in 7 features (plain only) (15:51 UTC, engine ea8ece3); the twenty-fifth, as large: a 4-class make_classification/93 with 7
informative and 2 redundant features of 12 and 5% flipped labels, a make_moons/94 with noise 0.29, a
make_circles/95 with noise 0.15 and factor 0.48, a 3-class make_gaussian_quantiles/96 in 6 features
and a 6-blob make_blobs/97 in 6 features (plain only) (16:31 UTC, engine 7e42112); the twenty-sixth, as large: a
5-class make_classification/98 with 6 informative and 3 redundant features of 15, a make_moons/99 with
noise 0.24, a make_circles/100 with noise 0.17 and factor 0.56, a 2-class make_gaussian_quantiles/101 in
5 features and a 4-blob make_blobs/102 in 9 features (plain only) (17:30 UTC, engine 7e42112); the
twenty-seventh, as large: a 3-class make_classification/103 with 9 informative and 2 redundant
features of 17 and 2% flipped labels, a make_moons/104 with noise 0.19, a make_circles/105 with noise
0.23 and factor 0.62, a 4-class make_gaussian_quantiles/106 in 4 features and a 7-blob make_blobs/107
in 5 features (plain only) (18:08 UTC, engine 7e42112); the twenty-eighth, as large: a 4-class
make_classification/108 with 8 informative features of 13 and class_sep 1.1, a make_moons/109 with
noise 0.26, a make_circles/110 with noise 0.19 and factor 0.47, a 2-class make_gaussian_quantiles/111
in 7 features and a 5-blob make_blobs/112 in 4 features (plain only) (18:37 UTC, engine 220c7c4); the
twenty-ninth, as large: a 5-class make_classification/113 with 9 informative and 2 redundant features
of 16 and class_sep 1.0, a make_moons/114 with noise 0.21, a make_circles/115 with noise 0.16 and
factor 0.53, a 3-class make_gaussian_quantiles/116 in 8 features and a 6-blob make_blobs/117 in 8
features (plain only) (19:01 UTC, engine 35ffbeb); the thirtieth, as large: a 3-class
make_classification/118 with 7 informative features of 12 and 3% flipped labels, a make_moons/119 with
noise 0.23, a make_circles/120 with noise 0.21 and factor 0.57, a 4-class make_gaussian_quantiles/121 in
6 features and a 4-blob make_blobs/122 in 6 features (plain only) (21:18 UTC, engine 988ea8a); the
thirty-first, as large: a 4-class make_classification/123 with 8 informative features of 15 and
class_sep 0.9, a make_moons/124 with noise 0.27, a make_circles/125 with noise 0.17 and factor 0.62, a
3-class make_gaussian_quantiles/126 in 5 features and a 5-blob make_blobs/127 in 8 features (plain only)
(21:58 UTC, engine 424669b, the same advice as 988ea8a); the thirty-second, as large: a 5-class
make_classification/128 with 10 informative features of 18, a make_moons/129 with noise 0.2, a
make_circles/130 with noise 0.14 and factor 0.58, a 2-class make_gaussian_quantiles/131 in 9 features
and a 6-blob make_blobs/132 in 5 features (plain only) (4 Dec 00:21 UTC, engine 997ba06); the
thirty-third, as large: a 3-class make_classification/133 with 6 informative features of 14 and 2%
flipped labels, a make_moons/134 with noise 0.22, a make_circles/135 with noise 0.19 and factor 0.49, a
3-class make_gaussian_quantiles/136 in 7 features and a 5-blob make_blobs/137 in 7 features (plain only)
(00:55 UTC, engine 997ba06); the thirty-fourth, as large: a 4-class make_classification/138 with 9
informative features of 16, a make_moons/139 with noise 0.24, a make_circles/140 with noise 0.16 and
factor 0.52, a 4-class make_gaussian_quantiles/141 in 6 features and a 4-blob make_blobs/142 in 9
features (plain only) (03:46 UTC, engine 45d7a4c); the thirty-fifth, as large: a 3-class
make_classification/143 with 7 informative features of 12, a make_moons/144 with noise 0.26, a
make_circles/145 with noise 0.21 and factor 0.55, a 2-class make_gaussian_quantiles/146 in 8 features
and a 3-blob make_blobs/147 in 6 features (plain only) (04:23 UTC, engine 0dd2571); the thirty-sixth,
as large: a 5-class make_classification/148 with 8 informative features of 15, a make_moons/149 with
noise 0.29, a make_circles/150 with noise 0.17 and factor 0.47, a 3-class make_gaussian_quantiles/151 in
5 features and a 5-blob make_blobs/152 in 8 features (plain only) (04:44 UTC, engine 0dd2571); the
thirty-seventh, as large: a 4-class make_classification/153 with 10 informative features of 14, a
make_moons/154 with noise 0.23, a make_circles/155 with noise 0.2 and factor 0.5, a 4-class
make_gaussian_quantiles/156 in 7 features and a 6-blob make_blobs/157 in 6 features (plain only) (08:42
UTC, engine 0aa4281, the answers of 0dd2571); the thirty-eighth, as large: a 3-class
make_classification/158 with 9 informative and 2 redundant features of 15, a make_moons/159 with noise
0.25, a make_circles/160 with noise 0.18 and factor 0.6, a 2-class make_gaussian_quantiles/161 in 5
features and a 4-blob make_blobs/162 in 10 features (plain only) (09:44 UTC, engine 5aec8bf, the same
answers); the thirty-ninth, as large: a 4-class make_classification/163 with 8 informative and 2
redundant features of 13, a make_moons/164 with noise 0.21, a make_circles/165 with noise 0.15 and
factor 0.52, a 3-class make_gaussian_quantiles/166 in 6 features and a 5-blob make_blobs/167 in 5
features (plain only) (10:21 UTC, engine baecfed). Held out (the fortieth part, as large): a 3-class
make_classification/168 with 6 informative and 3 redundant features of 12, a make_moons/169 with noise
0.27, a make_circles/170 with noise 0.2 and factor 0.56 (every library), a 4-class
make_gaussian_quantiles/171 in 8 features and a 3-blob make_blobs/172 in 7 features (plain), trained
with --train-only on 4 Dec; to be measured once, then examined and moved to dev.

Tuned runs start from several configs (TUNED_STARTS: the healthy SGD config, Adam, a wide net, a
narrow net, a cosine schedule; for the Trainer AdamW variants) and are polished by retraining
(tuned_spec), so each part holds enough tuned runs to measure a 10% false-alarm rate.

The counterfactual retrains with the same library and seed, without MLflow (the same arithmetic);
early stopping is the same run's best val_loss before the stop. Trainings are cached by library and
config in var/devset_cache_<library>.json (delete them to retrain everything).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional

from .scoring import HELP, Case, improvement

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model is built from a config: never download
ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / "var"  # devset_cache_<library>.json
LIBRARIES = ("lightning", "hf", "plain")
PARTS = ("dev", "held-out")
_SLOW_DEV = (("digits", 0), ("classification", 1), ("iris", 2), ("moons", 2), ("circles", 4), ("quantiles", 4),
             ("hastie", 6), ("classification5", 7), ("sep", 9), ("quantiles2", 10), ("redundant", 12), ("blobs5c", 13),
             ("imbalanced", 15), ("moons_narrow", 16), ("classification6", 18), ("circles_wide", 19), ("separated4", 21),
             ("moons_noisy", 22), ("sparse3", 24), ("blobs6", 25), ("blobs_tight", 27), ("flipped20", 28),
             ("informative4", 30), ("moons_mid", 31), ("classification8", 33), ("circles_mid", 34),
             ("repeated", 36), ("moons_26", 37), ("classification5f", 39), ("circles_55", 40),
             ("close2", 42), ("moons_18", 43), ("classification4r", 45), ("circles_65", 46), ("classification3s", 48),
             ("moons_24", 49), ("circles_45", 50), ("classification7", 53), ("moons_30", 54), ("circles_60", 55),
             ("classification5s", 58), ("moons_21", 59), ("circles_50", 60), ("classification4s", 63),
             ("moons_27", 64), ("circles_40", 65), ("classification3e", 68), ("moons_23", 69), ("circles_55b", 70),
             ("classification4n", 73), ("moons_28", 74), ("circles_45b", 75), ("classification5n", 78),
             ("moons_20", 79), ("circles_50b", 80),
             ("classification3f", 83), ("moons_25", 84), ("circles_58", 85), ("classification6f", 88),
             ("moons_22", 89), ("circles_52", 90), ("classification4f", 93), ("moons_29", 94), ("circles_48", 95),
             ("classification5r", 98), ("moons_24b", 99), ("circles_56", 100), ("classification3r", 103),
             ("moons_19", 104), ("circles_62", 105), ("classification4e", 108), ("moons_26b", 109),
             ("circles_47", 110), ("classification5t", 113), ("moons_21b", 114), ("circles_53", 115),
             ("classification3g", 118), ("moons_23b", 119), ("circles_57", 120), ("classification4h", 123),
             ("moons_27b", 124), ("circles_62b", 125), ("classification5h", 128), ("moons_20b", 129),
             ("circles_58b", 130), ("classification3t", 133), ("moons_22c", 134), ("circles_49c", 135),
             ("classification4t", 138), ("moons_24c", 139), ("circles_52c", 140), ("classification3u", 143),
             ("moons_26d", 144), ("circles_55d", 145), ("classification5u", 148), ("moons_29d", 149),
             ("circles_47d", 150), ("classification4u", 153), ("moons_23d", 154), ("circles_50d", 155),
             ("classification3v", 158), ("moons_25e", 159), ("circles_60e", 160), ("classification4w", 163),
             ("moons_21f", 164), ("circles_52f", 165))
DEV_DATA = {"plain": (("digits", 0), ("breast_cancer", 0), ("wine", 1), ("classification", 1), ("iris", 2),
                      ("moons", 2), ("breast_cancer", 3), ("circles", 4), ("quantiles", 4), ("blobs", 5),
                      ("hastie", 6), ("classification5", 7), ("flipped", 8), ("sep", 9), ("quantiles2", 10),
                      ("blobs3", 11), ("redundant", 12), ("blobs5c", 13), ("clusters", 14), ("imbalanced", 15),
                      ("moons_narrow", 16), ("quantiles4", 17), ("classification6", 18), ("circles_wide", 19),
                      ("blobs2", 20), ("separated4", 21), ("moons_noisy", 22), ("quantiles3", 23),
                      ("sparse3", 24), ("blobs6", 25), ("circles_noisy", 26), ("blobs_tight", 27),
                      ("flipped20", 28), ("quantiles5", 29), ("informative4", 30), ("moons_mid", 31),
                      ("blobs8", 32), ("classification8", 33), ("circles_mid", 34), ("blobs_far", 35),
                      ("repeated", 36), ("moons_26", 37), ("quantiles7", 38), ("classification5f", 39),
                      ("circles_55", 40), ("blobs5_8", 41), ("close2", 42), ("moons_18", 43), ("quantiles3b", 44),
                      ("classification4r", 45), ("circles_65", 46), ("blobs4_12", 47), ("classification3s", 48),
                      ("moons_24", 49), ("circles_45", 50), ("quantiles9", 51), ("blobs7", 52),
                      ("classification7", 53), ("moons_30", 54), ("circles_60", 55), ("quantiles6", 56),
                      ("blobs4_5", 57), ("classification5s", 58), ("moons_21", 59), ("circles_50", 60),
                      ("quantiles5b", 61), ("blobs3_9", 62), ("classification4s", 63), ("moons_27", 64),
                      ("circles_40", 65), ("quantiles8", 66), ("blobs5_6", 67), ("classification3e", 68),
                      ("moons_23", 69), ("circles_55b", 70), ("quantiles7b", 71), ("blobs6_4", 72),
                      ("classification4n", 73), ("moons_28", 74), ("circles_45b", 75), ("quantiles10", 76),
                      ("blobs5_9", 77), ("classification5n", 78), ("moons_20", 79), ("circles_50b", 80),
                      ("quantiles4c", 81), ("blobs4_7", 82), ("classification3f", 83), ("moons_25", 84),
                      ("circles_58", 85), ("quantiles2b", 86), ("blobs3_5", 87), ("classification6f", 88),
                      ("moons_22", 89), ("circles_52", 90), ("quantiles4d", 91), ("blobs5_7", 92),
                      ("classification4f", 93), ("moons_29", 94), ("circles_48", 95), ("quantiles3c", 96),
                      ("blobs6_6", 97), ("classification5r", 98), ("moons_24b", 99), ("circles_56", 100),
                      ("quantiles2c", 101), ("blobs4_9", 102), ("classification3r", 103), ("moons_19", 104),
                      ("circles_62", 105), ("quantiles4e", 106), ("blobs7_5", 107), ("classification4e", 108),
                      ("moons_26b", 109), ("circles_47", 110), ("quantiles2d", 111), ("blobs5_4", 112),
                      ("classification5t", 113), ("moons_21b", 114), ("circles_53", 115), ("quantiles3d", 116),
                      ("blobs6_8", 117), ("classification3g", 118), ("moons_23b", 119), ("circles_57", 120),
                      ("quantiles4f", 121), ("blobs4_6", 122), ("classification4h", 123), ("moons_27b", 124),
                      ("circles_62b", 125), ("quantiles3e", 126), ("blobs5_8c", 127), ("classification5h", 128),
                      ("moons_20b", 129), ("circles_58b", 130), ("quantiles2e", 131), ("blobs6_5b", 132),
                      ("classification3t", 133), ("moons_22c", 134), ("circles_49c", 135), ("quantiles3f", 136),
                      ("blobs5_7d", 137), ("classification4t", 138), ("moons_24c", 139), ("circles_52c", 140),
                      ("quantiles4g", 141), ("blobs4_9e", 142), ("classification3u", 143), ("moons_26d", 144),
                      ("circles_55d", 145), ("quantiles2g", 146), ("blobs3_6f", 147), ("classification5u", 148),
                      ("moons_29d", 149), ("circles_47d", 150), ("quantiles3g", 151), ("blobs5_8f", 152),
                      ("classification4u", 153), ("moons_23d", 154), ("circles_50d", 155), ("quantiles4h", 156),
                      ("blobs6_6g", 157), ("classification3v", 158), ("moons_25e", 159), ("circles_60e", 160),
                      ("quantiles2h", 161), ("blobs4_10g", 162), ("classification4w", 163), ("moons_21f", 164),
                      ("circles_52f", 165), ("quantiles3h", 166), ("blobs5_5h", 167)),
            "lightning": _SLOW_DEV, "hf": _SLOW_DEV}
HELD_OUT_DATA = {"plain": (("classification3x", 168), ("moons_27g", 169), ("circles_56g", 170), ("quantiles4i", 171),
                           ("blobs3_7i", 172)),
                 "lightning": (("classification3x", 168), ("moons_27g", 169), ("circles_56g", 170)),
                 "hf": (("classification3x", 168), ("moons_27g", 169), ("circles_56g", 170))}
DATA = {lib: DEV_DATA[lib] + HELD_OUT_DATA[lib] for lib in DEV_DATA}

BASE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4,
        "batch_size": 32, "epochs": 12, "dropout": 0.0, "batch_norm": False, "scheduler": "constant",
        "label_smoothing": 0.0, "grad_clip": None, "width": 64, "depth": 2, "train_subset": 300}
HF_BASE = {"optimizer": "adamw", "lr": 3e-3, "momentum": 0.0, "weight_decay": 0.0, "scheduler": "linear",
           "grad_clip": 1.0}  # the Trainer's defaults (lr 5e-5 is for fine-tuning; this trains from scratch)
REGIMES = {
    "healthy": {},
    "diverging": {"lr": 3.0, "momentum": 0.9},
    "overfitting": {"width": 256, "depth": 3, "train_subset": 100, "epochs": 40},
    "underfitting": {"weight_decay": 0.3},
    "lr_low": {"lr": 1e-3, "momentum": 0.0},
}
# Tuned runs: each start polished by retraining until no single change helps (tuned_spec).
TUNED_STARTS = {
    "tuned": {},  # the healthy config
    "tuned_adam": {"optimizer": "adam", "lr": 3e-3, "momentum": 0.0},
    "tuned_wide": {"width": 256},
    "tuned_narrow": {"width": 16, "depth": 1},
    "tuned_cosine": {"scheduler": "cosine", "epochs": 20},
}
REGIMES.update(TUNED_STARTS)
HF_REGIMES = {"diverging": {"lr": 0.5}, "underfitting": {"weight_decay": 30.0}, "lr_low": {"lr": 3e-5},
              "tuned_adam": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01},  # the Trainer: AdamW only
              }  # AdamW: decoupled weight decay is used much larger


def spec_for(library: str, regime: str, dataset: str, seed: int) -> dict:
    """The regime's config for a library and data set (the tuned regime starts from healthy's)."""
    spec = dict(BASE)
    if library == "hf":
        spec.update(HF_BASE)
    spec.update(REGIMES[regime])
    if library == "hf":
        spec.update(HF_REGIMES.get(regime, {}))
    spec.update(dataset=dataset, seed=seed)
    return spec


# ---------------------------------------------------------------------------------------------- data

# Data sets made by a scikit-learn generator (600 samples, random_state = the split seed): name -> (make_*, kwargs).
# The others are scikit-learn's bundled sets (load_<name>).
GENERATED = {
    "classification": ("make_classification", dict(n_features=20, n_informative=8, n_classes=3)),
    "moons": ("make_moons", dict(noise=0.3)),
    "circles": ("make_circles", dict(noise=0.15, factor=0.5)),
    "quantiles": ("make_gaussian_quantiles", dict(n_features=6, n_classes=3)),
    "blobs": ("make_blobs", dict(n_features=10, centers=4, cluster_std=4.0)),
    "hastie": ("make_hastie_10_2", {}),
    "classification5": ("make_classification", dict(n_features=12, n_informative=6, n_classes=5)),
    "flipped": ("make_classification", dict(n_features=10, n_informative=5, n_classes=2, flip_y=0.1)),
    "sep": ("make_classification", dict(n_features=8, n_informative=4, n_classes=3, class_sep=0.6)),
    "quantiles2": ("make_gaussian_quantiles", dict(n_features=4, n_classes=2)),
    "blobs3": ("make_blobs", dict(n_features=6, centers=3, cluster_std=3.0)),
    "redundant": ("make_classification", dict(n_features=15, n_informative=3, n_redundant=5, n_classes=2)),
    "blobs5c": ("make_blobs", dict(n_features=4, centers=5, cluster_std=2.0)),
    "clusters": ("make_classification", dict(n_features=6, n_informative=4, n_classes=4, n_clusters_per_class=1)),
    "imbalanced": ("make_classification", dict(n_features=10, n_informative=6, n_classes=3, weights=[0.6, 0.3, 0.1])),
    "moons_narrow": ("make_moons", dict(noise=0.15)),
    "quantiles4": ("make_gaussian_quantiles", dict(n_features=5, n_classes=4)),
    "classification6": ("make_classification", dict(n_features=16, n_informative=10, n_classes=6)),
    "circles_wide": ("make_circles", dict(noise=0.1, factor=0.7)),
    "blobs2": ("make_blobs", dict(n_features=8, centers=2, cluster_std=5.0)),
    "separated4": ("make_classification", dict(n_features=12, n_informative=6, n_classes=4, class_sep=1.5)),
    "moons_noisy": ("make_moons", dict(noise=0.4)),
    "quantiles3": ("make_gaussian_quantiles", dict(n_features=3, n_classes=3)),
    "sparse3": ("make_classification", dict(n_features=30, n_informative=5, n_classes=3, flip_y=0.05)),
    "blobs6": ("make_blobs", dict(n_features=5, centers=6, cluster_std=2.5)),
    "circles_noisy": ("make_circles", dict(noise=0.25, factor=0.4)),
    "blobs_tight": ("make_blobs", dict(n_features=3, centers=4, cluster_std=1.5)),
    "flipped20": ("make_classification", dict(n_features=8, n_informative=5, n_classes=2, flip_y=0.2)),
    "quantiles5": ("make_gaussian_quantiles", dict(n_features=8, n_classes=5)),
    "informative4": ("make_classification", dict(n_features=14, n_informative=7, n_redundant=3, n_classes=4,
                                                 class_sep=0.8)),
    "moons_mid": ("make_moons", dict(noise=0.22)),
    "blobs8": ("make_blobs", dict(n_features=6, centers=8, cluster_std=2.0)),
    "classification8": ("make_classification", dict(n_features=20, n_informative=10, n_classes=8, class_sep=1.2)),
    "circles_mid": ("make_circles", dict(noise=0.2, factor=0.6)),
    "blobs_far": ("make_blobs", dict(n_features=10, centers=3, cluster_std=6.0)),
    "repeated": ("make_classification", dict(n_features=12, n_informative=4, n_repeated=4, n_classes=3)),
    "moons_26": ("make_moons", dict(noise=0.26)),
    "quantiles7": ("make_gaussian_quantiles", dict(n_features=7, n_classes=4)),
    "classification5f": ("make_classification", dict(n_features=16, n_informative=8, n_classes=5, flip_y=0.03)),
    "circles_55": ("make_circles", dict(noise=0.18, factor=0.55)),
    "blobs5_8": ("make_blobs", dict(n_features=8, centers=5, cluster_std=3.5)),
    "close2": ("make_classification", dict(n_features=10, n_informative=6, n_classes=2, class_sep=0.7)),
    "moons_18": ("make_moons", dict(noise=0.18)),
    "quantiles3b": ("make_gaussian_quantiles", dict(n_features=4, n_classes=3)),
    "classification4r": ("make_classification", dict(n_features=9, n_informative=5, n_redundant=2, n_classes=4)),
    "circles_65": ("make_circles", dict(noise=0.12, factor=0.65)),
    "blobs4_12": ("make_blobs", dict(n_features=12, centers=4, cluster_std=5.0)),
    "classification3s": ("make_classification", dict(n_features=11, n_informative=6, n_classes=3, class_sep=1.0,
                                                     flip_y=0.02)),
    "moons_24": ("make_moons", dict(noise=0.24)),
    "circles_45": ("make_circles", dict(noise=0.22, factor=0.45)),
    "quantiles9": ("make_gaussian_quantiles", dict(n_features=9, n_classes=3)),
    "blobs7": ("make_blobs", dict(n_features=7, centers=7, cluster_std=3.0)),
    "classification7": ("make_classification", dict(n_features=14, n_informative=7, n_redundant=2, n_classes=3,
                                                    class_sep=1.1)),
    "moons_30": ("make_moons", dict(noise=0.3)),
    "circles_60": ("make_circles", dict(noise=0.16, factor=0.6)),
    "quantiles6": ("make_gaussian_quantiles", dict(n_features=6, n_classes=2)),
    "blobs4_5": ("make_blobs", dict(n_features=5, centers=4, cluster_std=3.5)),
    "classification5s": ("make_classification", dict(n_features=10, n_informative=6, n_classes=5, class_sep=1.3)),
    "moons_21": ("make_moons", dict(noise=0.21)),
    "circles_50": ("make_circles", dict(noise=0.14, factor=0.5)),
    "quantiles5b": ("make_gaussian_quantiles", dict(n_features=5, n_classes=3)),
    "blobs3_9": ("make_blobs", dict(n_features=9, centers=3, cluster_std=4.5)),
    "classification4s": ("make_classification", dict(n_features=13, n_informative=5, n_redundant=3, n_classes=4,
                                                     class_sep=0.9)),
    "moons_27": ("make_moons", dict(noise=0.27)),
    "circles_40": ("make_circles", dict(noise=0.17, factor=0.4)),
    "quantiles8": ("make_gaussian_quantiles", dict(n_features=8, n_classes=2)),
    "blobs5_6": ("make_blobs", dict(n_features=6, centers=5, cluster_std=4.0)),
    "classification3e": ("make_classification", dict(n_features=16, n_informative=8, n_classes=3, class_sep=1.2)),
    "moons_23": ("make_moons", dict(noise=0.23)),
    "circles_55b": ("make_circles", dict(noise=0.19, factor=0.55)),
    "quantiles7b": ("make_gaussian_quantiles", dict(n_features=7, n_classes=3)),
    "blobs6_4": ("make_blobs", dict(n_features=4, centers=6, cluster_std=3.0)),
    "classification4n": ("make_classification", dict(n_features=18, n_informative=9, n_classes=4, class_sep=1.0)),
    "moons_28": ("make_moons", dict(noise=0.28)),
    "circles_45b": ("make_circles", dict(noise=0.13, factor=0.45)),
    "quantiles10": ("make_gaussian_quantiles", dict(n_features=10, n_classes=2)),
    "blobs5_9": ("make_blobs", dict(n_features=9, centers=5, cluster_std=4.5)),
    "classification5n": ("make_classification", dict(n_features=20, n_informative=12, n_classes=5, class_sep=1.1)),
    "moons_20": ("make_moons", dict(noise=0.2)),
    "circles_50b": ("make_circles", dict(noise=0.21, factor=0.5)),
    "quantiles4c": ("make_gaussian_quantiles", dict(n_features=6, n_classes=4)),
    "blobs4_7": ("make_blobs", dict(n_features=7, centers=4, cluster_std=4.0)),
    "classification3f": ("make_classification", dict(n_features=15, n_informative=10, n_classes=3, flip_y=0.04)),
    "moons_25": ("make_moons", dict(noise=0.25)),
    "circles_58": ("make_circles", dict(noise=0.2, factor=0.58)),
    "quantiles2b": ("make_gaussian_quantiles", dict(n_features=3, n_classes=2)),
    "blobs3_5": ("make_blobs", dict(n_features=5, centers=3, cluster_std=3.0)),
    "classification6f": ("make_classification", dict(n_features=14, n_informative=8, n_classes=6, class_sep=1.2,
                                                     flip_y=0.03)),
    "moons_22": ("make_moons", dict(noise=0.22)),
    "circles_52": ("make_circles", dict(noise=0.18, factor=0.52)),
    "quantiles4d": ("make_gaussian_quantiles", dict(n_features=5, n_classes=4)),
    "blobs5_7": ("make_blobs", dict(n_features=7, centers=5, cluster_std=3.5)),
    "classification4f": ("make_classification", dict(n_features=12, n_informative=7, n_redundant=2, n_classes=4,
                                                     flip_y=0.05)),
    "moons_29": ("make_moons", dict(noise=0.29)),
    "circles_48": ("make_circles", dict(noise=0.15, factor=0.48)),
    "quantiles3c": ("make_gaussian_quantiles", dict(n_features=6, n_classes=3)),
    "blobs6_6": ("make_blobs", dict(n_features=6, centers=6, cluster_std=3.5)),
    "classification5r": ("make_classification", dict(n_features=15, n_informative=6, n_redundant=3, n_classes=5,
                                                     class_sep=1.0)),
    "moons_24b": ("make_moons", dict(noise=0.24)),
    "circles_56": ("make_circles", dict(noise=0.17, factor=0.56)),
    "quantiles2c": ("make_gaussian_quantiles", dict(n_features=5, n_classes=2)),
    "blobs4_9": ("make_blobs", dict(n_features=9, centers=4, cluster_std=4.0)),
    "classification3r": ("make_classification", dict(n_features=17, n_informative=9, n_redundant=2, n_classes=3,
                                                     flip_y=0.02)),
    "moons_19": ("make_moons", dict(noise=0.19)),
    "circles_62": ("make_circles", dict(noise=0.23, factor=0.62)),
    "quantiles4e": ("make_gaussian_quantiles", dict(n_features=4, n_classes=4)),
    "blobs7_5": ("make_blobs", dict(n_features=5, centers=7, cluster_std=3.0)),
    "classification4e": ("make_classification", dict(n_features=13, n_informative=8, n_classes=4, class_sep=1.1)),
    "moons_26b": ("make_moons", dict(noise=0.26)),
    "circles_47": ("make_circles", dict(noise=0.19, factor=0.47)),
    "quantiles2d": ("make_gaussian_quantiles", dict(n_features=7, n_classes=2)),
    "blobs5_4": ("make_blobs", dict(n_features=4, centers=5, cluster_std=2.5)),
    "classification5t": ("make_classification", dict(n_features=16, n_informative=9, n_redundant=2, n_classes=5,
                                                     class_sep=1.0)),
    "moons_21b": ("make_moons", dict(noise=0.21)),
    "circles_53": ("make_circles", dict(noise=0.16, factor=0.53)),
    "quantiles3d": ("make_gaussian_quantiles", dict(n_features=8, n_classes=3)),
    "blobs6_8": ("make_blobs", dict(n_features=8, centers=6, cluster_std=3.5)),
    "classification3g": ("make_classification", dict(n_features=12, n_informative=7, n_classes=3, flip_y=0.03)),
    "moons_23b": ("make_moons", dict(noise=0.23)),
    "circles_57": ("make_circles", dict(noise=0.21, factor=0.57)),
    "quantiles4f": ("make_gaussian_quantiles", dict(n_features=6, n_classes=4)),
    "blobs4_6": ("make_blobs", dict(n_features=6, centers=4, cluster_std=3.0)),
    "classification4h": ("make_classification", dict(n_features=15, n_informative=8, n_classes=4, class_sep=0.9)),
    "moons_27b": ("make_moons", dict(noise=0.27)),
    "circles_62b": ("make_circles", dict(noise=0.17, factor=0.62)),
    "quantiles3e": ("make_gaussian_quantiles", dict(n_features=5, n_classes=3)),
    "blobs5_8c": ("make_blobs", dict(n_features=8, centers=5, cluster_std=3.0)),
    "classification5h": ("make_classification", dict(n_features=18, n_informative=10, n_classes=5)),
    "moons_20b": ("make_moons", dict(noise=0.2)),
    "circles_58b": ("make_circles", dict(noise=0.14, factor=0.58)),
    "quantiles2e": ("make_gaussian_quantiles", dict(n_features=9, n_classes=2)),
    "blobs6_5b": ("make_blobs", dict(n_features=5, centers=6, cluster_std=3.0)),
    "classification3t": ("make_classification", dict(n_features=14, n_informative=6, n_classes=3, flip_y=0.02)),
    "moons_22c": ("make_moons", dict(noise=0.22)),
    "circles_49c": ("make_circles", dict(noise=0.19, factor=0.49)),
    "quantiles3f": ("make_gaussian_quantiles", dict(n_features=7, n_classes=3)),
    "blobs5_7d": ("make_blobs", dict(n_features=7, centers=5, cluster_std=3.0)),
    "classification4t": ("make_classification", dict(n_features=16, n_informative=9, n_classes=4)),
    "moons_24c": ("make_moons", dict(noise=0.24)),
    "circles_52c": ("make_circles", dict(noise=0.16, factor=0.52)),
    "quantiles4g": ("make_gaussian_quantiles", dict(n_features=6, n_classes=4)),
    "blobs4_9e": ("make_blobs", dict(n_features=9, centers=4, cluster_std=3.0)),
    "classification3u": ("make_classification", dict(n_features=12, n_informative=7, n_classes=3)),
    "moons_26d": ("make_moons", dict(noise=0.26)),
    "circles_55d": ("make_circles", dict(noise=0.21, factor=0.55)),
    "quantiles2g": ("make_gaussian_quantiles", dict(n_features=8, n_classes=2)),
    "blobs3_6f": ("make_blobs", dict(n_features=6, centers=3, cluster_std=3.0)),
    "classification5u": ("make_classification", dict(n_features=15, n_informative=8, n_classes=5)),
    "moons_29d": ("make_moons", dict(noise=0.29)),
    "circles_47d": ("make_circles", dict(noise=0.17, factor=0.47)),
    "quantiles3g": ("make_gaussian_quantiles", dict(n_features=5, n_classes=3)),
    "blobs5_8f": ("make_blobs", dict(n_features=8, centers=5, cluster_std=3.0)),
    "classification4u": ("make_classification", dict(n_features=14, n_informative=10, n_classes=4)),
    "moons_23d": ("make_moons", dict(noise=0.23)),
    "circles_50d": ("make_circles", dict(noise=0.2, factor=0.5)),
    "quantiles4h": ("make_gaussian_quantiles", dict(n_features=7, n_classes=4)),
    "blobs6_6g": ("make_blobs", dict(n_features=6, centers=6, cluster_std=3.0)),
    "classification3v": ("make_classification", dict(n_features=15, n_informative=9, n_redundant=2, n_classes=3)),
    "moons_25e": ("make_moons", dict(noise=0.25)),
    "circles_60e": ("make_circles", dict(noise=0.18, factor=0.6)),
    "quantiles2h": ("make_gaussian_quantiles", dict(n_features=5, n_classes=2)),
    "blobs4_10g": ("make_blobs", dict(n_features=10, centers=4, cluster_std=3.0)),
    "classification4w": ("make_classification", dict(n_features=13, n_informative=8, n_redundant=2, n_classes=4)),
    "moons_21f": ("make_moons", dict(noise=0.21)),
    "circles_52f": ("make_circles", dict(noise=0.15, factor=0.52)),
    "quantiles3h": ("make_gaussian_quantiles", dict(n_features=6, n_classes=3)),
    "blobs5_5h": ("make_blobs", dict(n_features=5, centers=5, cluster_std=3.0)),
    "classification3x": ("make_classification", dict(n_features=12, n_informative=6, n_redundant=3, n_classes=3)),
    "moons_27g": ("make_moons", dict(noise=0.27)),
    "circles_56g": ("make_circles", dict(noise=0.2, factor=0.56)),
    "quantiles4i": ("make_gaussian_quantiles", dict(n_features=8, n_classes=4)),
    "blobs3_7i": ("make_blobs", dict(n_features=7, centers=3, cluster_std=3.0)),
}


def load_data(name: str, seed: int, train_subset: Optional[int] = None):
    """(x_train, y_train, x_val, y_val, classes) as float32/int64 tensors, standardised on train."""
    import numpy as np
    import torch
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name in GENERATED:
        make, kwargs = GENERATED[name]
        x, y = getattr(datasets, make)(n_samples=600, random_state=seed, **kwargs)
        if name == "hastie":
            y = (y > 0).astype(int)  # labels -1/1
    else:
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    if train_subset:
        xt, yt = xt[:train_subset], yt[:train_subset]
    scaler = StandardScaler().fit(xt)
    xt, xv = scaler.transform(xt), scaler.transform(xv)
    t = lambda a, dt: torch.tensor(np.asarray(a), dtype=dt)  # noqa: E731
    return t(xt, torch.float32), t(yt, torch.long), t(xv, torch.float32), t(yv, torch.long), int(len(set(y)))


def mlp(n_in: int, n_out: int, spec: dict):
    from torch import nn

    layers, width = [], n_in
    for _ in range(spec["depth"]):
        layers += [nn.Linear(width, spec["width"])]
        if spec["batch_norm"]:
            layers.append(nn.BatchNorm1d(spec["width"]))
        layers += [nn.ReLU(), nn.Dropout(spec["dropout"])]
        width = spec["width"]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def optimizer_for(params, spec: dict):
    import torch

    opt, lr, wd = spec["optimizer"], spec["lr"], spec["weight_decay"]
    if opt == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=spec["momentum"], nesterov=spec["nesterov"], weight_decay=wd)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[opt](params, lr=lr, weight_decay=wd)


def scheduler_for(opt, spec: dict, total_steps: int):
    import torch

    if spec["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if spec["scheduler"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec["lr"], total_steps=total_steps)
    if spec["scheduler"] == "linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total_steps))
    return None


def _finite(v: float) -> float:
    return v if math.isfinite(v) else float("inf")


# ------------------------------------------------------------------------------------------ plain

def train_plain(spec: dict, log: bool = False) -> list[float]:
    """A plain PyTorch loop; with `log`, mlflow.log_metric once an epoch (loss, acc, val_loss, val_acc)."""
    import mlflow
    import torch
    import torch.nn.functional as F

    torch.manual_seed(spec["seed"])
    xt, yt, xv, yv, classes = load_data(spec["dataset"], spec["seed"], spec["train_subset"])
    model = mlp(xt.shape[1], classes, spec)
    opt = optimizer_for(model.parameters(), spec)
    steps_per_epoch = math.ceil(len(xt) / spec["batch_size"])
    sched = scheduler_for(opt, spec, spec["epochs"] * steps_per_epoch)
    gen = torch.Generator().manual_seed(spec["seed"])
    if log:
        mlflow.log_params({k: spec[k] for k in ("lr", "batch_size", "epochs", "optimizer", "momentum",
                                                 "weight_decay", "dropout")})
    curve = []
    for epoch in range(1, spec["epochs"] + 1):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total, correct = 0.0, 0
        for i in range(0, len(xt), spec["batch_size"]):
            idx = order[i:i + spec["batch_size"]]
            out = model(xt[idx])
            loss = F.cross_entropy(out, yt[idx], label_smoothing=spec["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            if spec["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), spec["grad_clip"])
            opt.step()
            if sched:
                sched.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == yt[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            out = model(xv)
            val_loss = F.cross_entropy(out, yv).item()
            val_acc = (out.argmax(1) == yv).float().mean().item()
        curve.append(_finite(val_loss))
        if log:
            mlflow.log_metric("loss", total / len(xt), step=epoch)
            mlflow.log_metric("acc", correct / len(xt), step=epoch)
            mlflow.log_metric("val_loss", val_loss, step=epoch)
            mlflow.log_metric("val_acc", val_acc, step=epoch)
    return curve


# -------------------------------------------------------------------------------------- lightning

def train_lightning(spec: dict, logger=None) -> list[float]:
    """A LightningModule trained by lightning.Trainer; `logger` an MLFlowLogger or None."""
    import lightning as L
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    L.seed_everything(spec["seed"], verbose=False)
    xt, yt, xv, yv, classes = load_data(spec["dataset"], spec["seed"], spec["train_subset"])
    steps_per_epoch = math.ceil(len(xt) / spec["batch_size"])

    class LitMLP(L.LightningModule):
        def __init__(self, lr, momentum, weight_decay, batch_size, epochs, dropout, optimizer, nesterov, scheduler,
                     width, depth, batch_norm, label_smoothing, dataset, seed):
            super().__init__()
            self.save_hyperparameters()
            self.net = mlp(xt.shape[1], classes, spec)
            self.curve = []

        def training_step(self, batch, _):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y, label_smoothing=self.hparams.label_smoothing)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            out = self.net(x)
            loss = F.cross_entropy(out, y)
            self.log("val_loss", loss, on_epoch=True)
            self.log("val_acc", (out.argmax(1) == y).float().mean(), on_epoch=True)

        def on_validation_epoch_end(self):
            if not self.trainer.sanity_checking:
                self.curve.append(_finite(float(self.trainer.callback_metrics["val_loss"])))

        def configure_optimizers(self):
            opt = optimizer_for(self.parameters(), spec)
            sched = scheduler_for(opt, spec, spec["epochs"] * steps_per_epoch)
            if sched is None:
                return opt
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    keys = ("lr", "momentum", "weight_decay", "batch_size", "epochs", "dropout", "optimizer", "nesterov",
            "scheduler", "width", "depth", "batch_norm", "label_smoothing", "dataset", "seed")
    module = LitMLP(**{k: spec[k] for k in keys})
    gen = torch.Generator().manual_seed(spec["seed"])
    train = DataLoader(TensorDataset(xt, yt), batch_size=spec["batch_size"], shuffle=True, generator=gen)
    val = DataLoader(TensorDataset(xv, yv), batch_size=512)
    callbacks = [L.pytorch.callbacks.LearningRateMonitor(logging_interval="step")] if logger else []
    trainer = L.Trainer(max_epochs=spec["epochs"], accelerator="cpu", devices=1, logger=logger or False,
                        callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, log_every_n_steps=5, num_sanity_val_steps=0,
                        gradient_clip_val=spec["grad_clip"])
    trainer.fit(module, train, val)
    curve = module.curve
    return curve + [float("inf")] * (spec["epochs"] - len(curve))  # a run Lightning stopped (nan loss)


# ---------------------------------------------------------------------------------------------- hf

def train_hf(spec: dict, log: bool = False, output_dir: Optional[str] = None) -> list[float]:
    """transformers.Trainer on a tiny PreTrainedModel; with `log`, report_to=["mlflow"]."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainingArguments
    from transformers.modeling_outputs import SequenceClassifierOutput

    xt, yt, xv, yv, classes = load_data(spec["dataset"], spec["seed"], spec["train_subset"])

    class TinyMLPConfig(PretrainedConfig):
        model_type = "tiny-mlp"

        def __init__(self, n_in=4, n_out=2, width=64, depth=2, dropout=0.0, batch_norm=False, **kwargs):
            super().__init__(**kwargs)
            self.n_in, self.n_out, self.width, self.depth = n_in, n_out, width, depth
            self.dropout, self.batch_norm = dropout, batch_norm

    class TinyMLP(PreTrainedModel):
        config_class = TinyMLPConfig

        def __init__(self, config):
            super().__init__(config)
            self.net = mlp(config.n_in, config.n_out, {"width": config.width, "depth": config.depth,
                                                       "dropout": config.dropout, "batch_norm": config.batch_norm})

        def _init_weights(self, module):  # keep torch's default initialisation (as the other generators)
            pass

        def forward(self, features=None, labels=None):
            logits = self.net(features)
            loss = F.cross_entropy(logits, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    class Rows(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"features": self.x[i], "labels": self.y[i]}

    transformers.set_seed(spec["seed"])
    model = TinyMLP(TinyMLPConfig(n_in=xt.shape[1], n_out=classes, width=spec["width"], depth=spec["depth"],
                                  dropout=spec["dropout"], batch_norm=spec["batch_norm"]))

    def accuracy(pred):
        return {"accuracy": float((np.argmax(pred.predictions, 1) == pred.label_ids).mean())}

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=output_dir or tmp, report_to=["mlflow"] if log else [], eval_strategy="epoch",
            save_strategy="no", logging_strategy="steps", logging_steps=5, num_train_epochs=spec["epochs"],
            learning_rate=spec["lr"], per_device_train_batch_size=spec["batch_size"], per_device_eval_batch_size=512,
            weight_decay=spec["weight_decay"], lr_scheduler_type=spec["scheduler"],
            optim={"adamw": "adamw_torch", "sgd": "sgd"}[spec["optimizer"]],
            # the Trainer's SGD takes its momentum from optim_args (transformers' _get_sgd)
            optim_args=(f"momentum={spec['momentum']},nesterov={spec['nesterov']}"
                        if spec["optimizer"] == "sgd" and spec["momentum"] > 0 else None),
            max_grad_norm=spec["grad_clip"] or 0.0, label_smoothing_factor=spec["label_smoothing"],
            seed=spec["seed"], data_seed=spec["seed"], use_cpu=True, disable_tqdm=True,
            dataloader_num_workers=0, run_name=spec.get("name"))
        trainer = Trainer(model=model, args=args, train_dataset=Rows(xt, yt), eval_dataset=Rows(xv, yv),
                          compute_metrics=accuracy)
        trainer.remove_callback(transformers.PrinterCallback)  # it prints every log line
        trainer.train()
        curve = [_finite(h["eval_loss"]) for h in trainer.state.log_history if "eval_loss" in h]
    return curve + [float("inf")] * (spec["epochs"] - len(curve))


TRAIN = {"lightning": train_lightning, "hf": train_hf, "plain": train_plain}


# ------------------------------------------------------------------------------------ the changes

HF_SCHEDULES = ("linear", "cosine", "constant")
TORCH_SCHEDULES = ("constant", "cosine", "onecycle", "linear")
KNOWN = ("lr", "momentum", "nesterov", "weight_decay", "batch_size", "epochs", "dropout", "batch_norm",
         "scheduler", "label_smoothing", "grad_clip", "optimizer")


def apply_change(library: str, spec: dict, change: dict) -> tuple[Optional[dict], Optional[int], str]:
    """(new spec, early-stopping patience, why not) for an engine change; None when the library's
    run cannot express it (warm-up, augmentation, an unknown key, momentum on AdamW ...)."""
    new, patience = dict(spec), None
    for key, value in change.items():
        if key == "early_stopping_patience" and isinstance(value, int) and value >= 1:
            patience = value
            continue
        if key not in KNOWN:
            return None, None, f"{key}={value!r}"
        new[key] = value
    if new["optimizer"] not in (("adamw", "sgd") if library == "hf" else ("sgd", "adam", "adamw")):
        return None, None, f"optimizer={new['optimizer']!r}"
    if new["scheduler"] not in (HF_SCHEDULES if library == "hf" else TORCH_SCHEDULES):
        return None, None, f"scheduler={new['scheduler']!r}"
    if new["optimizer"] != "sgd":
        new["momentum"], new["nesterov"] = 0.0, False
    try:
        new["batch_size"], new["epochs"] = int(new["batch_size"]), int(new["epochs"])
        for k in ("lr", "momentum", "weight_decay", "dropout", "label_smoothing"):
            new[k] = float(new[k])
    except (TypeError, ValueError):
        return None, None, f"a value of {change!r}"
    if not (new["lr"] > 0 and 0 <= new["momentum"] < 1 and new["weight_decay"] >= 0 and new["batch_size"] >= 1
            and 1 <= new["epochs"] <= 10 * spec["epochs"] and 0 <= new["dropout"] < 1):
        return None, None, f"out of range: {change!r}"
    return new, patience, ""


def candidate_changes(spec: dict) -> dict[str, dict]:
    """The vocabulary of single changes (engine keys) for the label and the baselines: 8 of LCBench's
    12 (no weight decay /10, batch /4, x4, dropout down), to keep the retraining to minutes."""
    lr, wd, d = spec["lr"], spec["weight_decay"], spec["dropout"]
    return {
        "lr x0.1": {"lr": lr * 0.1}, "lr x0.3": {"lr": lr * 0.3}, "lr x3": {"lr": lr * 3}, "lr x10": {"lr": lr * 10},
        "weight decay x10": {"weight_decay": max(wd * 10, 1e-3)}, "weight decay off": {"weight_decay": 0.0},
        "momentum 0.9": {"momentum": 0.9}, "dropout up": {"dropout": 0.3 if d < 0.2 else min(0.9, d + 0.2)},
    }


# ------------------------------------------------------------------------------------ retraining

class Retrainer:
    """Val_loss curves by (library, spec), cached in var/devset_cache_<library>.json (one file a
    library, so the libraries can be measured by separate processes at once)."""

    def __init__(self, folder: Path = CACHE_DIR):
        self.folder = folder
        self.caches: dict[str, dict] = {}
        self.trained, self.seconds = 0, 0.0

    def _cache(self, library: str) -> dict:
        if library not in self.caches:
            path = self.folder / f"devset_cache_{library}.json"
            self.caches[library] = json.loads(path.read_text()) if path.is_file() else {}
        return self.caches[library]

    def remember(self, library: str, spec: dict, curve: list[float]):
        self._cache(library).setdefault(self.key(library, spec), [v if math.isfinite(v) else "inf" for v in curve])

    @staticmethod
    def key(library: str, spec: dict) -> str:
        extra = {}
        if library == "hf" and spec.get("optimizer") == "sgd":
            extra["sgd_optim_args"] = 1  # since 2 Dec: momentum reaches the Trainer's SGD (before: plain SGD)
        text = json.dumps({"library": library, **{k: v for k, v in spec.items() if k != "name"}, **extra},
                          sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()

    def curve(self, library: str, spec: dict) -> list[float]:
        k, cache = self.key(library, spec), self._cache(library)
        if k not in cache:
            t0 = time.perf_counter()
            with quiet():
                curve = TRAIN[library](spec)
            cache[k] = [v if math.isfinite(v) else "inf" for v in curve]
            self.trained += 1
            self.seconds += time.perf_counter() - t0
        return [float(v) for v in cache[k]]

    def best(self, library: str, spec: dict, patience: Optional[int] = None) -> float:
        curve = self.curve(library, spec)
        if patience:
            best, since = math.inf, 0
            for v in curve:
                if v < best:
                    best, since = v, 0
                else:
                    since += 1
                    if since >= patience:
                        break
            return best
        return min(curve)

    def save(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        for library, cache in self.caches.items():
            path = self.folder / f"devset_cache_{library}.json"
            if path.is_file():  # keep what another process (another part, another library) saved meanwhile
                cache.update({k: v for k, v in json.loads(path.read_text()).items() if k not in cache})
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            tmp.replace(path)


@contextlib.contextmanager
def quiet():
    """Lightning's and transformers' banners and warnings off while training."""
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers",
                                              "lightning.pytorch.utilities.rank_zero", "mlflow", "alembic",
                                              "lightning.fabric.utilities.rank_zero", "pytorch_lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


# ------------------------------------------------------------------------------------- MLflow runs

@contextlib.contextmanager
def environ(**values):
    """Environment variables set for the block, restored after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def mlflow_store(tracking_uri: Optional[str] = None):
    """A real MLflow store: the given URI, or SQLite in a temporary directory (removed after)."""
    import mlflow

    with contextlib.ExitStack() as stack:
        if tracking_uri is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="devset-mlflow-"))
            tracking_uri = f"sqlite:///{tmp}/mlflow.db"
            artifacts = f"{tmp}/artifacts"
        else:
            artifacts = tempfile.mkdtemp(prefix="devset-artifacts-")
        stack.enter_context(environ(MLFLOW_TRACKING_URI=tracking_uri))
        old_uri = mlflow.get_tracking_uri()
        stack.callback(mlflow.set_tracking_uri, old_uri)
        mlflow.set_tracking_uri(tracking_uri)
        client = mlflow.MlflowClient(tracking_uri)
        if client.get_experiment_by_name("devset") is None:
            client.create_experiment("devset", artifact_location=artifacts)
        yield tracking_uri


def log_run(library: str, spec: dict, tracking_uri: str) -> tuple[str, list[float]]:
    """Train and log one run with the library's own MLflow logging; (MLflow run id, val_loss curve)."""
    import mlflow

    with quiet():
        if library == "plain":
            mlflow.set_experiment("devset")
            with mlflow.start_run(run_name=spec.get("name")) as run:
                curve = train_plain(spec, log=True)
            return run.info.run_id, curve
        if library == "lightning":
            from lightning.pytorch.loggers import MLFlowLogger

            logger = MLFlowLogger(experiment_name="devset", tracking_uri=tracking_uri, run_name=spec.get("name"))
            curve = train_lightning(spec, logger=logger)
            return logger.run_id, curve
        with environ(MLFLOW_EXPERIMENT_NAME="devset", HF_MLFLOW_LOG_ARTIFACTS="0"):
            curve = train_hf(spec, log=True)
        return mlflow.last_active_run().info.run_id, curve


POLISH_STEPS = 3


def tuned_spec(library: str, spec: dict, retrainer: "Retrainer") -> dict:
    """The spec moved to its best single candidate change while that helps by HELP or more (at most
    POLISH_STEPS moves), measured with the plain loop (the same model, optimizer and schedule, and
    ~5x cheaper than Lightning or the Trainer): a run that no single change is expected to improve.
    Its label is still measured with its own library; only changes that library can express are tried."""
    spec = {k: v for k, v in spec.items() if k != "name"}
    own, library = library, "plain"
    best = retrainer.best(library, spec)
    for _ in range(POLISH_STEPS):
        tried = []
        for change in candidate_changes(spec).values():
            new, _, _ = apply_change(library, spec, change)
            if new is not None and new != spec and apply_change(own, spec, change)[0] is not None:
                tried.append((retrainer.best(library, new), new))
        if not tried:
            break
        value, new = min(tried, key=lambda t: t[0])
        if improvement(best, value) < HELP:
            break
        spec, best = new, value
    retrainer.save()
    return spec


def runs(libraries=LIBRARIES, regimes=tuple(REGIMES), retrainer=None, parts=PARTS):
    """(library, part, name, regime, spec) of every logger run of the given parts."""
    out = []
    for library in libraries:
        for part, data in (("dev", DEV_DATA[library]), ("held-out", HELD_OUT_DATA[library])):
            if part not in parts:
                continue
            for dataset, seed in data:
                for regime in regimes:
                    spec = spec_for(library, regime, dataset, seed)
                    if regime.startswith("tuned"):
                        spec = tuned_spec(library, spec, retrainer or Retrainer())
                    spec["name"] = f"{library}/{dataset}{seed}/{regime}"
                    out.append((library, part, spec["name"], regime, spec))
    return out


def candidate_bests(library: str, base_spec: dict, base: float, retrainer: Retrainer) -> dict:
    """Best val_loss after each candidate change of the vocabulary (None where the library cannot
    express it; `base` where the change leaves the run as it was), retrained or from the cache."""
    results = {}
    for cname, change in candidate_changes(base_spec).items():
        new, patience, _ = apply_change(library, base_spec, change)
        results[cname] = None if new is None else (base if new == base_spec and not patience
                                                   else retrainer.best(library, new, patience))
    return results


def cases(advise, read_run, retrainer: Retrainer, tracking_uri: str, selection=None, progress=print) -> list[Case]:
    """Log every run, read it back with read_run (as advise --mlflow-run), advise, retrain the top
    change and every candidate."""
    out = []
    for library, part, name, regime, spec in selection or runs():
        t0 = time.perf_counter()
        run_id, curve = log_run(library, spec, tracking_uri)
        base_spec = {k: v for k, v in spec.items() if k != "name"}
        retrainer.remember(library, base_spec, curve)
        base = min(curve)
        answer = advise(read_run(run_id, tracking_uri=tracking_uri))
        rec = answer["recommendations"][0] if answer["recommendations"] else None
        rec_best, why = None, ""
        if rec:
            new, patience, why = apply_change(library, base_spec, rec["change"])
            rec_best = retrainer.best(library, new, patience) if new is not None else None
        results = candidate_bests(library, base_spec, base, retrainer)
        retrainer.save()
        case = Case(source=library, part=part, name=name, regime=regime, base=base, candidates=results, rec=rec,
                    rec_best=rec_best, diagnosis=answer["diagnoses"][0]["id"] if answer["diagnoses"] else "",
                    notes={"why_na": why, "run_id": run_id, "best_epoch": curve.index(base) + 1 if math.isfinite(base) else None,
                           "seconds": time.perf_counter() - t0})
        out.append(case)
        if progress:
            progress(f"  {name:36s} {case.diagnosis:14s} {(rec or {}).get('rule', '(none)'):34s} {case.status:8s} "
                     f"{'problem' if case.problem else 'tuned'} ({case.notes['seconds']:.0f}s)")
    return out


def train_only(selection, retrainer: Retrainer, progress=print) -> None:
    """Fill the retraining cache for the selected runs (each run and every candidate change) without
    logging or advising them: a held-out part can be trained ahead of its measurement unseen."""
    for library, part, name, regime, spec in selection:
        t0 = time.perf_counter()
        base_spec = {k: v for k, v in spec.items() if k != "name"}
        candidate_bests(library, base_spec, retrainer.best(library, base_spec), retrainer)
        retrainer.save()
        if progress:
            progress(f"  trained {name} ({time.perf_counter() - t0:.0f}s)")


def run(advise, tracking_uri: Optional[str] = None, libraries=LIBRARIES, progress=print, parts=PARTS,
        only_train: bool = False) -> list[Case]:
    """All logger runs of the libraries and parts in a fresh (or the given) MLflow store, with the
    shared retraining cache; `only_train`: fill the cache only (no run logged or advised)."""
    from tracking.mlflow_io import read_run

    retrainer = Retrainer()
    if only_train:
        train_only(runs(libraries, retrainer=retrainer, parts=parts), retrainer, progress)
        if progress:
            progress(f"loggers: {retrainer.trained} trainings this time ({retrainer.seconds:.0f}s), nothing advised")
        return []
    with mlflow_store(tracking_uri) as uri:
        found = cases(advise, read_run, retrainer, uri, runs(libraries, retrainer=retrainer, parts=parts), progress)
    if progress:
        progress(f"loggers: {len(found)} runs, {retrainer.trained} trainings this time ({retrainer.seconds:.0f}s)")
    return found
