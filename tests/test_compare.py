"""compare(): trained features against the certified optimum, checked independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scconvex.errors import InvalidInputError
from scconvex.features.factor import factor
from scconvex.losses.sc import sc_loss
from scconvex.pipeline.solve import solve
from scconvex.problem.spec import ProblemSpec
from scconvex.studies.compare import class_labels, compare


def unit(H):
    return H / np.linalg.norm(H, axis=1, keepdims=True)


def noisy(rng, means, y, noise):
    return means[y] + noise * rng.standard_normal((len(y), means.shape[1]))


def test_features_at_the_optimum_have_no_resolved_gap():
    spec = ProblemSpec.from_counts([20, 20, 4, 4], tau=0.2)
    res = solve(spec)
    H = factor(res, d=6, samples=True).features
    c = compare(H, spec.labels, 0.2, result=res)
    assert not c.gap_resolved and abs(c.gap) <= c.loss_error + res.sample_gap
    assert any("not shown to be sub-optimal" in note for note in c.notes)
    assert c.to_optimum.max_abs < 1e-6
    assert c.collapse.trace_ratio < 1e-12 and c.collapse.within_cosine == pytest.approx(1.0)
    assert abs(c.within_gap) <= c.loss_error


def test_every_number_against_an_independent_computation(rng):
    k, d = 4, 7
    y = np.repeat(np.arange(k), [30, 30, 6, 6])
    means = unit(rng.standard_normal((k, d)))
    raw = noisy(rng, means, y, 0.4) * rng.uniform(0.5, 2.0, size=(len(y), 1))
    c = compare(raw, y, 0.1, precision="float64")
    H = unit(raw)
    n = len(y)
    # Loss and lower bound.
    assert c.loss == pytest.approx(sc_loss(H, y, 0.1), abs=1e-9)
    res = solve(ProblemSpec.from_labels(y, 0.1))
    assert c.lower_bound == pytest.approx(res.sample_lower_bound, rel=1e-12)
    assert c.gap == pytest.approx(c.loss - c.lower_bound)
    # Collapsed features: every sample replaced by its class's unit mean direction.
    mu = np.array([H[y == j].mean(axis=0) for j in range(k)])
    collapsed = unit(mu)[y]
    assert c.collapsed_loss == pytest.approx(sc_loss(collapsed, y, 0.1), rel=1e-12)
    assert c.geometry_gap + c.within_gap == pytest.approx(c.gap)
    assert c.geometry_gap >= -res.sample_gap
    # Class-mean Gram.
    U = unit(mu)
    np.testing.assert_allclose(c.class_gram, U @ U.T, atol=1e-12)
    off = ~np.eye(k, dtype=bool)
    assert c.to_optimum.max_abs == pytest.approx(np.max(np.abs(U @ U.T - res.class_gram)[off]))
    etf = np.full((k, k), -1 / 3)
    assert c.to_etf.frobenius == pytest.approx(
        math.sqrt(np.sum(((U @ U.T - etf)[off]) ** 2) / 2))
    # NC1: covariances written out sample by sample.
    Sw = sum(np.outer(H[i] - mu[y[i]], H[i] - mu[y[i]]) for i in range(n)) / n
    g = mu.mean(axis=0)
    Sb = sum(np.outer(m - g, m - g) for m in mu) / k
    assert c.collapse.trace_ratio == pytest.approx(np.trace(Sw) / np.trace(Sb), rel=1e-10)
    assert c.collapse.nc1 == pytest.approx(np.trace(Sw @ np.linalg.pinv(Sb)) / k, rel=1e-6)
    var = [np.mean([np.sum((H[i] - mu[j]) ** 2) for i in np.flatnonzero(y == j)])
           for j in range(k)]
    cdnv = [(var[a] + var[b]) / (2 * np.sum((mu[a] - mu[b]) ** 2))
            for a in range(k) for b in range(a + 1, k)]
    assert c.collapse.cdnv == pytest.approx(np.mean(cdnv), rel=1e-10)
    assert c.collapse.cdnv_max == pytest.approx(np.max(cdnv), rel=1e-10)
    cos = [np.mean([H[i] @ H[j] for i in np.flatnonzero(y == a) for j in np.flatnonzero(y == a)
                    if i != j]) for a in range(k)]
    np.testing.assert_allclose(c.collapse.class_within_cosine, cos, atol=1e-12)
    norms = np.linalg.norm(raw, axis=1)
    assert c.collapse.norm_cv == pytest.approx(norms.std() / norms.mean(), rel=1e-9)


def test_rotation_changes_nothing(rng):
    y = np.repeat([0, 1, 2], [25, 10, 5])
    H = noisy(rng, unit(rng.standard_normal((3, 5))), y, 0.3)
    Q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    a, b = compare(H, y, 0.5), compare(H @ Q, y, 0.5, result=None)
    assert abs(a.loss - b.loss) <= a.loss_error + b.loss_error
    np.testing.assert_allclose(a.class_gram, b.class_gram, atol=1e-12)
    assert a.to_optimum.frobenius == pytest.approx(b.to_optimum.frobenius, abs=1e-12)


def test_step_groups_are_majority_and_minority(rng):
    spec = ProblemSpec.step(k=6, rho=0.5, ratio=10, n_min=3, tau=0.1)
    res = solve(spec)
    H = noisy(rng, factor(res, d=8).features, spec.labels, 0.05)
    c = compare(H, spec.labels, 0.1, result=res)
    rows = {r["groups"]: r for r in c.groups()}
    assert set(rows) == {"majority-majority", "majority-minority", "minority-minority"}
    assert rows["majority-minority"]["pairs"] == 9
    M = res.class_gram
    assert rows["minority-minority"]["optimum"] == pytest.approx(M[4, 5])
    assert c.gap_resolved and c.gap > c.loss_error
    assert len(c.pairs()) == 15


def test_negatives_only_and_relu_use_their_own_optimum(rng):
    y = np.repeat([0, 1, 2], [12, 12, 4])
    # Non-negative features near an orthogonal frame (what ReLU networks reach).
    H = np.abs(noisy(rng, np.eye(4)[:3], y, 0.05))
    c = compare(H, y, 0.2, relu=True)
    assert c.spec.relaxation == "dnn"
    np.testing.assert_allclose(c.optimum_gram, np.eye(3), atol=1e-6)
    assert c.to_orthogonal.max_abs < 0.1 < c.to_etf.max_abs
    with pytest.raises(InvalidInputError, match="negative entry"):
        compare(H - 0.5, y, 0.2, relu=True)
    n = compare(H, y, 0.2, loss="negatives-only", precision="float64")
    from conftest import loss_loop

    assert n.loss == pytest.approx(loss_loop(unit(H), y, 0.2, negatives_only=True), abs=1e-9)
    assert n.spec.loss == "negatives-only"


def test_class_names_are_kept():
    y, names = class_labels(np.array(["dog", "cat", "dog", "emu"]))
    assert names == ("cat", "dog", "emu") and y.tolist() == [1, 0, 1, 2]
    y, names = class_labels(np.array([2, 0, 2]), ["zero", "one", "two"])
    assert names == ("zero", "two") and y.tolist() == [1, 0, 1]
    y, names = class_labels(np.array([10, 2, 10]))
    assert names == ("2", "10")
    with pytest.raises(InvalidInputError, match="unknown class 'cow'"):
        class_labels(np.array(["dog", "cow"]), ["dog", "cat"])
    with pytest.raises(InvalidInputError, match="label 3 is not a class"):
        class_labels(np.array([0, 3]), ["a", "b"])


@pytest.mark.parametrize("H, y, match", [
    (np.ones((4, 2)), [0, 0, 1], "4 feature rows but 3 labels"),
    (np.eye(3)[[0, 0, 1]], [0, 0, 1], "class '1' has one sample"),
    (np.array([[1.0, 0], [np.nan, 1], [0, 1], [0, 1]]), [0, 0, 1, 1], "NaN"),
    (np.ones((4, 1)), [0, 0, 1, 1], "d = 1"),
    (np.array([[1.0, 0], [-1, 0], [0, 1], [0, 1]]), [0, 0, 1, 1], "average to zero"),
])
def test_bad_input_is_one_clear_error(H, y, match):
    with pytest.raises(InvalidInputError, match=match):
        compare(H, y, 0.1)


def test_a_result_for_another_problem_is_refused(rng):
    y = np.repeat([0, 1], 5)
    other = solve(ProblemSpec.from_counts([5, 6], 0.1))
    with pytest.raises(InvalidInputError, match="another problem"):
        compare(rng.standard_normal((10, 3)), y, 0.1, result=other)
