"""Built-in data sets, none downloaded: small enough to sit on the device as tensors.

`load_dataset(config, device)` returns a `Dataset`: standardised inputs (train statistics),
a seeded stratified train/val split (`val_fraction`), an optional `train_subset`, and the
augmentation the data set has (digits: random one-pixel shifts and pixel noise; tables:
gaussian input noise). Synthetic data (moons, spirals, classification) is generated with a
fixed seed, so `seed` changes the split, the initialisation and the batches, not the data.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

IMAGE_SHAPES = {"digits": (1, 8, 8)}
TABLE_NOISE = 0.1   # std of the gaussian input noise, in standardised units
PIXEL_NOISE = 0.05


class DatasetError(ValueError):
    """A data set that cannot be built from the config (bad CSV, missing label column...)."""


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_classes: int
    image_shape: Optional[tuple] = None
    # augment(indices, generator) -> a batch of augmented inputs; None when the set has none
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])


# ---------------------------------------------------------------- raw arrays (cached)

@functools.lru_cache(maxsize=None)
def _sklearn(name):
    from sklearn import datasets as skd

    loader = {"digits": skd.load_digits, "breast_cancer": skd.load_breast_cancer, "wine": skd.load_wine}[name]
    bunch = loader()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _moons():
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1000, noise=0.2, random_state=0)
    return x.astype(np.float32), y.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _spirals(n_per_class=400, classes=3):
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for k in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(k * 2 * np.pi / classes, k * 2 * np.pi / classes + 3 * np.pi, n_per_class)
        t = t + rng.normal(0, 0.15, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(n_per_class, k))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


@functools.lru_cache(maxsize=None)
def _classification():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=2000, n_features=20, n_informative=10, n_redundant=4,
                               n_classes=4, n_clusters_per_class=2, class_sep=1.0, flip_y=0.02,
                               random_state=0)
    return x.astype(np.float32), y.astype(np.int64)


def _csv_limits():
    """The upload's limits (settings CSV_MAX_*) when Django is configured, else the reader's defaults."""
    from tracking.datasets import CsvLimits

    try:
        from django.conf import settings

        if settings.configured:
            return CsvLimits.from_settings(settings)
    except ImportError:
        pass
    return CsvLimits()


def _csv_name(path):
    """The file's name as uploaded (its stored summary), never the server path."""
    import json
    from pathlib import Path

    try:
        return json.loads(Path(path).with_suffix(".json").read_text()).get("name") or "the uploaded CSV"
    except (OSError, ValueError):
        return "the uploaded CSV"


def _csv(path, label):
    """The upload, read by the same reader (and limits) as the upload form used."""
    from tracking.datasets import CsvError, read_csv

    name = _csv_name(path)
    try:
        x, y, _ = read_csv(path, label, name=name, limits=_csv_limits())
    except FileNotFoundError:
        raise DatasetError(f"{name}: the uploaded file is gone") from None
    except OSError as exc:
        raise DatasetError(f"{name}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except CsvError as exc:
        raise DatasetError(str(exc)) from None
    return x, y


def raw_arrays(config):
    name = config["dataset"]
    if name in ("digits", "breast_cancer", "wine"):
        return _sklearn(name)
    if name == "moons":
        return _moons()
    if name == "spirals":
        return _spirals()
    if name == "classification":
        return _classification()
    if name == "csv":
        return _csv(config["csv_path"], config["csv_label"])
    raise DatasetError(f"unknown data set {name!r}")


# ---------------------------------------------------------------- split, scale, augment

def _split(y, val_fraction, seed):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    n_val = max(int(round(val_fraction * len(y))), len(np.unique(y)) if stratify is not None else 1)
    try:
        return train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DatasetError(f"cannot split {len(y)} examples with val_fraction {val_fraction}: {exc}") from None


def _shifted_images(raw_images):
    """The 9 one-pixel shifts (dy, dx in -1..1) of every image, zero-padded: (9, N, H, W)."""
    n, h, w = raw_images.shape
    padded = np.zeros((n, h + 2, w + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = raw_images
    return np.stack([padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1)])


def load_dataset(config, device="cpu") -> Dataset:
    """The config's data set, split, standardised and on `device`."""
    x, y = raw_arrays(config)
    train_idx, val_idx = _split(y, config["val_fraction"], config["seed"])
    if config.get("train_subset"):
        train_idx = train_idx[: config["train_subset"]]
    mean = x[train_idx].mean(axis=0)
    std = x[train_idx].std(axis=0)
    std[std < 1e-6] = 1.0

    def to(a, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    x_train, x_val = to((x[train_idx] - mean) / std), to((x[val_idx] - mean) / std)
    y_train, y_val = to(y[train_idx], torch.long), to(y[val_idx], torch.long)
    n_classes = int(y.max()) + 1
    shape = IMAGE_SHAPES.get(config["dataset"])
    augment = None
    if config.get("augment"):
        if shape is not None:
            augment = _image_augment(x[train_idx], mean, std, shape, to)
        else:
            augment = _noise_augment(x_train, TABLE_NOISE)
    return Dataset(config["dataset"], x_train, y_train, x_val, y_val, n_classes, shape, augment)


def _noise_augment(x_train, noise):
    def augment(idx, generator):
        batch = x_train[idx]
        return batch + noise * torch.randn(batch.shape, generator=generator, device="cpu").to(batch.device)

    return augment


def _image_augment(raw_train, mean, std, shape, to):
    _, h, w = shape
    shifted = _shifted_images(raw_train.reshape(-1, h, w)).reshape(9, len(raw_train), h * w)
    shifted = to((shifted - mean) / std)  # (9, N, H*W), standardised like the inputs

    def augment(idx, generator):
        which = torch.randint(0, 9, (len(idx),), generator=generator).to(shifted.device)
        batch = shifted[which, idx]
        return batch + PIXEL_NOISE * torch.randn(batch.shape, generator=generator).to(batch.device)

    return augment
