"""Entry-point parameters <-> DESIGN.md run-config keys (pure Python).

A parameter named like a DESIGN key (or a common alias: `learning_rate`, `max_epochs`,
`per_device_train_batch_size`, ...) is read as that key, so that the rules engine sees the
run's config and "Apply…" can change it. Names compare case-insensitively, `-` as `_`.
"""
from __future__ import annotations

ALIASES: dict[str, tuple[str, ...]] = {
    "lr": ("lr", "learning_rate", "base_lr", "max_lr", "eta"),
    "weight_decay": ("weight_decay", "wd", "l2", "l2_reg", "l2_penalty"),
    "batch_size": ("batch_size", "bs", "train_batch_size", "per_device_train_batch_size", "batch"),
    "epochs": ("epochs", "max_epochs", "num_epochs", "n_epochs", "num_train_epochs", "epoch_count"),
    "optimizer": ("optimizer", "optim", "opt", "optimizer_name"),
    "momentum": ("momentum",),
    "nesterov": ("nesterov",),
    "dropout": ("dropout", "dropout_rate", "dropout_prob", "dropout_p", "drop_rate", "p_dropout"),
    "warmup_epochs": ("warmup_epochs",),
    "scheduler": ("scheduler", "lr_scheduler", "lr_scheduler_type", "schedule", "lr_schedule"),
    "batch_norm": ("batch_norm", "batchnorm", "use_batch_norm"),
    "label_smoothing": ("label_smoothing", "label_smoothing_factor"),
    "grad_clip": ("grad_clip", "max_grad_norm", "gradient_clip_val", "clip_grad_norm", "clip_norm"),
    "early_stopping_patience": ("early_stopping_patience", "patience"),
    "augment": ("augment", "augmentation", "data_augmentation"),
}
_BY_NAME = {alias: key for key, names in ALIASES.items() for alias in names}


def normal(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def design_key(name: str) -> str | None:
    """The DESIGN key a parameter (or logged MLflow param) stands for, or None."""
    return _BY_NAME.get(normal(name))


def key_map(names) -> dict[str, str]:
    """{DESIGN key: parameter name} for the names that map; the first name wins per key
    (an exact DESIGN name wins over an alias)."""
    names = list(names)
    chosen: dict[str, str] = {}
    for name in sorted(names, key=lambda n: (normal(n) != design_key(n), names.index(n))):
        key = design_key(name)
        if key and key not in chosen:
            chosen[key] = name
    return chosen


def config_from(values: dict, mapping: dict[str, str]) -> dict:
    """The run config the rules engine sees: {DESIGN key: value of its parameter}."""
    return {key: values[name] for key, name in mapping.items() if name in values}


def change_to_parameters(change: dict, mapping: dict[str, str]) -> tuple[dict, list[str]]:
    """A recommendation's change as parameter values, and the DESIGN keys no parameter takes."""
    params, missing = {}, []
    for key, value in change.items():
        if key in mapping:
            params[mapping[key]] = value
        else:
            missing.append(key)
    return params, missing
