import math

import numpy as np
import pytest

from scconvex import InvalidInputError, ProblemSpec, solve
from scconvex.solvers import BACKENDS, get_backend

get_backend("clarabel")  # fills the registry
SOLVERS = [name for name, b in sorted(BACKENDS.items()) if b.available()]


def balanced_loss(k, m, tau):
    n = k * m
    return n * math.log((m - 1) + (n - m) * math.exp(-k / ((k - 1) * tau)))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("k,m,tau", [(3, 5, 0.5), (4, 3, 0.2), (6, 4, 1.0)])
def test_balanced_closed_form(solver, k, m, tau):
    res = solve(ProblemSpec((m,) * k, tau), solver=solver)
    assert res.status == "optimal", res.message
    assert res.loss == pytest.approx(balanced_loss(k, m, tau), rel=1e-8)
    off = res.class_gram[~np.eye(k, dtype=bool)]
    np.testing.assert_allclose(off, -1 / (k - 1), atol=1e-4)
    assert res.lower_bound <= balanced_loss(k, m, tau) * (1 + 1e-12)
    assert res.sample_lower_bound <= balanced_loss(k, m, tau) * (1 + 1e-12)


@pytest.mark.parametrize("solver", ["clarabel", "scs"])
@pytest.mark.parametrize("counts,tau", [((4, 2, 2, 1), 0.5), ((5, 3, 2), 0.2)])
def test_levels_agree_on_small_imbalanced(solver, counts, tau):
    spec = ProblemSpec(counts, tau)
    results = {lev: solve(spec, level=lev, solver=solver) for lev in ("group", "class",
                                                                      "sample")}
    for res in results.values():
        assert res.status == "optimal", res.message
        assert res.gap >= 0 and res.sample_gap >= 0
    ref = results["class"].loss
    for res in results.values():
        assert res.loss == pytest.approx(ref, rel=1e-6)
    # Every certified interval contains every other answer's value.
    for a in results.values():
        for b in results.values():
            assert a.sample_lower_bound <= b.loss + 1e-9


def test_issue_reference_instance():
    res = solve(ProblemSpec((20, 20, 2, 2), 0.1), solver="clarabel")
    assert res.status == "optimal"
    assert res.loss == pytest.approx(117.77787376, rel=1e-7)
    assert res.rel_gap <= 1e-7 and res.sample_rel_gap <= 1e-7


def test_result_fields_and_json():
    res = solve(ProblemSpec((3, 3, 2), 0.5), solver="clarabel")
    d = res.to_dict()
    for key in ("counts", "tau", "level", "solver", "status", "loss", "lower_bound", "gap",
                "rel_gap", "class_gram", "rank", "seconds", "sample_gap", "sample_rel_gap",
                "scconvex_version", "schema_version"):
        assert key in d
    assert d["gap"] == pytest.approx(d["loss"] - d["lower_bound"], abs=1e-12)
    assert d["rel_gap"] == pytest.approx(d["gap"] / abs(d["loss"]))


def test_failure_is_reported_not_a_number():
    # One iteration cannot converge: the answer must not be called optimal.
    res = solve(ProblemSpec((20, 20, 2, 2), 0.1), level="class", solver="scs",
                options={"max_iter": 2}, gap_tol=1e-9)
    assert res.status in ("uncertified", "failed")
    assert not res.success


def test_bad_arguments():
    spec = ProblemSpec((3, 3), 1.0)
    with pytest.raises(InvalidInputError):
        solve(spec, solver="gurobi")
    with pytest.raises(InvalidInputError):
        solve(spec, level="galaxy")
    with pytest.raises(InvalidInputError):
        solve(spec, solver="clarabel", options={"colour": 1})
    with pytest.raises(InvalidInputError):
        solve(spec, gap_tol=-1)
    with pytest.raises(InvalidInputError):
        solve((3, 3), solver="clarabel")


@pytest.mark.parametrize("options", [{"tol": "abc"}, {"tol": -1.0}, {"max_iter": 2.5},
                                     {"verbose": "yes"}, {"time_limit": float("nan")}])
def test_bad_option_values(options):
    with pytest.raises(InvalidInputError, match="option"):
        solve(ProblemSpec((3, 3), 1.0), solver="clarabel", options=options)


def test_auto_falls_back_and_says_so():
    spec = ProblemSpec((20, 20, 5, 2, 3), 0.5)
    res = solve(spec, options={"max_iter": 1})  # starves the native solver
    assert "fell back to clarabel" in res.message
    direct = solve(spec, solver="native")
    assert direct.success and direct.solver == "native"
    if res.success:
        assert res.solver == "clarabel"
        assert res.loss == pytest.approx(direct.loss, rel=1e-7)
