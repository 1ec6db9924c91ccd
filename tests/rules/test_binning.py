"""The engine's fast binning of long step series gives the bins of the plain one."""
import numpy as np
import pytest

from tracking.rules.features import _bin_means, _even_bins, _sorted_bin_means, _with_edges


def same(fast, plain):
    assert np.array_equal(np.isnan(fast), np.isnan(plain))
    np.testing.assert_allclose(fast[~np.isnan(fast)], plain[~np.isnan(plain)], rtol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_sorted_bin_means_equal_bin_means_with_gaps_duplicates_and_non_finite_values(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5_000))
    steps = np.sort(rng.choice(np.arange(3 * n), size=n) + rng.integers(0, 50)).astype(float)  # gaps, repeats
    values = rng.standard_normal(n) * 10.0 ** rng.integers(0, 30)
    values[rng.random(n) < 0.05] = np.nan
    values[rng.random(n) < 0.01] = np.inf
    nbins = int(rng.integers(1, 400))
    span = steps[-1] - steps[0] + 1
    key_of = _even_bins(steps[0], span, nbins)  # knows its edges
    plain = _bin_means(key_of(steps), values, nbins)
    same(_sorted_bin_means(key_of, steps, values, nbins), plain)
    same(_sorted_bin_means(lambda s: key_of(s), steps, values, nbins), plain)  # no edges: bisection
    spe = int(rng.integers(1, 100))
    n_ep = int(steps[-1] // spe) + 1 + int(rng.integers(0, 3))  # more epochs than the steps reach, at times
    epoch_of = lambda s: (s // spe).astype(np.int64)  # noqa: E731
    plain = _bin_means(epoch_of(steps), values, n_ep)
    same(_sorted_bin_means(epoch_of, steps, values, n_ep), plain)
    edges = np.arange(n_ep + 1) * float(spe)
    same(_sorted_bin_means(_with_edges(lambda s: epoch_of(s), edges), steps, values, n_ep), plain)
    # edges a little off (a rounding) are moved to the right place; far off, the bisection is used
    for off in (1.0, -1.0, 0.5 * spe, 40.0 * spe):
        same(_sorted_bin_means(_with_edges(lambda s: epoch_of(s), edges + off), steps, values, n_ep), plain)
