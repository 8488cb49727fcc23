"""The spectrum of a model variable (scconvex.certificates.repair.gram_spectrum).

Feasibility (the smallest eigenvalue) and the numerical rank of an answer are read from
one eigendecomposition; both are compared here with numpy on the lifted class Gram (or the
sample Gram itself).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_block_q

from scconvex import ProblemSpec
from scconvex.certificates.repair import gram_spectrum, min_eigenvalue
from scconvex.features.factor import numerical_rank
from scconvex.problem.model import build_model, class_gram, from_block_gram

RANK_TOL = 1e-6


def _low_rank_block(rng, model, rank):
    """A feasible block variable whose class Gram has rank about ``rank``."""
    Q = random_block_q(rng, model.sizes == 1)
    lam, V = np.linalg.eigh(Q)
    lam[:-rank] = 0.0
    Q = (V * lam) @ V.T
    d = np.sqrt(np.diag(Q))
    # Unit rows for one-class blocks, shorter rows (a_p < 1) for the others.
    scale = np.where(model.sizes == 1, 1.0 / d, np.minimum(1.0, np.sqrt(model.sizes) / d))
    return from_block_gram(Q * np.outer(scale, scale), model.sizes)


@pytest.mark.parametrize("counts, level", [((6, 6, 6, 3, 3, 1, 1), "group"),
                                           ((7, 5, 4, 3, 2, 1), "class")])
@pytest.mark.parametrize("rank", [1, 2, 4])
def test_spectrum_matches_numpy_on_the_class_gram(rng, counts, level, rank):
    model = build_model(ProblemSpec(counts, 0.5), level)
    B = _low_rank_block(rng, model, rank)
    B = 0.5 * (B + B.T)
    M = class_gram(model, B)
    lam = np.linalg.eigvalsh(M)
    spectrum = gram_spectrum(model, B)
    assert int(np.sum(spectrum.multiplicity)) == len(counts)
    np.testing.assert_allclose(np.sort(np.repeat(spectrum.values, spectrum.multiplicity)),
                               lam, atol=1e-12)
    assert spectrum.rank(RANK_TOL) == numerical_rank(M, RANK_TOL)
    assert spectrum.min == min_eigenvalue(model, B)
    assert spectrum.min == pytest.approx(lam[0], abs=1e-12)


def test_sample_spectrum_is_numpy_itself(rng):
    spec = ProblemSpec((4, 3, 2), 0.5)
    model = build_model(spec, "sample")
    H = rng.standard_normal((spec.n, 3))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    G = H @ H.T
    spectrum = gram_spectrum(model, G)
    assert spectrum.min == np.linalg.eigvalsh(G)[0]
    assert spectrum.rank(RANK_TOL) == numerical_rank(G, RANK_TOL) == 3


def test_one_eigendecomposition(rng, monkeypatch):
    model = build_model(ProblemSpec((6, 6, 3, 3, 1), 0.5), "group")
    B = _low_rank_block(rng, model, 2)
    calls = []
    eigvalsh = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda A: calls.append(A) or eigvalsh(A))
    spectrum = gram_spectrum(model, B)
    spectrum.min, spectrum.rank(RANK_TOL)
    assert len(calls) == 1


def test_geometry_on_one_line_has_its_exact_spectrum():
    model = build_model(ProblemSpec((5, 1, 1, 2), 0.5), "class")
    s = np.array([1.0, -1.0, -1.0, 1.0])
    spectrum = gram_spectrum(model, np.outer(s, s))
    np.testing.assert_allclose(np.sort(np.repeat(spectrum.values, spectrum.multiplicity)),
                               np.linalg.eigvalsh(np.outer(s, s)), atol=1e-14)
    assert spectrum.min == 0.0 and spectrum.rank(RANK_TOL) == 1
