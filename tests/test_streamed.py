"""The streamed loss of features against independent float64 references, with its bound."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from conftest import loss_loop

from scconvex.errors import InvalidInputError
from scconvex.losses.sc import sc_loss
from scconvex.losses.streamed import (
    EXP_ULPS,
    TILE,
    anchor_error,
    gamma,
    streamed_loss,
)


def unit(H):
    return H / np.linalg.norm(H, axis=1, keepdims=True)


@pytest.mark.parametrize("tau", [1.0, 0.1, 0.02, 0.005])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_matches_the_dense_float64_loss_within_its_bound(rng, tau, precision):
    # Clustered features (as trained ones are) and a block size that is not a multiple of
    # the tile, so blocks, tiles and the diagonal interleave; 0.005 takes the shifted path.
    n, d, k = 1100, 24, 6
    y = rng.integers(0, k, n)
    means = unit(rng.standard_normal((k, d)))
    H = means[y] + 0.3 * rng.standard_normal((n, d)) / math.sqrt(d)
    ref = sc_loss(H, y, tau)
    r = streamed_loss(H, y, tau, precision=precision, block_rows=417, threads=2)
    assert abs(r.value - ref) <= r.error
    assert r.shifted == (precision == "float32" and tau < 1 / 80)
    # The bound is worst-case but not vacuous: about (d + 4 + TILE) u / tau per anchor.
    u = 2.0**-24 if precision == "float32" else 2.0**-53
    assert r.error <= 3 * n * ((d + 4 + TILE + 2 * EXP_ULPS) * u / min(tau, 1.0)) + 1e-6


def test_term_by_term_reference_and_negatives_only(rng):
    n, d = 40, 5
    y = rng.integers(0, 3, n)
    H = unit(rng.standard_normal((n, d)))
    for loss, neg in (("sc", False), ("negatives-only", True)):
        ref = loss_loop(H, y, 0.3, negatives_only=neg)
        for precision in ("float32", "float64"):
            r = streamed_loss(H, y, 0.3, loss=loss, precision=precision, block_rows=7)
            assert abs(r.value - ref) <= r.error, (loss, precision)
        assert abs(streamed_loss(H, y, 0.3, loss=loss, precision="float64").value - ref) \
            < 1e-9


def test_singleton_classes_have_no_term_but_sit_in_denominators(rng):
    y = np.array([0, 0, 0, 1, 2, 2])
    H = unit(rng.standard_normal((6, 3)))
    r = streamed_loss(H, y, 0.5, precision="float64")
    assert r.active == 5
    assert r.value == pytest.approx(loss_loop(H, y, 0.5), abs=1e-12)


def test_thread_counts_and_block_sizes_agree(rng):
    n, d = 1500, 16
    y = rng.integers(0, 4, n)
    H = rng.standard_normal((n, d))
    values = [streamed_loss(H, y, 0.1, threads=t, block_rows=b).value
              for t in (1, 2) for b in (None, 600, 1500)]
    ref = sc_loss(H, y, 0.1)
    bound = streamed_loss(H, y, 0.1).error
    assert all(abs(v - ref) <= bound for v in values)


def test_memory_mapped_source_is_read_in_blocks(tmp_path, rng):
    n, d = 6000, 64
    y = rng.integers(0, 10, n)
    np.save(tmp_path / "H.npy", rng.standard_normal((n, d)).astype(np.float32))
    H = np.load(tmp_path / "H.npy", mmap_mode="r")
    tracemalloc.start()
    r = streamed_loss(H, y, 0.1, block_rows=512, threads=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Two blocks of 512 rows in float64 (256 KiB each), a few n-vectors, one tile buffer:
    # far below one n x n float32 matrix (137 MiB) or the whole features in float64 (3 MiB).
    assert peak < 2.5 * 2**20, peak
    ref = sc_loss(np.asarray(H, dtype=float), y, 0.1)
    assert abs(r.value - ref) <= r.error


def test_float32_exp_is_within_the_allowed_ulps():
    # The bound allows EXP_ULPS ulp; a sample of the arguments the loss uses (|x| <= 80 and
    # the shifted range down to the underflow threshold).
    x = np.random.default_rng(1).uniform(-103.0, 80.0, 2_000_000).astype(np.float32)
    got = np.exp(x).astype(np.float64)
    ref = np.exp(x.astype(np.float64))
    normal = ref > np.finfo(np.float32).tiny
    ulp = np.spacing(ref[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[normal] - ref[normal]) / ulp) <= EXP_ULPS
    assert np.all(np.abs(got[~normal] - ref[~normal]) <= 2.0**-125)


def test_anchor_error_matches_its_derivation():
    u = 2.0**-24
    d, tau = 512, 0.1
    logit = gamma(d + 4, u) / tau + 2 * gamma(d + 3, 2.0**-53) / tau
    rel = EXP_ULPS * 2 * u + gamma(TILE - 1, u) + gamma(2 * TILE + 8, 2.0**-53)
    assert anchor_error(d, tau, "float32") == pytest.approx(logit - math.log1p(-rel),
                                                           rel=1e-12)
    assert anchor_error(d, tau, "float64") < 1e-11


@pytest.mark.parametrize("bad, labels, match", [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), [0, 0], "NaN"),
    (np.ones((3, 1)), [0, 0, 1], "d = 1"),
    (np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), [0, 0, 1], "row 1 is zero"),
    (np.ones((3, 2)), [0, 0], "shape"),
    (np.ones((3, 2)), [0, 1, 2], "no class has two samples"),
])
def test_bad_input_is_one_clear_error(bad, labels, match):
    with pytest.raises(InvalidInputError, match=match):
        streamed_loss(bad, labels, 0.1)


def test_negatives_only_needs_two_classes():
    with pytest.raises(InvalidInputError, match="two classes"):
        streamed_loss(np.eye(3), [0, 0, 0], 0.1, loss="negatives-only")
