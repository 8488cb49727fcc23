"""The class-level mini-batch loss against a brute-force sample-level sum over batches."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import loss_loop, taylor_slope

from scconvex.errors import InvalidInputError
from scconvex.losses.minibatch import compositions, epoch_batches, minibatch_terms


def random_gram(rng, k):
    W = rng.standard_normal((k, k + 2))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return W @ W.T, W


def brute_force(W, labels, batches, tau):
    """Collapsed features (sample i at its class vector) and MATH.md section 2 term by
    term, batch by batch."""
    H = W[labels]
    return sum(loss_loop(H[list(b)], labels[list(b)], tau) for b in batches)


@pytest.mark.parametrize("n, size, epochs, tau", [(23, 5, 3, 0.5), (30, 7, 2, 0.1),
                                                  (12, 12, 1, 1.0), (17, 4, 4, 0.05)])
def test_class_level_value_is_the_sum_over_batches(rng, n, size, epochs, tau):
    k = 4
    labels = np.sort(rng.integers(0, k, n))
    M, W = random_gram(rng, k)
    batches = epoch_batches(n, size, epochs, seed=3)
    comp, mult = compositions(batches, labels, k)
    t = minibatch_terms(M, comp, mult, tau)
    assert t.value == pytest.approx(brute_force(W, labels, batches, tau), rel=1e-11)
    assert t.excess == pytest.approx(t.value - t.constant, rel=1e-9, abs=1e-12)
    assert mult.sum() == len(batches)


def test_one_batch_of_everything_is_the_full_batch_loss(rng):
    from scconvex.losses.sc import class_loss

    counts = [6, 4, 3]
    labels = np.repeat(np.arange(3), counts)
    M, _ = random_gram(rng, 3)
    comp, mult = compositions(epoch_batches(13, 13, 1), labels, 3)
    assert minibatch_terms(M, comp, mult, 0.2).value == pytest.approx(
        class_loss(M, counts, 0.2), rel=1e-13)


def test_epochs_are_fresh_partitions_with_a_smaller_last_batch():
    batches = epoch_batches(946, 128, epochs=10, seed=0)
    assert len(batches) == 80
    sizes = [len(b) for b in batches]
    assert sizes[:8] == [128] * 7 + [50]
    for e in range(10):
        epoch = batches[8 * e: 8 * e + 8]
        assert sorted(i for b in epoch for i in b) == list(range(946))
    assert batches[:8] != batches[8:16]
    assert epoch_batches(946, 128, 10, seed=0) == batches


def test_gradient_taylor(rng):
    k, tau = 5, 0.3
    labels = np.sort(rng.integers(0, k, 40))
    comp, mult = compositions(epoch_batches(40, 9, 3, seed=1), labels, k)
    M, _ = random_gram(rng, k)
    E = rng.standard_normal((k, k))
    E = E + E.T
    np.fill_diagonal(E, 0.0)
    t = minibatch_terms(M, comp, mult, tau)
    slope = taylor_slope(lambda s: minibatch_terms(M + s * E, comp, mult, tau).value,
                         float(np.sum(t.grad * E)))
    assert slope > 1.9
    np.testing.assert_allclose(t.rel_grad * t.excess, t.grad, rtol=1e-10, atol=1e-14)


def test_small_tau_stays_in_log_space(rng):
    labels = np.repeat(np.arange(3), 10)
    comp, mult = compositions(epoch_batches(30, 8, 2, seed=0), labels, 3)
    M = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    t = minibatch_terms(M, comp, mult, 1e-3)
    assert t.excess == 0.0 and np.isfinite(t.log_excess)  # underflows; its log does not
    assert np.all(np.isfinite(t.rel_grad)) and np.max(t.rel_grad) > 0


@pytest.mark.parametrize("args, match", [((10, 0, 1, 0), "batch size"),
                                         ((10, 11, 1, 0), "larger than n"),
                                         ((10, 4, 0, 0), "epochs"),
                                         ((10, 4, 1, -1), "batch seed"),
                                         ((10, 4.0, 1, 0), "integer")])
def test_bad_schemes(args, match):
    with pytest.raises(InvalidInputError, match=match):
        epoch_batches(*args)
