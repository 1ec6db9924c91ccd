"""Curve features: relative, scale-free numbers read from a run's loss curves.

Everything here is a ratio or a share (of the initial loss, of the total descent,
of the curve's own level), so the same thresholds hold for any data set, model
or loss scale. Step series are reduced to per-epoch means first (vectorised),
so a run with hundreds of thousands of step points costs a few milliseconds.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .inputs import RunInput, Series

from .loggers import ALIASES, design_config  # noqa: F401  (ALIASES re-exported: the names other trainers use)

MAX_POINTS = 400  # per-epoch curves longer than this are averaged down to it
# more epochs than any real run (a train series whose step numbers say more is binned into pseudo-epochs
# of equal step spans: steps logged as timestamps must not size an array)
MAX_EPOCHS = 100_000
MAX_CLASSES = 10 ** 7  # a stated class count above this is no class count (ln C must be a float)


def canonical_metrics(metrics: dict[str, Series]) -> dict[str, Series]:
    """The non-empty series (the run input already holds them under DESIGN names, tracking.rules.loggers)."""
    return {k: v for k, v in metrics.items() if len(v)}


def ramp(x: float, lo: float, hi: float) -> float:
    """0 below lo, 1 above hi, linear between (a soft threshold)."""
    if not np.isfinite(x):
        return 1.0 if x > 0 else 0.0
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


def _bin_means(keys: np.ndarray, values: np.ndarray, nbins: int) -> np.ndarray:
    """Mean of the finite values per integer key in [0, nbins); NaN where a bin has none."""
    finite = np.isfinite(values)
    if finite.all():
        k, w = keys, values
    else:
        k, w = keys[finite], values[finite]
    sums = np.bincount(k, weights=w, minlength=nbins)[:nbins]
    counts = np.bincount(k, minlength=nbins)[:nbins]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _sorted_bin_means(key_of, steps: np.ndarray, values: np.ndarray, nbins: int) -> np.ndarray:
    """_bin_means(key_of(steps), values, nbins) for a key that never decreases along the sorted steps
    and lies in [0, nbins): each bin is then a slice, whose sums one reduceat takes. A long step
    series is so read in two passes instead of six (the same bins, the sums in another order).
    The slices' starts (the first index whose key is >= each bin) come from the step where each bin
    starts when key_of knows it (key_of.edges, then checked and moved by a step or two where a
    rounding put it off), else from a bisection evaluating key_of at ~18 x nbins steps."""
    n = len(steps)
    targets = np.arange(nbins + 1)
    lo = None
    edges = getattr(key_of, "edges", None)
    if edges is not None and n:
        lo = np.searchsorted(steps, edges, side="left").astype(np.int64)
        for _ in range(4):
            back = (lo > 0) & (key_of(steps[np.maximum(lo - 1, 0)]) >= targets)
            ahead = (lo < n) & (key_of(steps[np.minimum(lo, n - 1)]) < targets)
            if not (back.any() or ahead.any()):
                break
            lo = lo - back + ahead
        else:
            lo = None  # still off: bisect
    if lo is None:
        lo, hi = np.zeros(nbins + 1, dtype=np.int64), np.full(nbins + 1, n, dtype=np.int64)
        while (active := lo < hi).any():  # lo ends as the first index whose key is >= each target
            mid = (lo + hi) >> 1
            below = key_of(steps[np.minimum(mid, n - 1)]) < targets
            lo, hi = np.where(active & below, mid + 1, lo), np.where(active & ~below, mid, hi)
    finite = np.isfinite(values)
    if finite.all():
        w, counts = values, np.diff(lo)
    else:
        w = np.where(finite, values, 0.0)
        counts = np.diff(np.concatenate(([0], np.cumsum(finite)))[lo])
    filled = lo[:-1] < lo[1:]  # bins holding a step: reduceat sums from each start to the next one's
    sums = np.zeros(nbins)
    if filled.any():
        sums[filled] = np.add.reduceat(w, lo[:-1][filled])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _with_edges(key_of, edges: np.ndarray):
    """key_of, knowing the step where each of its bins starts (for _sorted_bin_means)."""
    key_of.edges = edges
    return key_of


def _even_bins(s0: float, span: float, nbins: int):
    """The key of equal step spans: bin of each step in [s0, s0 + span), clipped to [0, nbins)
    (np.minimum/np.maximum: np.clip looks the dtype's limits up at every call)."""
    edges = s0 + np.arange(nbins + 1) * span / nbins
    edges[0], edges[-1] = -np.inf, np.inf  # every step is in a bin: the first from the start, none past the last
    return _with_edges(lambda s: np.minimum(np.maximum(((s - s0) * nbins // span).astype(np.int64), 0), nbins - 1),
                       edges)


def _downsample(x: np.ndarray, labels: np.ndarray, size: int = MAX_POINTS):
    """A per-epoch curve longer than `size` as the means of `size` runs of consecutive epochs, each
    labelled with its first epoch; the run holding the curve's best (lowest finite) epoch keeps that
    epoch's value and label, so the minimum the evidence cites is the run's best val_loss, not a mean
    of its neighbours."""
    if len(x) <= size:
        return x, labels
    keys = (np.arange(len(x)) * size // len(x)).astype(np.int64)
    out, lab = _bin_means(keys, x, size), labels[np.searchsorted(keys, np.arange(size))]
    finite = np.isfinite(x)
    if finite.any():
        best = int(np.flatnonzero(finite)[np.argmin(x[finite])])
        out[keys[best]], lab[keys[best]] = x[best], labels[best]
    return out, lab


def smooth(x: np.ndarray) -> np.ndarray:
    """A robust smoothing of a short per-epoch curve: centred rolling median, then a 3-point mean.
    NaNs are filled from their neighbours first."""
    n = len(x)
    if n < 3:
        return x.copy()
    good = np.isfinite(x)
    if not good.all():
        idx = np.arange(n)
        x = np.interp(idx, idx[good], x[good]) if good.any() else np.zeros(n)
    w = 3 if n < 12 else 5 if n < 40 else (n // 8) | 1
    pad = w // 2
    padded = np.concatenate([np.repeat(x[0], pad), x, np.repeat(x[-1], pad)])
    med = np.median(np.lib.stride_tricks.sliding_window_view(padded, w), axis=1)
    out = med.copy()
    out[1:-1] = (med[:-2] + med[1:-1] + med[2:]) / 3.0
    # keep the ends honest: a median filter flattens a last-epoch trend
    out[-1] = (med[-1] + x[-1]) / 2.0 if n >= 5 else med[-1]
    return out


@dataclass
class Curves:
    """Per-epoch curves aligned on the same epochs (val epochs when there are any)."""

    epochs: np.ndarray  # epoch labels (1-based) of each point of the per-epoch curves
    train: np.ndarray | None  # per-epoch train loss (NaN where no finite value)
    val: np.ndarray | None
    train_steps: Series | None  # the raw step series, for noise and first-step facts
    initial_loss: float  # loss at initialisation (first finite step value, else first epoch)
    nonfinite_epoch: int | None  # first epoch with a NaN/inf loss
    nonfinite_step: float | None
    nonfinite_metric: str | None
    per_epoch: bool  # False when epochs are unknown and the bins are only pseudo-epochs
    lr: Series | None = None
    grad_norm: Series | None = None
    val_accuracy: Series | None = None
    steps_per_epoch: int | None = None
    bin_steps: np.ndarray | None = None  # the step at the centre of each point when the points are pseudo-epochs


def _first_nonfinite(series: Series | None):
    if series is None or not len(series):
        return None
    bad = ~np.isfinite(series.values)
    if not bad.any():
        return None
    return float(series.steps[int(np.argmax(bad))])


def build_curves(run: RunInput) -> Curves:
    m = canonical_metrics(run.metrics)
    steps, train_ep, val = m.get("train_loss"), m.get("train_loss_epoch"), m.get("val_loss")
    spe = run.steps_per_epoch
    per_epoch = True
    bin_steps = None

    if steps is not None and train_ep is None and val is not None and len(steps) <= 1.5 * len(val):
        train_ep, steps = steps, None  # an external `loss` logged once per epoch

    # The epoch axis: the val epochs, or the train epochs when there is no val curve.
    if val is not None and len(val):
        v_steps = val.steps
        global_units = steps is not None and len(steps) > 2 * len(val) and (
            (spe and v_steps[-1] > 1.5 * (steps.steps[-1] / spe + 1))
            or (not spe and v_steps[-1] >= 0.5 * steps.steps[-1] and v_steps[-1] > 2 * len(val)))
        if global_units and spe:
            epochs = np.maximum(1, np.round(v_steps / spe)).astype(float)
        elif global_units:
            epochs = np.arange(1, len(val) + 1, dtype=float)
        else:
            epochs = v_steps + (1 if v_steps[0] < 1 else 0)
        vals = val.values.copy()
        train = None
        if train_ep is not None and len(train_ep):
            t_epochs = train_ep.steps + (1 if train_ep.steps[0] < 1 else 0)
            if len(train_ep) == len(val):
                train = train_ep.values.copy()
            else:
                ok = np.isfinite(train_ep.values)
                train = np.interp(epochs, t_epochs[ok], train_ep.values[ok]) if ok.any() else None
        elif steps is not None and len(steps):
            # the key of each step (the val epoch it is averaged into) never decreases along the steps
            last = len(val) - 1
            if global_units and not spe:
                key_of = lambda s: np.minimum(np.searchsorted(v_steps, s, side="left"), last)  # noqa: E731
            elif spe and steps.steps[0] >= 0:
                # step s belongs to the val epoch bin of its epoch q = s // spe: the number of val
                # epochs e with e - 1 < q. Bin b starts at the first epoch q >= 0 with that number >= b:
                # the first integer above the b-th val epoch - 1 (computed, not looked up in a table
                # the size of the step numbers: a run logged with timestamps as steps is no memory bomb)
                e0 = epochs - 1
                q_end = float(steps.steps[-1] // spe) + 1
                edges = np.empty(len(val) + 1)
                edges[1:] = np.minimum(np.maximum(0.0, np.floor(e0) + 1), q_end) * float(spe)
                edges[0], edges[-1] = -np.inf, np.inf
                key_of = _with_edges(lambda s: np.minimum(np.searchsorted(e0, s // spe, side="left"), last), edges)
            elif spe:  # steps before 0
                key_of = None
                train = _bin_means(np.clip(np.searchsorted(epochs - 1, steps.steps // spe, side="left"), 0, last),
                                   steps.values, len(val))
            else:  # unknown units: spread the train steps evenly over the val epochs
                key_of = _even_bins(steps.steps[0], steps.steps[-1] - steps.steps[0] + 1, len(val))
            if key_of is not None:
                train = _sorted_bin_means(key_of, steps.steps, steps.values, len(val))
    else:
        vals = None
        if train_ep is not None and len(train_ep):
            train = train_ep.values.copy()
            epochs = train_ep.steps + (1 if train_ep.steps[0] < 1 else 0)
        else:
            s = steps.steps
            n_ep = int(min(s[-1] // spe, MAX_EPOCHS)) + 1 if spe else 0
            if spe and 4 <= n_ep <= MAX_EPOCHS:
                if s[0] >= 0:
                    edges = np.arange(n_ep + 1) * float(spe)
                    edges[-1] = np.inf
                    train = _sorted_bin_means(_with_edges(lambda x: (x // spe).astype(np.int64), edges),
                                              s, steps.values, n_ep)
                else:
                    train = _bin_means((s // spe).astype(np.int64), steps.values, n_ep)
                epochs = np.arange(1, n_ep + 1, dtype=float)
            else:  # epochs unknown or too few: pseudo-epochs of equal step spans
                per_epoch = bool(spe)
                nb = int(min(50, max(1, len(s) // 2)))
                span = s[-1] - s[0] + 1
                train = _sorted_bin_means(_even_bins(s[0], span, nb), s, steps.values, nb)
                centres = s[0] + (np.arange(nb) + 0.5) * span / nb
                epochs = (centres // spe + 1) if spe else np.arange(1, nb + 1, dtype=float)
                bin_steps = centres

    initial = np.nan
    if steps is not None:
        finite = np.isfinite(steps.values)
        if finite.any():  # the first finite value: the loss of the untrained model (before any update)
            initial = float(steps.values[int(np.argmax(finite))])
    if not np.isfinite(initial):
        for curve in (train, vals):
            if curve is not None and np.isfinite(curve).any():
                initial = float(curve[np.isfinite(curve)][0])
                break

    nonfinite_step, nonfinite_metric = None, None
    for name in ("train_loss", "train_loss_epoch", "val_loss"):
        at = _first_nonfinite(m.get(name))
        if at is not None and (nonfinite_step is None or (name == "train_loss")):
            nonfinite_step, nonfinite_metric = at, name
            break
    nonfinite_epoch = None
    if nonfinite_step is not None:
        if nonfinite_metric == "train_loss":
            nonfinite_epoch = int(nonfinite_step // spe) + 1 if spe else None
        else:
            nonfinite_epoch = int(max(1, nonfinite_step))

    if train is not None:
        train, ep_t = _downsample(train, epochs)
    if vals is not None:
        vals, epochs = _downsample(vals, epochs)
    elif train is not None:
        epochs = ep_t
    return Curves(epochs=np.asarray(epochs, dtype=float), train=train, val=vals, train_steps=steps,
                  initial_loss=initial, nonfinite_epoch=nonfinite_epoch, nonfinite_step=nonfinite_step,
                  nonfinite_metric=nonfinite_metric, per_epoch=per_epoch,
                  lr=m.get("lr"), grad_norm=m.get("grad_norm"), val_accuracy=m.get("val_accuracy"),
                  steps_per_epoch=spe, bin_steps=bin_steps)


@dataclass
class CurveShape:
    """Scale-free facts about one per-epoch curve."""

    raw: np.ndarray
    smooth: np.ndarray
    first: float
    last: float  # smoothed last value
    min: float  # smoothed minimum
    argmin: int
    raw_min: float
    raw_argmin: int
    late_share: float  # share of the total descent made in the last quarter of the curve
    rise_from_min: float  # (last - min) / min, smoothed
    jitter: float  # RMS of the residual around the smooth curve, relative to its level (later 80%)
    big_ups: float  # share of epochs whose value rose > 10% of the level over the previous epoch
    flat_since: int  # index from which the curve stays within 5% of the total descent of its end
    up_share: float = 0.0  # share of epochs whose value rose at all (0 on a monotone descent)
    ups: int = 0  # how many epochs rose at all (after the first fifth): up_share's numerator
    up_tests: int = 0  # and its denominator, the epoch-to-epoch steps counted
    swing: float = 0.0  # RMS of the residual around the smooth curve (later 80%), relative to its whole descent
    # how much the best of the run's later part beat the best before it, relative to it (raw values):
    # the second half's over the first half's, or twice the last quarter's over the rest (a quarter is
    # half as long), whichever is larger
    late_gain: float = 1.0
    half_snr: float = np.inf  # the second half's gain in units of the RMS residual around the smooth trend


def shape(x: np.ndarray, floor: float) -> CurveShape | None:
    finite = np.isfinite(x)
    if finite.sum() < 2:
        return None
    s = smooth(x)
    n = len(x)
    q = max(0, n - 1 - max(1, n // 4))
    descent = max(s[0], s.max() if n < 4 else s[0]) - s.min()
    late_share = float((s[q] - s[-1]) / (descent + floor)) if n >= 3 else float((s[0] - s[-1]) / (abs(s[0]) + floor))
    argmin = int(np.argmin(s))
    smin = float(s[argmin])
    denom = np.abs(s) + 2.5 * floor  # near zero loss, relative swings mean nothing
    start = n // 5
    resid = ((x - s) / denom)[start:][finite[start:]]
    jitter = float(np.sqrt(np.mean(resid ** 2))) if resid.size else 0.0
    absolute = (x - s)[start:][finite[start:]]
    rms = float(np.sqrt(np.mean(absolute ** 2))) if absolute.size else 0.0  # the swings, in the loss's units
    swing = rms / (descent + floor)
    fx = np.where(finite, x, np.nan)
    with np.errstate(invalid="ignore"):
        ups = (np.diff(fx) / denom[1:])[start:] > 0.10
    big_ups = float(ups.mean()) if ups.size else 0.0
    with np.errstate(invalid="ignore"):
        rises = (np.diff(fx) > 0)[start:]
    up_share = float(rises.mean()) if rises.size else 0.0
    tol = 0.05 * max(s[0] - s[-1], 0.0) + 2 * jitter * abs(s[-1]) + 0.01 * floor
    far = np.nonzero(np.abs(s - s[-1]) > tol)[0]
    flat_since = int(far[-1] + 1) if far.size else 0
    raw_argmin = int(np.nanargmin(fx))
    late_gain, half_snr, h, k = 1.0, np.inf, n // 2, n - max(2, n // 4)
    if n >= 4 and finite[:h].any() and finite[h:].any():
        first_best, second_best = np.nanmin(fx[:h]), np.nanmin(fx[h:])
        gain = float(first_best - second_best)
        late_gain = gain / (abs(first_best) + floor)
        if finite[:k].any() and finite[k:].any():
            before = np.nanmin(fx[:k])
            late_gain = max(late_gain, 2.0 * float(before - np.nanmin(fx[k:])) / (abs(before) + floor))
        half_snr = gain / rms if rms > 1e-9 * (abs(first_best) + floor) else (np.inf if gain > 0 else 0.0)
    return CurveShape(raw=x, smooth=s, first=float(s[0]), last=float(s[-1]), min=smin, argmin=argmin,
                      raw_min=float(fx[raw_argmin]), raw_argmin=raw_argmin, late_share=late_share,
                      rise_from_min=float((s[-1] - smin) / (abs(smin) + floor)), jitter=jitter,
                      big_ups=big_ups, flat_since=flat_since, up_share=up_share, ups=int(rises.sum()),
                      up_tests=int(rises.size), swing=swing,
                      late_gain=late_gain, half_snr=half_snr)


@dataclass
class Features:
    curves: Curves
    config: dict
    status: str
    n: int  # epochs (points of the per-epoch curves)
    planned_epochs: int | None
    train: CurveShape | None
    val: CurveShape | None
    floor: float  # a small share of the initial loss: the scale below which changes are noise
    step_noise: float | None  # train step loss spread around its per-bin mean, relative (late part)
    step_blowup: float | None  # max binned step loss / initial loss
    grad_spikes: float | None  # p99 / p50 of grad_norm
    lr_constant: bool | None  # the logged lr never changed (None if not logged)
    extra: dict = field(default_factory=dict)
    # The untrained level of the loss: ln C when the number of classes C is known (config, or a val accuracy
    # steady at 1/C with val_loss at ln C: the uniform prediction), else the
    # loss before the first update (the first step-level train_loss: at step 0, or a few updates in when
    # a logger writes every n steps, an estimate that held better on the dev runs than none: reading it
    # as unknown there cost the Trainer's dev runs 11 hits of 438); `untrained_known` is False when only
    # the first logged epoch stands for it (a level after some training: an upper bound of what it learned).
    untrained: float = float("nan")
    untrained_known: bool = False
    classes: int | None = None
    lr_end_share: float | None = None  # the LR at the end as a share of its peak (lr series or schedule)
    accuracy: dict | None = None  # val_accuracy facts: first, best, last (fractions), best_index

    @property
    def annealed(self) -> bool:
        """The LR at the end was already annealed near zero (5% of its peak or less)."""
        return self.lr_end_share is not None and self.lr_end_share <= 0.05

    def main(self) -> CurveShape | None:
        return self.val or self.train

    def main_name(self) -> str:
        return "val_loss" if self.val is not None else "train_loss"

    def epoch(self, index: int) -> int:
        return int(round(self.curves.epochs[min(max(index, 0), len(self.curves.epochs) - 1)]))

    def at(self, index: int) -> str:
        """Where a point of the per-epoch curves lies, in words: "epoch 7", or "step 130" when the
        points are bins of steps inside too few epochs (or epochs are unknown)."""
        bins = self.curves.bin_steps
        if bins is not None and len(bins) == len(self.curves.epochs):
            return f"step {int(bins[min(max(index, 0), len(bins) - 1)])}"
        return f"epoch {self.epoch(index)}"


def _step_facts(steps: Series | None, initial: float, floor: float):
    if steps is None or not len(steps):
        return None, None
    v = steps.values
    if len(v) < 8:
        finite = v[np.isfinite(v)]
        blow = float(finite.max() / (abs(initial) + floor)) if finite.size and np.isfinite(initial) else None
        return None, blow
    nb = int(min(200, len(v) // 4))
    k = len(v) // nb
    block = v[: nb * k].reshape(nb, k)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if np.isfinite(block).all():
            means, sd = block.mean(axis=1), block.std(axis=1)
        else:
            block = np.where(np.isfinite(block), block, np.nan)
            means, sd = np.nanmean(block, axis=1), np.nanstd(block, axis=1)
        rel = sd / (np.abs(means) + floor)
    late = rel[nb // 2:]
    late = late[np.isfinite(late)]
    noise = float(np.median(late)) if late.size else None
    blow = float(np.nanmax(means) / (abs(initial) + floor)) if np.isfinite(means).any() and np.isfinite(initial) else None
    return noise, blow


def lr_response(curves: Curves, floor: float) -> dict:
    """How the loss responded to the LR schedule: the jump of the loss while the LR warmed up, and
    the loss gained right after the largest step decay. Empty without an lr and a train_loss series."""
    lr, steps = curves.lr, curves.train_steps
    if lr is None or steps is None or len(lr) < 20 or len(steps) < 20:
        return {}
    nb = int(min(100, len(steps) // 4))
    s0, span = steps.steps[0], steps.steps[-1] - steps.steps[0] + 1
    key_of = _even_bins(s0, span, nb)
    loss = _sorted_bin_means(key_of, steps.steps, steps.values, nb)
    lrb = _sorted_bin_means(key_of, lr.steps, lr.values, nb)
    good = np.isfinite(lrb) & (lrb > 0)
    if good.sum() < 10:
        return {}
    idx = np.arange(nb)
    lrb = np.interp(idx, idx[good], lrb[good])
    out = {}
    peak = int(np.argmax(lrb))
    if peak > 0 and lrb[0] < 0.5 * lrb[peak]:  # a warm-up (or a one-cycle rise)
        window = loss[: min(nb, peak + 3)]
        finite = np.isfinite(window)
        if finite.sum() >= 2:
            running_min = np.fmin.accumulate(np.where(finite, window, np.inf))
            with np.errstate(invalid="ignore", divide="ignore"):
                jump = np.nanmax(np.where(finite, window / (running_min + floor), np.nan))
            out.update(warmup_jump=float(jump), peak_lr=float(lrb[peak]),
                       peak_step=int(s0 + (peak + 0.5) * span / nb))
    ratios = lrb[:-1] / lrb[1:]
    d = int(np.argmax(ratios)) + 1
    if ratios[d - 1] >= 2 and 3 <= d <= nb - 4:
        before, after = np.nanmedian(loss[d - 3:d]), np.nanmedian(loss[d + 1:d + 4])
        if np.isfinite(before) and np.isfinite(after):
            out.update(decay_gain=float((before - after) / (abs(before) + floor)),
                       decay_step=int(s0 + d * span / nb))
    return out


# Classes of the data sets Runwise ships (scikit-learn's and its synthetic ones), for the chance level.
KNOWN_CLASSES = {"digits": 10, "wine": 3, "breast_cancer": 2, "moons": 2, "spirals": 3, "classification": 4,
                 "iris": 3, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
CLASS_KEYS = ("num_classes", "n_classes", "num_labels", "n_labels", "number_of_classes", "classes")


def classes_of(config: dict) -> int | None:
    """The number of classes the config states (a key such as num_classes, or a known data set)."""
    for key in CLASS_KEYS:
        v = config.get(key)
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= MAX_CLASSES:
            return v
    labels = config.get("id2label")  # Hugging Face's model config, logged as a param
    if isinstance(labels, dict):
        labels = repr(labels)
    if isinstance(labels, str) and labels.strip().startswith("{"):
        count = labels.count(":")
        # {0: 'LABEL_0', 1: 'LABEL_1'} is PretrainedConfig's default when no labels were given: it
        # says nothing about the data (a model with a head of its own logs it too)
        default = count == 2 and "LABEL_0" in labels and "LABEL_1" in labels
        if count >= 2 and not default:
            return count
    name = config.get("dataset")
    return KNOWN_CLASSES.get(name.strip().lower()) if isinstance(name, str) else None


def _lr_end_share(curves: Curves, config: dict, status: str, n: int, planned: int | None) -> float | None:
    """The LR at the end over its peak: from the logged lr, else from the configured schedule of a
    run that ran its planned epochs (None when neither tells)."""
    lr = curves.lr
    if lr is not None and len(lr) >= 2:
        v = lr.values[np.isfinite(lr.values)]
        if v.size and v.max() > 0:
            return float(v[-1] / v.max())
    sched = str(config.get("scheduler", "constant") or "constant").lower()
    if sched == "constant":
        return 1.0
    if status == "running" or (planned and n < 0.95 * planned):
        return None
    if sched in ("cosine", "onecycle", "linear", "cosineannealinglr", "onecyclelr"):
        return 0.0
    if sched in ("step", "steplr"):
        epochs = planned or n
        try:
            step, gamma = float(config.get("step_size", 10)), float(config.get("gamma", 0.1))
            return gamma ** int(max(0, epochs - 1) // max(1.0, step))
        except (TypeError, ValueError):
            return None
    return None


def lr_shares(curves: Curves, n: int) -> np.ndarray | None:
    """The logged LR at each of the n per-epoch points as a share of its peak (None without an lr
    series that spans some steps). The points are placed by their position in the run, the lr by its
    step's position in the lr series' span: both cover the run from its start to its end."""
    lr = curves.lr
    if lr is None or len(lr) < 2 or n < 1:
        return None
    ok = np.isfinite(lr.values)
    steps, values = lr.steps[ok], lr.values[ok]
    if values.size < 2 or values.max() <= 0 or steps[-1] <= steps[0]:
        return None
    where = (steps - steps[0]) / (steps[-1] - steps[0])
    return np.interp((np.arange(n) + 0.5) / n, where, values) / values.max()


def swings_at_low_lr(sh: "CurveShape | None", shares: np.ndarray | None, floor: float) -> float | None:
    """The curve's swings (its residual around the smooth trend, relative to its level, from a fifth of
    the way in as `jitter`) where the LR was a quarter of its peak or less, over those where it was
    half of it or more: about the LR's ratio or less when the steps' size drives them, 1 or more when
    they go on undamped as the LR falls. None without three points in each phase."""
    if sh is None or shares is None or len(shares) != len(sh.raw):
        return None
    n = len(sh.raw)
    resid = (sh.raw - sh.smooth) / (np.abs(sh.smooth) + 2.5 * floor)
    later = (np.arange(n) >= n // 5) & np.isfinite(resid)
    high, low = later & (shares >= 0.5), later & (shares <= 0.25)
    if high.sum() < 3 or low.sum() < 3:
        return None
    return float(np.sqrt(np.mean(resid[low] ** 2)) / (np.sqrt(np.mean(resid[high] ** 2)) + 1e-12))


def binary_entropy(a: np.ndarray) -> np.ndarray:
    a = np.clip(a, 1e-12, 1.0 - 1e-12)
    return -(a * np.log(a) + (1.0 - a) * np.log1p(-a))


def _over_constant_prediction(curves: Curves, acc: np.ndarray) -> np.ndarray | None:
    """Per epoch, val_loss over the least cross-entropy a model that ignores its inputs can have at
    that val accuracy: a fixed prediction is right on one class's share a of the examples, and its
    cross-entropy is at least the entropy of the class shares, itself at least the binary entropy
    h(a) (for any number of classes and any balance). Under 1, the model used its inputs. None
    unless val_loss and val accuracy come once an epoch each (aligned one to one)."""
    if curves.val is None or len(curves.val) != len(acc):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return curves.val / binary_entropy(acc)


def _first_epoch_blew_up(val: np.ndarray | None) -> bool:
    if val is None or len(val) < 3 or not np.isfinite(val[0]):
        return False
    later = val[1:][np.isfinite(val[1:])]
    return bool(later.size) and val[0] >= 10.0 * float(np.median(later)) > 0


def _accuracy_facts(curves: Curves) -> dict | None:
    acc = curves.val_accuracy
    if acc is None or len(acc) < 3:
        return None
    finite = np.isfinite(acc.values)
    v = acc.values[finite]
    if v.size < 3:
        return None
    if v.max() > 1.5:  # logged in percent
        v = v / 100.0
    best = int(np.argmax(v))
    late = v[v.size // 2:]
    # "end": the level the run ended at, its last epoch or the median of its last three, the higher (a
    # swing down in the last epoch alone is no level the run fell back to; the last epoch up from a
    # late fall is where the run got back to)
    facts = {"first": float(v[0]), "best": float(v[best]), "last": float(v[-1]),
             "end": float(max(v[-1], np.median(v[-3:]))),
             "best_index": best, "low": float(v.min()), "n": int(v.size), "late_mean": float(late.mean()),
             # where the run started from: its first epoch, or the better of its first two where the first
             # epoch's val_loss blew up (10x the later epochs' median: that epoch is no start)
             "start": float(v[:2].max() if _first_epoch_blew_up(curves.val) else v[0]),
             "late_spread": float(late.max() - late.min())}
    if finite.all():
        ratio = _over_constant_prediction(curves, v)
        if ratio is not None and np.isfinite(ratio).any():
            tail = ratio[-3:][np.isfinite(ratio[-3:])]
            end = min(ratio[-1], np.median(tail)) if tail.size else ratio[-1]
            facts["vs_constant"] = {"best": float(np.nanmin(ratio)), "end": float(end)}
    return facts


def _uniform_classes(val: np.ndarray | None, acc: dict | None) -> int | None:
    """C when the run shows a model that predicts no better than the uniform distribution: the val
    accuracy steady at 1/C for a whole number C over the second half with val_loss at ln C (the
    uniform prediction's cross-entropy), or at 1/C over the whole run (it never left chance) with
    val_loss at ln C or above (no better than the uniform prediction, often worse); None otherwise.
    It tells the chance level when the config does not state the number of classes (and the loss
    before the first update may have blown up: no untrained level)."""
    if val is None or acc is None or acc["late_spread"] > 0.01 or not 0.0 < acc["late_mean"] <= 0.5:
        return None
    c = round(1.0 / acc["late_mean"])
    late = val[len(val) // 2:]
    late = late[np.isfinite(late)]
    if abs(1.0 / acc["late_mean"] - c) > 0.05 * c or late.size == 0:
        return None
    ratio = late / np.log(c)
    if np.abs(ratio - 1.0).max() <= 0.03:
        return c
    never_left = max(abs(acc["low"] - 1.0 / c), abs(acc["best"] - 1.0 / c)) <= 0.02
    return c if never_left and ratio.min() >= 0.97 else None


def compute_features(run: RunInput) -> Features:
    run = RunInput(config=design_config(run.config), metrics=run.metrics, steps_per_epoch=run.steps_per_epoch,
                   status=run.status, sources=run.sources)
    curves = build_curves(run)
    init = curves.initial_loss if np.isfinite(curves.initial_loss) else 1.0
    floor = 0.02 * abs(init) + 1e-12
    tr = shape(curves.train, floor) if curves.train is not None else None
    va = shape(curves.val, floor) if curves.val is not None else None
    noise, blow = _step_facts(curves.train_steps, init, floor)
    spikes = None
    if curves.grad_norm is not None and len(curves.grad_norm) >= 20:
        g = curves.grad_norm.values[np.isfinite(curves.grad_norm.values)]
        if g.size >= 20:
            p50, p99 = np.percentile(g, [50, 99])
            spikes = float(p99 / p50) if p50 > 0 else None
    lr_constant = None
    if curves.lr is not None and len(curves.lr) >= 2:
        lv = curves.lr.values[np.isfinite(curves.lr.values)]
        lr_constant = bool(lv.size and lv.max() <= lv.min() * 1.0001)
    planned = run.config.get("epochs")
    planned = int(planned) if isinstance(planned, (int, float)) and not isinstance(planned, bool) and planned >= 1 else None
    n = len(curves.val) if curves.val is not None else len(curves.train) if curves.train is not None else 0
    accuracy = _accuracy_facts(curves)
    classes = classes_of(run.config)
    uniform = None if classes else _uniform_classes(curves.val, accuracy)
    classes = classes or uniform
    from_steps = curves.train_steps is not None and np.isfinite(curves.train_steps.values).any()
    if classes:
        untrained, known = float(np.log(classes)), True
    else:
        untrained, known = float(curves.initial_loss), bool(from_steps)
    return Features(curves=curves, config=run.config, status=run.status, n=n, planned_epochs=planned,
                    train=tr, val=va, floor=floor, step_noise=noise, step_blowup=blow,
                    grad_spikes=spikes, lr_constant=lr_constant,
                    extra={"lr_response": lr_response(curves, floor), "config_keys": set(run.config),
                           "uniform_prediction": uniform is not None},
                    untrained=untrained, untrained_known=known, classes=classes,
                    lr_end_share=_lr_end_share(curves, run.config, run.status, n, planned),
                    accuracy=accuracy)
