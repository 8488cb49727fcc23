import math

import numpy as np
import pytest
from conftest import loss_loop, taylor_slope

from scconvex import InvalidInputError, class_loss, sc_loss, sc_loss_grad, sc_loss_gram_grad
from scconvex.losses.sc import block_grad, block_terms


def supcon_mean(H, labels, tau, base_tau):
    """The reference SupConLoss (one view) as written in the official PyTorch code."""
    labels = np.asarray(labels)
    n = len(labels)
    logits = H @ H.T / tau
    logits = logits - logits.max(axis=1, keepdims=True)
    mask = (labels[:, None] == labels[None, :]).astype(float)
    logits_mask = 1.0 - np.eye(n)
    mask = mask * logits_mask
    exp_logits = np.exp(logits) * logits_mask
    log_prob = logits - np.log(exp_logits.sum(axis=1, keepdims=True))
    pos = mask.sum(axis=1)
    pos_safe = np.where(pos < 1e-6, 1.0, pos)
    mean_log_prob_pos = (mask * log_prob).sum(axis=1) / pos_safe
    return float(np.mean(-(tau / base_tau) * mean_log_prob_pos))


def unit_rows(rng, n, d):
    H = rng.normal(size=(n, d))
    return H / np.linalg.norm(H, axis=1, keepdims=True)


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_matches_double_loop_and_supcon(rng, tau):
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])  # class 2 has one sample
    H = unit_rows(rng, len(labels), 4)
    value = sc_loss(H, labels, tau)
    assert value == pytest.approx(loss_loop(H, labels, tau), rel=1e-12)
    assert value == pytest.approx(len(labels) * supcon_mean(H, labels, tau, tau), rel=1e-12)


def test_normalisation_rules(rng):
    labels = [0, 0, 1, 1]
    H = unit_rows(rng, 4, 3)
    assert sc_loss(3.0 * H, labels, 0.5) == pytest.approx(sc_loss(H, labels, 0.5))
    with pytest.raises(InvalidInputError, match="unit norm"):
        sc_loss(3.0 * H, labels, 0.5, normalize=False)
    with pytest.raises(InvalidInputError, match="zero row"):
        sc_loss(np.zeros((4, 3)), labels, 0.5)


def test_stable_at_small_tau(rng):
    labels = [0, 0, 1, 1, 2]
    H = unit_rows(rng, 5, 3)
    value = sc_loss(H, labels, 1e-3)
    assert math.isfinite(value)


@pytest.mark.parametrize("bad", ["shape", "nan", "labels", "tau"])
def test_bad_input(rng, bad):
    H = unit_rows(rng, 4, 3)
    labels = [0, 0, 1, 1]
    tau = 0.5
    if bad == "shape":
        H = H[0]
    elif bad == "nan":
        H[0, 0] = np.nan
    elif bad == "labels":
        labels = [0, 1]
    else:
        tau = -1.0
    with pytest.raises(InvalidInputError):
        sc_loss(H, labels, tau)


def test_gram_gradient_taylor(rng):
    labels = np.array([0, 0, 0, 1, 1, 2])
    H = unit_rows(rng, 6, 3)
    G = H @ H.T
    E = rng.normal(size=G.shape)
    E = E + E.T
    value, C = sc_loss_gram_grad(G, labels, 0.3)
    slope = taylor_slope(lambda t: sc_loss_gram_grad(G + t * E, labels, 0.3)[0],
                         float(np.sum(C * E)))
    assert slope == pytest.approx(2.0, abs=0.1)
    assert np.allclose(C, C.T) and np.allclose(np.diag(C), 0)


def test_feature_gradient_taylor(rng):
    labels = np.array([0, 0, 1, 1, 1])
    H = unit_rows(rng, 5, 4)
    V = rng.normal(size=H.shape)
    _, g = sc_loss_grad(H, labels, 0.4)

    def along(t):
        X = H + t * V
        return sc_loss_gram_grad(X @ X.T, labels, 0.4)[0]

    assert taylor_slope(along, float(np.sum(g * V))) == pytest.approx(2.0, abs=0.1)


def test_class_loss_matches_sample_loss_of_collapsed_features(rng):
    counts = [4, 3, 1, 2]
    U = unit_rows(rng, 4, 3)
    labels = np.repeat(np.arange(4), counts)
    H = U[labels]
    tau = 0.2
    assert class_loss(U @ U.T, counts, tau) == pytest.approx(sc_loss(H, labels, tau), rel=1e-12)


@pytest.mark.parametrize("k,m,tau", [(2, 3, 0.1), (3, 5, 0.5), (5, 2, 1.0), (10, 7, 0.05)])
def test_balanced_closed_form(k, m, tau):
    n = k * m
    M = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(M, 1.0)
    expected = n * math.log((m - 1) + (n - m) * math.exp(-k / ((k - 1) * tau)))
    assert class_loss(M, [m] * k, tau) == pytest.approx(expected, rel=1e-13)


def test_excess_is_accurate_at_small_tau():
    # The geometry-dependent part is far below float64 resolution of the loss itself.
    k, m, tau = 3, 5, 0.01
    M = np.full((k, k), -0.5)
    np.fill_diagonal(M, 1.0)
    excess = class_loss(M, [m] * k, tau, excess=True)
    n = k * m
    expected = n * math.log1p((n - m) / (m - 1) * math.exp(-k / ((k - 1) * tau)))
    assert excess == pytest.approx(expected, rel=1e-12)
    assert excess > 0


def test_block_gradient_taylor(rng):
    sizes = np.array([2, 1, 3])
    counts = np.array([5, 4, 2])
    B = rng.uniform(-0.3, 0.3, size=(3, 3))
    B = 0.5 * (B + B.T)
    B[1, 1] = 1.0
    E = rng.normal(size=(3, 3))
    E = E + E.T
    E[1, 1] = 0.0
    t0 = block_terms(B, sizes, counts, 0.3)
    D = block_grad(t0, sizes, counts, 0.3)
    slope = taylor_slope(lambda t: block_terms(B + t * E, sizes, counts, 0.3).value,
                         float(np.sum(D * E)))
    assert slope == pytest.approx(2.0, abs=0.1)


# ---------------------------------------------------------------------- chunked evaluation
def dense_loss(H, labels, tau):
    """The whole n x n logit matrix at once, written independently of scconvex.loss."""
    labels = np.asarray(labels)
    logits = H @ H.T / tau
    np.fill_diagonal(logits, -np.inf)
    mx = np.max(logits, axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.sum(np.exp(logits - mx), axis=1))
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    npos = same.sum(axis=1)
    act = npos > 0
    pos = np.where(same, H @ H.T, 0.0).sum(axis=1)[act] / npos[act] / tau
    return float(np.sum(lse[act] - pos))


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000, None])
@pytest.mark.parametrize("tau", [0.05, 0.7])
def test_chunked_loss_matches_dense_and_loop(rng, chunk, tau):
    labels = np.array([3, 1, 1, 0, 3, 3, 2, 1, 0, 5, 3])  # 2 and 5 have one sample
    H = unit_rows(rng, len(labels), 5)
    value = sc_loss(H, labels, tau, chunk=chunk)
    assert value == pytest.approx(dense_loss(H, labels, tau), rel=1e-12)
    assert value == pytest.approx(loss_loop(H, labels, tau), rel=1e-11)


@pytest.mark.parametrize("chunk", [1, 4, None])
def test_chunked_gradient_matches_gram_gradient(rng, chunk):
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 0])
    H = unit_rows(rng, len(labels), 4)
    value, grad = sc_loss_grad(H, labels, 0.3, chunk=chunk)
    ref_value, C = sc_loss_gram_grad(H @ H.T, labels, 0.3)
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(grad, 2.0 * C @ H, rtol=1e-10, atol=1e-12)


def test_loss_memory_grows_with_chunk_not_n_squared(rng):
    # n = 4000 would need 128 MB for H H^T; with 50-row blocks the loss needs about 2 MB.
    import tracemalloc

    n, d = 4000, 8
    H = unit_rows(rng, n, d)
    labels = rng.integers(0, 10, size=n)
    tracemalloc.start()
    try:
        sc_loss(H, labels, 0.5, chunk=50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16e6, f"peak {peak / 1e6:.1f} MB"


@pytest.mark.parametrize("chunk", [0, -2, 2.5, "all", True])
def test_bad_chunk(rng, chunk):
    with pytest.raises(InvalidInputError, match="chunk"):
        sc_loss(unit_rows(rng, 4, 2), [0, 0, 1, 1], 0.5, chunk=chunk)
