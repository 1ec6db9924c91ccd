"""Hand-built run inputs: textbook curve shapes on a per-epoch axis, with seeded noise."""
import numpy as np

SPE = 20  # steps per epoch of the hand-built step series


def epochs(values):
    return [[i + 1, float(v)] for i, v in enumerate(values)]


def steps_from_epochs(epoch_values, noise=0.05, seed=0):
    """A per-step train_loss whose epoch means follow `epoch_values`."""
    rng = np.random.default_rng(seed)
    per_step = np.repeat(np.asarray(epoch_values, float), SPE)
    per_step = per_step * (1 + noise * rng.standard_normal(per_step.size))
    return [[i, float(v)] for i, v in enumerate(per_step)]


def decay(n, start=2.3, end=0.1, tau=4.0, offset=0):
    e = np.arange(1, n + 1) + offset
    return end + (start - end) * np.exp(-e / tau)


def run(train=None, val=None, config=None, status="finished", step_train=True, spe=SPE, **extra):
    metrics = {}
    if train is not None:
        if step_train:
            metrics["train_loss"] = steps_from_epochs(train)
        metrics["train_loss_epoch"] = epochs(train)
    if val is not None:
        metrics["val_loss"] = epochs(val)
    metrics.update(extra)
    return {"config": dict(config or {"optimizer": "adam", "lr": 0.001, "epochs": len(val if val is not None else train)}),
            "metrics": metrics, "steps_per_epoch": spe if step_train else None, "status": status}


def healthy(n=30):
    return decay(n, end=0.05), decay(n, end=0.12)


def overfitting(n=40):
    train = decay(n, end=0.01)
    val = decay(n, end=0.25, tau=3.0)
    val[12:] = val[12] * (1 + 0.04 * np.arange(n - 12))  # val rises ~1.5x from epoch 13
    return train, val


def not_converged(n=20):
    e = np.arange(1, n + 1)
    return 2.3 - 0.08 * e, 2.35 - 0.08 * e  # still falling linearly at the end


def unstable(n=30, seed=1):
    rng = np.random.default_rng(seed)
    base_t, base_v = decay(n, end=0.6), decay(n, end=0.7)
    swing = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * (0.25 + 0.1 * rng.random(n))
    return base_t * (1 + 0.6 * swing), base_v * (1 + swing)


def diverging(n=30):
    train = decay(n, end=0.2)
    train[12:] = train[12] * 1.4 ** np.arange(n - 12)
    return train, train * 1.1


def underfitting(n=30):
    e = np.arange(1, n + 1)
    train = 1.4 + 0.9 * np.exp(-e / 2.0)
    return train, train * 0.97  # high, flat, val no worse than train


def plateau(n=40):
    e = np.arange(1, n + 1)
    train = np.maximum(0.9, 2.3 - 0.35 * e)  # stuck at 39% of the initial loss from epoch 5
    rng = np.random.default_rng(3)
    return train * (1 + 0.05 * rng.standard_normal(n)), None
