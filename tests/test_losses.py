"""Loss objects (scconvex.losses), in particular the negatives-only loss.

Reference values come from a plain double loop over anchors (independent of the numpy
code), the closed form of the balanced optimum derived in docs/variants.md, and the
certificates' lower bounds (valid whatever a solver returns).
"""

import math

import numpy as np
import pytest
from conftest import loss_loop, random_block_q, taylor_slope

from scconvex import InvalidInputError, ProblemSpec, build_model, certify, solve
from scconvex.losses import LOSSES, get_loss
from scconvex.losses.base import BlockLogExcessCost
from scconvex.problem.model import block_gram
from scconvex.problem.spec import LOSSES as SPEC_LOSSES

NEG = get_loss("negatives-only")


def unit_rows(rng, n, d):
    H = rng.standard_normal((n, d))
    return H / np.linalg.norm(H, axis=1, keepdims=True)


def balanced_negatives_only(k, m, tau):
    """Closed form at the simplex ETF (docs/variants.md): n (log(n - m) - k / ((k - 1) tau))."""
    n = k * m
    return n * (math.log(n - m) - 1.0 / ((k - 1) * tau) - 1.0 / tau)


def test_registry_matches_spec_names():
    assert set(LOSSES) == set(SPEC_LOSSES)
    with pytest.raises(InvalidInputError, match="unknown loss"):
        get_loss("triplet")
    with pytest.raises(InvalidInputError, match="unknown loss"):
        ProblemSpec((3, 3), 0.5, loss="triplet")


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 1, 2], [0, 1, 1, 2, 2, 2, 2, 3], [0, 0, 1]])
@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_sample_value_matches_double_loop(rng, labels, tau):
    labels = np.array(labels)
    H = unit_rows(rng, len(labels), 3)
    value = NEG.sample_value(H @ H.T, labels, tau)
    reference = loss_loop(H, labels, tau, negatives_only=True)
    assert value == pytest.approx(reference, rel=1e-12, abs=1e-12)


def test_sample_gradient_taylor(rng):
    labels = np.array([0, 0, 0, 1, 1, 2])
    H = unit_rows(rng, 6, 4)
    G = H @ H.T
    _, C = NEG.sample_value_grad(G, labels, 0.3)
    E = rng.standard_normal(G.shape)
    E = E + E.T
    slope = taylor_slope(lambda t: NEG.sample_value(G + t * E, labels, 0.3), float(np.sum(C * E)))
    assert slope > 1.9


@pytest.mark.parametrize("counts", [(4, 3, 2, 1), (3, 3, 2, 2, 2)])
def test_block_form_matches_double_loop_on_collapsed_features(rng, counts):
    tau = 0.4
    spec = ProblemSpec(counts, tau, loss="negatives-only")
    U = unit_rows(rng, spec.k, 3)
    H = U[spec.labels]
    model = build_model(spec, "class")
    terms = NEG.block_terms(U @ U.T, model.sizes, model.block_counts, tau)
    reference = loss_loop(H, spec.labels, tau, negatives_only=True)
    assert terms.value == pytest.approx(reference, rel=1e-12)
    # The excess over the constant (every cosine at -1) is >= 0 and consistent.
    assert terms.excess >= 0
    assert terms.value == pytest.approx(spec.constant + terms.excess, rel=1e-12)
    assert math.exp(terms.log_excess) == pytest.approx(terms.excess, rel=1e-12)


@pytest.mark.parametrize("level,counts", [("class", (6, 4, 3, 2, 1)),
                                          ("group", (5, 5, 3, 3, 3, 2, 1, 1))])
def test_native_cost_value_and_gradient(rng, level, counts):
    model = build_model(ProblemSpec(counts, 0.3, loss="negatives-only"), level)
    cost = NEG.native_cost(model)
    Q = random_block_q(rng, cost.sphere)
    F, C = cost(Q)
    B = cost.cosines(Q.copy())
    # The cost's variable is the block Gram of its geometry (a block of single-sample
    # classes is one unit vector).
    np.testing.assert_allclose(block_gram(B, cost.geometry.astype(int)), Q, rtol=1e-12,
                               atol=1e-12)
    assert F == pytest.approx(math.log(NEG.block_terms(B, model.sizes, model.block_counts,
                                                       0.3).excess), rel=1e-12)
    E = rng.standard_normal(Q.shape)
    E = E + E.T
    E[np.diag_indices_from(E)] *= ~cost.sphere
    assert taylor_slope(lambda t: cost(Q + t * E)[0], float(np.sum(C * E))) > 1.9


def test_generic_cost_reproduces_native_sc_cost(rng):
    """The generic block cost with the SC loss equals the native backend's tuned SC cost."""
    model = build_model(ProblemSpec((5, 5, 3, 2, 2, 1), 0.2), "group")
    ours = BlockLogExcessCost(model, get_loss("sc"))
    theirs = get_loss("sc").native_cost(model)
    W = rng.standard_normal((model.dim, model.dim)) * 0.5
    W[ours.sphere] /= np.linalg.norm(W[ours.sphere], axis=1)[:, None]
    Q = W @ W.T
    F1, C1 = ours(Q)
    F2, C2 = theirs(Q)
    assert F1 == pytest.approx(F2, rel=1e-12)
    np.testing.assert_allclose(C1, C2, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("k,m,tau", [(3, 5, 0.5), (4, 20, 0.1), (10, 3, 0.05), (5, 2, 2.0)])
@pytest.mark.parametrize("solver", ["native", "clarabel"])
def test_balanced_gives_etf_and_closed_form(k, m, tau, solver):
    res = solve(ProblemSpec((m,) * k, tau, loss="negatives-only"), level="class",
                solver=solver)
    expected = balanced_negatives_only(k, m, tau)
    # Valid whatever the solver returned: the closed form lies between the certified
    # lower bound and the loss of the returned (feasible) point.
    slack = 1e-12 * abs(expected)
    assert res.sample_lower_bound - slack <= expected <= res.loss + slack
    if solver == "native":  # ours: it must certify and land on the ETF
        assert res.success
        assert res.loss == pytest.approx(expected, rel=1e-12)
        off = res.class_gram[~np.eye(k, dtype=bool)]
        np.testing.assert_allclose(off, -1.0 / (k - 1), atol=1e-7)


def test_etf_certificate_is_exact_for_balanced():
    k, m, tau = 6, 4, 0.3
    spec = ProblemSpec((m,) * k, tau, loss="negatives-only")
    etf = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(etf, 1.0)
    cls, smp = certify(build_model(spec, "class"), etf)
    expected = balanced_negatives_only(k, m, tau)
    assert cls.loss == pytest.approx(expected, rel=1e-13)
    assert cls.gap <= 1e-12 * abs(expected) and smp.gap <= 1e-12 * abs(expected)


@pytest.mark.parametrize("counts,tau", [((6, 4, 3, 2), 0.2), ((5, 3, 3, 1), 0.5),
                                        ((4, 4, 2, 2, 1), 0.1)])
def test_sample_class_group_agree(counts, tau):
    spec = ProblemSpec(counts, tau, loss="negatives-only")
    results = [solve(spec, level=level) for level in ("group", "class")]
    results.append(solve(spec, level="sample", solver="clarabel"))
    # Certified lower bounds hold whatever each solver returned: every bound is below
    # every feasible loss, at every level (the sample relaxation contains the others).
    for a in results:
        for b in results:
            assert a.sample_lower_bound <= b.loss + 1e-9 * abs(b.loss)
    group, cls, _ = results
    assert group.success and cls.success
    assert group.loss == pytest.approx(cls.loss, rel=1e-10)
    np.testing.assert_allclose(group.class_gram, cls.class_gram, atol=1e-6)


def test_lifted_class_optimum_has_dense_sample_certificate():
    """The block-structured sample certificate agrees with the dense one on the lifted Gram."""
    spec = ProblemSpec((5, 3, 2, 1), 0.3, loss="negatives-only")
    res = solve(spec, level="class")
    assert res.success
    lab = spec.labels
    G = res.class_gram[np.ix_(lab, lab)]
    dense, _ = certify(build_model(spec, "sample"), G)
    assert dense.loss == pytest.approx(res.loss, rel=1e-12)
    assert dense.lower_bound == pytest.approx(res.sample_lower_bound, rel=1e-9)
    assert dense.rel_gap < 1e-8


def test_two_classes_are_antipodal_with_zero_excess():
    res = solve(ProblemSpec((5, 3), 0.3, loss="negatives-only"))
    assert res.success
    assert res.class_gram[0, 1] == -1.0
    assert res.excess_loss == 0.0 and res.gap == 0.0
    # Both anchors' classes see only the other class: L = sum n_c (log n_c' - 2 / tau).
    assert res.loss == pytest.approx(5 * (math.log(3) - 2 / 0.3) + 3 * (math.log(5) - 2 / 0.3),
                                     rel=1e-14)


def test_relative_gap_does_not_blow_up_where_the_loss_crosses_zero():
    # Balanced k = 3, m = 5: the optimum is 15 (log 10 - 1.5 / tau), zero at tau = 1.5 / log 10.
    tau = 1.5 / math.log(10)
    res = solve(ProblemSpec((5, 5, 5), tau, loss="negatives-only"))
    assert abs(res.loss) < 1e-9
    assert res.success and res.rel_gap < 1e-12


def test_wrong_geometry_gap_bounds_the_true_excess():
    spec = ProblemSpec((20, 20, 2, 2), 0.1, loss="negatives-only")
    best = solve(spec)
    assert best.success
    etf = np.full((4, 4), -1 / 3)
    np.fill_diagonal(etf, 1.0)
    cls, smp = certify(build_model(spec, "class"), etf)
    true_excess = cls.loss - best.loss
    assert true_excess > 1.0
    assert cls.gap >= true_excess and smp.gap >= true_excess


def test_tightness_uses_the_loss(tmp_path):
    from scconvex import tightness

    spec = ProblemSpec((20, 20, 2, 2), 0.1, loss="negatives-only")
    rep = tightness(spec, dims=[3], restarts=2)
    assert rep.rows[0].tight and rep.relaxed_loss < 0


def test_tightness_refuses_dnn():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "scconvex", "tightness", "--counts", "3,3,2",
                          "--tau", "0.5", "--dims", "2", "--relu"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "dnn" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_negatives_only_cli_done_criterion(tmp_path):
    import json
    import subprocess
    import sys

    cert = tmp_path / "c.json"
    out = subprocess.run([sys.executable, "-m", "scconvex", "solve", "--counts", "20,20,2,2",
                          "--tau", "0.1", "--loss", "negatives-only", "--json",
                          "--certificate", str(cert)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "optimal" and data["spec"]["loss"] == "negatives-only"
    check = subprocess.run([sys.executable, "-m", "scconvex", "verify", str(cert)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    # The same geometry is not the optimum of the SC problem: verify must not accept it
    # under the other loss.
    data["spec"]["loss"] = "sc"
    cert.write_text(json.dumps(data))
    check = subprocess.run([sys.executable, "-m", "scconvex", "verify", str(cert)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1


@pytest.mark.parametrize("counts", [(5, 1, 1), (4, 1, 1, 1), (3, 1, 1, 1, 1)])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_one_class_with_positives_is_certified_at_the_constant(counts, tau):
    """One class of c >= 2 samples and j singletons: every anchor's negatives are the j
    singletons, so L >= c (log j - 2 / tau), attained with the singletons antipodal to the
    class (excess exactly 0). This used to come back uncertified: the gap relative to an
    excess of 0 was 0 / 0."""
    import mpmath as mp

    c, j = counts[0], len(counts) - 1
    with mp.workdps(30):
        optimum = float(c * (mp.log(j) - 2 / mp.mpf(tau)))
    # The same value from features, term by term: the class at e1, the singletons at -e1.
    labels = np.repeat(np.arange(len(counts)), counts)
    H = np.where(labels == 0, 1.0, -1.0)[:, None] * np.eye(1, 2)
    assert loss_loop(H, labels, tau, negatives_only=True) == pytest.approx(optimum, rel=1e-14)
    res = solve(ProblemSpec(counts, tau, loss="negatives-only"))
    assert res.success, res.message
    assert res.loss == pytest.approx(optimum, rel=1e-14)
    # The lower bounds are proofs: the optimum cannot lie below them.
    assert res.sample_lower_bound <= optimum + 1e-14 * abs(optimum)
    M = res.class_gram
    np.testing.assert_array_equal(M[0, 1:], -1.0)


@pytest.mark.parametrize("name, negatives_only", [("sc", False), ("negatives-only", True)])
def test_features_value_matches_double_loop(rng, name, negatives_only):
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    H = unit_rows(rng, len(labels), 3)
    value = get_loss(name).features_value(H, labels, 0.3)
    assert value == pytest.approx(loss_loop(H, labels, 0.3, negatives_only=negatives_only),
                                  rel=1e-12)
    with pytest.raises(InvalidInputError, match="unit norm"):
        get_loss(name).features_value(1.1 * H, labels, 0.3)


def test_every_command_offers_the_registered_losses():
    """The command line lists the loss names itself (it imports no numpy before a command
    runs); every ``--loss`` must offer exactly the registered built-in losses."""
    import argparse

    from scconvex.cli import _parser

    def loss_actions(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from loss_actions(sub)
            elif "--loss" in action.option_strings:
                yield action

    found = list(loss_actions(_parser()))
    assert len(found) >= 2  # solve, sweep, compare, ...
    for action in found:
        assert set(action.choices) == set(LOSSES), action.choices
