import numpy as np
import pytest

from scconvex import InvalidInputError, ProblemSpec, solve
from scconvex.features.lift import SampleGram, lift


def test_sample_gram_entries_and_matvec(rng):
    U = rng.normal(size=(3, 2))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    M = U @ U.T
    labels = np.repeat(np.arange(3), [4, 1, 2])
    dense = (U[labels] @ U[labels].T)
    G = SampleGram(M, labels)
    np.testing.assert_allclose(G.toarray(), dense, atol=1e-15)
    assert G[0, 5] == pytest.approx(dense[0, 5])
    np.testing.assert_allclose(G[2, :], dense[2])
    np.testing.assert_allclose(G[[0, 6], 1:4], dense[np.ix_([0, 6], [1, 2, 3])])
    x = rng.normal(size=(7, 3))
    np.testing.assert_allclose(G.matvec(x), dense @ x, atol=1e-12)
    with pytest.raises(InvalidInputError, match="raise max_n"):
        G.toarray(max_n=5)


def test_group_result_lifts_to_class_solution():
    spec = ProblemSpec((5, 5, 5, 2, 2), 0.5)
    grp = solve(spec, level="group", solver="clarabel")
    cls = solve(spec, level="class", solver="clarabel")
    assert grp.success and cls.success
    np.testing.assert_allclose(lift(grp), cls.class_gram, atol=1e-5)
    G = lift(grp, "sample")
    assert G.shape == (spec.n, spec.n)
    assert G[0, 1] == 1.0  # same class: collapsed


def test_lift_of_huge_problem_stays_small():
    spec = ProblemSpec.step(100, 0.5, 100, 10, tau=0.2)  # 50,500 samples
    res = solve(spec, level="group", solver="clarabel")
    assert res.success
    G = lift(res, "sample")
    assert G.shape == (50_500, 50_500)
    # Entry (first majority sample, last minority sample) is the between-group cosine.
    assert G[0, spec.n - 1] == pytest.approx(res.variable[0, 1])
    with pytest.raises(InvalidInputError):
        G.toarray()


def test_lift_rejects_bad_level():
    res = solve(ProblemSpec((3, 3), 1.0), solver="clarabel")
    with pytest.raises(InvalidInputError):
        lift(res, "galaxy")
